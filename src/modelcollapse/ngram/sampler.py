"""Sampling text from an n-gram table: many streams written autoregressively at once.

Each token t ≥ k of a stream is drawn from the fitted model (eq. 2) at the k tokens before it,
by inverse CDF on the integer counts: with u ~ U[0, 1) and T the row's total, the target is
⌊u·T⌋ and the token is the first entry of the row (in the table's sorted order) whose
cumulative count exceeds it. A context the table has not seen (a stream's start, or a context
whose only occurrences ended a training stream) backs off to the unigram counts, over the whole
vocabulary in token-id order, by the same rule.

Both engines draw every uniform up front, ``rng.random((streams, length − k))``, and do the same
integer arithmetic on them, so their outputs are bit-identical and depend only on the seed:

* ``"numba"`` — one compiled kernel, streams spread over threads (``prange``), each stream
  written sequentially;
* ``"numpy"`` — vectorised over streams, one step per token position;
* ``"auto"`` — numba when it is importable, else numpy.

The unigram is stored as one more row after the table's rows (the *back-off row*), so an unseen
context is just a row index and the samplers never branch on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelcollapse._validation import check_choice, check_int
from modelcollapse.ngram.table import NgramTable

try:
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

__all__ = ["DENSE_LOOKUP_LIMIT", "ENGINES", "NUMBA_AVAILABLE", "generate"]

NUMBA_AVAILABLE = numba is not None
ENGINES = ("auto", "numba", "numpy")

#: Largest V^k for which contexts are found through a dense key → row array (int32, 64 MiB at
#: most); above it, by binary search in ``table.keys``.
DENSE_LOOKUP_LIMIT = 1 << 24

_WHERE = "generate"

#: Row entries left when the compiled kernel stops bisecting and scans.
_SCAN = 8


@dataclass(frozen=True)
class _Sampler:
    """The table laid out for sampling; row ``backoff`` (the last) is the unigram.

    ``lookup`` (V^k,) int32 row of each context key, ``backoff`` where unseen (None: search
    ``keys`` instead); ``start``/``end`` (rows + 1,) int64 entry range of each row; ``base``
    (rows + 1,) int64 cumulative count before the row; ``total`` (rows + 1,) int64 row total;
    ``cum`` (entries + V,) int64 cumulative counts over all rows (monotone: one searchsorted
    serves every row); ``tokens`` (entries + V,) the token of each entry, in the output dtype.
    """

    order: int
    vocab_size: int
    lookup: np.ndarray | None
    keys: np.ndarray
    start: np.ndarray
    end: np.ndarray
    base: np.ndarray
    total: np.ndarray
    cum: np.ndarray
    tokens: np.ndarray

    @property
    def backoff(self) -> int:
        return self.total.size - 1

    @property
    def modulus(self) -> int:
        """V^(k−1): a key mod it drops the context's oldest token (1 for k ≤ 1)."""
        return self.vocab_size ** max(self.order - 1, 0)


def _output_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint8) if vocab_size <= 256 else np.dtype(np.int32)


def _sampler(table: NgramTable) -> _Sampler:
    """Lay ``table`` out for :func:`generate` (a few passes over its entries)."""
    k, V = table.order, table.vocab_size
    unigram = table.unigram()
    if unigram.sum() <= 0:
        raise ValueError("The 'table' parameter of generate must hold at least one count. "
                         "Got an empty table instead.")
    counts = np.concatenate([np.asarray(table.counts, np.int64), unigram])
    cum = np.cumsum(counts)
    entries = table.n_entries
    start = np.concatenate([np.asarray(table.offsets[:-1], np.int64), [entries]])
    end = np.concatenate([np.asarray(table.offsets[1:], np.int64), [entries + V]])
    base = np.where(start > 0, cum[np.maximum(start - 1, 0)], 0)
    total = cum[end - 1] - base
    tokens = np.concatenate([table.tokens, np.arange(V)]).astype(_output_dtype(V))
    keys = np.asarray(table.keys, np.int64)
    backoff = table.n_contexts
    lookup = None
    if k == 0:
        # No context: the key stays the last token (mod 1 · V + token), every one unseen.
        lookup = np.full(V, backoff, np.int32)
    elif V**k <= DENSE_LOOKUP_LIMIT:
        lookup = np.full(V**k, backoff, np.int32)
        lookup[keys] = np.arange(keys.size, dtype=np.int32)
    return _Sampler(k, V, lookup, keys, start, end, base, total, cum, tokens)


def _check_starts(starts: object, table: NgramTable) -> np.ndarray:
    arr = np.asarray(starts)
    k, V = table.order, table.vocab_size
    if arr.ndim != 2 or arr.shape[1] != k:
        raise ValueError(f"The 'starts' parameter of {_WHERE} must have shape (streams, {k}) "
                         f"for a table of order {k}. Got shape {arr.shape} instead.")
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"The 'starts' parameter of {_WHERE} must hold integer token ids. "
                        f"Got dtype {arr.dtype} instead.")
    if arr.size and (arr.min() < 0 or arr.max() >= V):
        bad = arr.min() if arr.min() < 0 else arr.max()
        raise ValueError(f"The 'starts' parameter of {_WHERE} must hold token ids in the range "
                         f"[0, {V - 1}]. Got {int(bad)} instead.")
    return arr.astype(np.int64)


def generate(table: NgramTable, starts: np.ndarray, length: int, rng: np.random.Generator,
             *, engine: str = "auto") -> np.ndarray:
    """Write ``starts.shape[0]`` streams of ``length`` tokens autoregressively from the table.

    starts: (streams, k) int token ids, the first k tokens of each stream (k = table.order;
    shape (streams, 0) for k = 0); returns (streams, length) token ids (dtype: uint8 when
    vocab ≤ 256 else int32; length ≥ k). The uniforms are ``rng.random((streams, length − k))``,
    drawn once up front; ``engine`` is "auto", "numba" or "numpy" (bit-identical results).
    """
    if not isinstance(table, NgramTable):
        raise TypeError(f"The 'table' parameter of {_WHERE} must be an NgramTable. "
                        f"Got {type(table).__name__} instead.")
    starts = _check_starts(starts, table)
    k = table.order
    length = check_int(length, "length", low=k, where=_WHERE)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"The 'rng' parameter of {_WHERE} must be a numpy.random.Generator. "
                        f"Got {type(rng).__name__} instead.")
    engine = check_choice(engine, "engine", ENGINES, where=_WHERE)
    if engine == "numba" and not NUMBA_AVAILABLE:
        raise ValueError(f"The 'engine' parameter of {_WHERE} is 'numba', but numba is not "
                         f"installed: pip install numba (or use engine='numpy').")
    if engine == "auto":
        engine = "numba" if NUMBA_AVAILABLE else "numpy"

    streams = starts.shape[0]
    sampler = _sampler(table)
    u = rng.random((streams, length - k))  # (streams, length − k), the only draw
    out = np.empty((streams, length), dtype=sampler.tokens.dtype)
    out[:, :k] = starts
    if streams == 0 or length == k:
        return out
    key = np.zeros(streams, np.int64)  # (streams,) Σ_r c_r V^(k−r) of the current context
    for r in range(k):
        key = key * sampler.vocab_size + starts[:, r]
    if engine == "numba":
        dense = sampler.lookup is not None
        lookup = sampler.lookup if dense else np.zeros(1, np.int32)
        _numba_kernel(key, u, lookup, sampler.keys, dense, sampler.start, sampler.end,
                      sampler.base, sampler.total, sampler.cum, sampler.tokens,
                      sampler.vocab_size, sampler.modulus, k, out)
    else:
        _numpy_steps(key, u, sampler, out)
    return out


def _numpy_steps(key: np.ndarray, u: np.ndarray, s: _Sampler, out: np.ndarray) -> None:
    """Fill ``out[:, k:]`` one position at a time, all streams at once; ``key`` (streams,)."""
    k, V = s.order, s.vocab_size
    for t in range(u.shape[1]):
        if s.lookup is not None:
            row = np.take(s.lookup, key)
        else:
            # keys is not empty: _sampler refuses a table without counts.
            at = np.minimum(np.searchsorted(s.keys, key), s.keys.size - 1)
            row = np.where(s.keys[at] == key, at, s.backoff)
        total = np.take(s.total, row)
        target = (u[:, t] * total).astype(np.int64)  # u ≥ 0: truncation is floor
        np.minimum(target, total - 1, out=target)  # u·T may round up to T
        target += np.take(s.base, row)
        # The first entry whose cumulative count exceeds the target; it lies inside the row
        # because cum is base at the row's start − 1 and base + total at its end − 1.
        token = np.take(s.tokens, np.searchsorted(s.cum, target, side="right"))
        out[:, k + t] = token
        key = (key % s.modulus) * V + token


def _numba_body(key0, u, lookup, keys, dense, start, end, base, total, cum, tokens, vocab_size,
                modulus, k, out):
    """Compiled :func:`_numpy_steps`: stream s (streams in parallel, each one sequential)
    from context key ``key0[s]``. key0 (streams,) int64; u (streams, steps) float64; out
    (streams, k + steps), its first k columns already written; ``dense`` picks ``lookup``
    (V^k,) over binary search in ``keys`` (contexts,); the other arrays are :class:`_Sampler`'s."""
    streams, steps = u.shape
    backoff = total.size - 1
    n_keys = keys.size
    for s in numba.prange(streams):
        key = key0[s]
        for t in range(steps):
            if dense:
                row = lookup[key]
            else:
                lo, hi = 0, n_keys
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if keys[mid] < key:
                        lo = mid + 1
                    else:
                        hi = mid
                row = lo if lo < n_keys and keys[lo] == key else backoff
            row_total = total[row]
            target = np.int64(u[s, t] * row_total)
            if target >= row_total:
                target = row_total - 1
            target += base[row]
            # Bisect down to a few entries, then scan: most rows of a character model hold
            # a handful of entries, where a scan mispredicts fewer branches than bisection.
            lo, hi = start[row], end[row] - 1
            while hi - lo > _SCAN:
                mid = (lo + hi) >> 1
                if cum[mid] > target:
                    hi = mid
                else:
                    lo = mid + 1
            while cum[lo] <= target:  # stops at hi at the latest: cum[end − 1] > target
                lo += 1
            token = tokens[lo]
            out[s, k + t] = token
            key = (key % modulus) * vocab_size + token


if NUMBA_AVAILABLE:
    _numba_kernel = numba.njit(parallel=True, cache=True)(_numba_body)
else:  # pragma: no cover - exercised where numba is absent
    _numba_kernel = None
