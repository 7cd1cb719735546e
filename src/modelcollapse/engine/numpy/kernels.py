"""Compiled kernels (numba), used by the loop when numba is installed (extra ``fast``).

:func:`token_metrics` and :func:`count_metrics` measure models held as tokens or as counts in
one pass per row (both through :func:`_write_row`), where
:func:`metrics.count_metrics` takes several numpy passes; :func:`fixed_corpus_loop` runs the
partially synthetic loop row by row, where the generic loop and :class:`metrics.DeltaMetrics`
go generation by generation. The numpy routes stay the reference (and the fallback without
numba). The draws are the same either way, so results agree to rounding in the last bits of
the float metrics; integer facts (a Dirac mass, its token, the support) agree exactly.

The metric columns are :data:`KERNEL_COLUMNS`: σ, ‖p‖∞, ‖p − p(1)‖₁, ‖p − p(0)‖₁, entropy,
support. ‖p − q‖₁ needs no pass over the vocabulary: Σ_i |p_i − q_i| = Σ_{i ∈ supp p}
|p_i − q_i| + (mass of q off supp p), and for p(1) = c1 / T1 that mass is the integer
T1 − Σ_{supp p} c1_i, so the distance is exact (0 when p = p(1)); for p(0) it is
1 − Σ_{supp p} p0_i.
"""

from __future__ import annotations

import functools

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

__all__ = ["AVAILABLE", "KERNEL_COLUMNS", "count_metrics", "fixed_corpus_loop", "inverse_cdf",
           "shifted_sums", "token_metrics"]

#: Largest count whose c log c the entropy of a count model looks up instead of computing (a
#: 512 KiB table).
CLOGC_TABLE = 1 << 16

AVAILABLE = numba is not None
KERNEL_COLUMNS = ("sigma", "sup", "l1_to_first", "l1_to_true", "entropy", "support")


def _write_row(want, out, dirac, i, total, first_total, has_first, sq, top, arg, support,
               clogc, l1_first, first_on, l1_true, true_on):
    """Row i of the metric table from its sums over the tokens of the model (each distinct
    token once, with its count c): Σ c², max c and its token, the tokens counted, Σ c log c,
    Σ |c T1 − c1 T| and Σ c1 over them (p(1) = c1 / T1), Σ |c / T − p0| and Σ p0 over them.
    The one place the kernels turn those sums into the metrics."""
    want_sigma, want_sup, want_first, want_true, want_entropy, want_support = want
    if want_sigma:
        out[i, 0] = sq / (total * total)
    if want_sup:
        out[i, 1] = top / total
    if want_first:
        if has_first:
            off = total * (first_total - first_on)
            out[i, 2] = (l1_first + off) / (total * first_total)
        else:
            out[i, 2] = np.nan
    if want_true:
        out[i, 3] = l1_true + max(0.0, 1.0 - true_on)
    if want_entropy:
        out[i, 4] = np.log(total) - clogc / total
    if want_support:
        out[i, 5] = support
    dirac[i] = arg if top == total else -1


if AVAILABLE:
    _write_row = numba.njit(cache=True, nogil=True, inline="always")(_write_row)


@functools.cache
def _token_metrics_kernel(want: tuple[bool, ...]):
    """The pass of :func:`token_metrics` compiled for one choice of metrics: ``want`` flags the
    :data:`KERNEL_COLUMNS` to compute, as constants (a logarithm per token for the entropy,
    the references' rows for the distances, only where asked)."""
    want_sigma, _, want_first, want_true, want_entropy, want_support = want

    def kernel(tokens, total, first, first_rows, first_total, true, has_first, out, dirac):
        rows, size = tokens.shape
        scratch = np.zeros(true.shape[1], np.int64)
        for i in range(rows):
            for j in range(size):
                scratch[tokens[i, j]] += 1
            sq = 0
            top = 0
            arg = -1
            support = 0
            clogc = 0.0
            l1_first = 0
            first_on = 0
            l1_true = 0.0
            true_on = 0.0
            reference = first_rows[i]
            for j in range(size):
                t = tokens[i, j]
                c = scratch[t]
                if c == 0:  # token already counted
                    continue
                scratch[t] = 0
                if want_sigma:
                    sq += c * c
                if want_support:
                    support += 1
                if want_entropy:
                    clogc += c * np.log(c)
                if c > top:
                    top = c
                    arg = t
                if want_first and has_first:
                    c1 = first[reference, t]
                    l1_first += abs(c * first_total - c1 * total)
                    first_on += c1
                if want_true:
                    q = true[i, t]
                    l1_true += abs(c / total - q)
                    true_on += q
            _write_row(want, out, dirac, i, total, first_total, has_first, sq, top, arg,
                       support, clogc, l1_first, first_on, l1_true, true_on)

    return numba.njit(cache=True, nogil=True)(kernel) if AVAILABLE else kernel


def _inverse_cdf(table, guide, last, n_live, row_context, u, out):
    """out[i, j] = the live coordinate of ``u[i, j]`` under the row's context, exactly as
    ``searchsorted(table, u + context, side="right") − context · n_live`` in numpy, clamped
    to the context's last token (see :class:`sampling.InverseCDF`). ``guide[c, g]`` is the
    first entry of ``table`` above c + g/G (G = guide.shape[1], a power of two), where the
    scan for u with ⌊u·G⌋ = g starts: u ≥ g/G exactly, so the answer is never before it."""
    rows, size = u.shape
    buckets = guide.shape[1]
    for i in range(rows):
        context = row_context[i]
        start = context * n_live
        end = start + n_live
        for j in range(size):
            v = u[i, j] + context
            k = guide[context, int(u[i, j] * buckets)]
            while k < end and table[k] <= v:  # first entry > v
                k += 1
            out[i, j] = min(k - start, last[context])


#: Rows summed one after the other before their sum joins the total (see _shifted_sums).
SUM_BLOCK = 256


def _shifted_sums(block, shift, context, out):
    """out[0, a, c, s] = Σ_r d and out[1, a, c, s] = Σ_r d² over the rows r of context c,
    d = block[a, r, s] − shift[a, c]. Rows go in blocks of SUM_BLOCK per context whose sums
    are added to the totals, so a sum of R rows is off by about (SUM_BLOCK + R / SUM_BLOCK)
    units in the last place at worst, not R; each row is read once, in memory order."""
    n_metrics, rows, steps = block.shape
    n_contexts = shift.shape[1]
    out[:] = 0.0
    part = np.zeros(out.shape)
    size = SUM_BLOCK * n_contexts
    for start in range(0, rows, size):
        part[:] = 0.0
        for r in range(start, min(start + size, rows)):
            c = context[r]
            for a in range(n_metrics):
                offset = shift[a, c]
                for s in range(steps):
                    d = block[a, r, s] - offset
                    part[0, a, c, s] += d
                    part[1, a, c, s] += d * d
        out += part


if AVAILABLE:
    _inverse_cdf = numba.njit(cache=True, nogil=True)(_inverse_cdf)
    _shifted_sums = numba.njit(cache=True, nogil=True)(_shifted_sums)


def inverse_cdf(table: np.ndarray, guide: np.ndarray, last: np.ndarray, n_live: int,
                row_context: np.ndarray, u: np.ndarray, dtype) -> np.ndarray:
    """Draws from p(0) by inverse CDF for uniforms ``u`` (rows, size); see
    :class:`sampling.InverseCDF` and :func:`_inverse_cdf`."""
    out = np.empty(u.shape, dtype=dtype)
    _inverse_cdf(table, guide, last, n_live, row_context, u, out)
    return out


def shifted_sums(block: np.ndarray, shift: np.ndarray, context: np.ndarray) -> np.ndarray:
    """Σ d and Σ d² per metric, context and step, (2, metrics, contexts, steps), of ``block``
    (metrics, rows, steps) with d = value − ``shift`` (metrics, contexts) of the row's
    ``context`` (rows,): one pass, no temporaries (see :func:`_shifted_sums`)."""
    n_metrics, _, steps = block.shape
    out = np.empty((2, n_metrics, shift.shape[1], steps))
    _shifted_sums(block, shift, context, out)
    return out


def token_metrics(tokens: np.ndarray, first: np.ndarray | None, first_rows: np.ndarray,
                  first_total: int, true: np.ndarray, names: tuple[str, ...]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Metrics of the models whose training tokens are ``tokens`` (rows, size): the columns of
    :data:`KERNEL_COLUMNS` that ``names`` asks for (the others are left unset), and each row's
    Dirac token (−1 where it is none). ``first`` are the integer counts of p(1) with total
    ``first_total`` (None before p(1)), row ``first_rows[i]`` being row i's."""
    rows, size = tokens.shape
    out = np.empty((rows, 6))
    dirac = np.empty(rows, np.int64)
    has_first = first is not None
    first = first if has_first else np.zeros((1, 1), np.int64)
    kernel = _token_metrics_kernel(tuple(name in names for name in KERNEL_COLUMNS))
    kernel(tokens, size, first, first_rows, first_total, true, has_first, out, dirac)
    return out, dirac


def count_metrics(counts: np.ndarray, total: int, first: np.ndarray | None,
                        first_rows: np.ndarray, first_total: int, true: np.ndarray,
                        names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Metrics of the models p = ``counts`` / ``total`` (rows, k) in one compiled pass: the
    columns of :data:`KERNEL_COLUMNS` that ``names`` asks for (the others are left
    unset) and each row's Dirac token (−1 where it is none), as :func:`token_metrics`
    gives them from tokens and :func:`modelcollapse.metrics.count_metrics` from counts.
    ``first`` are the integer counts of p(1) with total ``first_total`` (None before p(1)),
    row ``first_rows[i]`` being row i's; ``true`` is p(0) per row."""
    rows = counts.shape[0]
    out = np.empty((rows, len(KERNEL_COLUMNS)))
    dirac = np.empty(rows, np.int64)
    has_first = first is not None
    first = first if has_first else np.zeros((1, 1), np.int64)
    want = tuple(name in names for name in KERNEL_COLUMNS)
    clogc = _clogc_table(min(int(total), CLOGC_TABLE)) if want[4] else np.zeros(1)
    _count_metrics_kernel(want)(counts, int(total), first, first_rows, int(first_total), true,
                                has_first, clogc, out, dirac)
    return out, dirac


@functools.cache
def _count_metrics_kernel(want: tuple[bool, ...]):
    """The pass of :func:`count_metrics` compiled for one choice of metrics (``want``
    flags the :data:`KERNEL_COLUMNS`, as constants), the distances as
    :func:`token_metrics` sums them: ‖p − p(1)‖₁ in integers,
    Σ_j |c_j T1 − c1_j T| / (T T1), so it is exact (0 when p = p(1))."""
    want_sigma, _, want_first, want_true, want_entropy, want_support = want

    def kernel(counts, total, first, first_rows, first_total, true, has_first, clogc_table,
               out, dirac):
        # Over the tokens with c > 0 only: a token with c = 0 adds its reference's mass to
        # a distance, and those masses are what the support's leave of the reference's total.
        rows, k = counts.shape
        looked_up = clogc_table.size
        inverse = 1.0 / total
        for i in range(rows):
            sq = 0
            top = 0
            arg = -1
            support = 0
            clogc = 0.0
            l1_first = 0
            first_on = 0
            l1_true = 0.0
            true_on = 0.0
            reference = first_rows[i]
            for t in range(k):
                c = counts[i, t]
                if c == 0:
                    continue
                if want_first and has_first:
                    c1 = first[reference, t]
                    l1_first += abs(c * first_total - c1 * total)
                    first_on += c1
                if want_true:
                    q = true[i, t]
                    l1_true += abs(c * inverse - q)
                    true_on += q
                if want_sigma:
                    sq += c * c
                if want_support:
                    support += 1
                if want_entropy:
                    clogc += clogc_table[c] if c < looked_up else c * np.log(c)
                if c > top:
                    top = c
                    arg = t
            _write_row(want, out, dirac, i, total, first_total, has_first, sq, top, arg,
                       support, clogc, l1_first, first_on, l1_true, true_on)

    return numba.njit(cache=True, nogil=True)(kernel) if AVAILABLE else kernel


def fixed_corpus_loop(corpus: np.ndarray, extra: np.ndarray, index: np.ndarray,
                      first_generation: int, base: np.ndarray,
                      first: np.ndarray, first_total: int, true: np.ndarray, rows: np.ndarray,
                      names: tuple[str, ...], out: np.ndarray, collapse_time: np.ndarray) -> None:
    """Run ``index.shape[0]`` generations of the partially synthetic loop in place.

    Model m trains on the fixed corpus (rows, N) and n draws from model m − 1, whose training
    tokens are the corpus followed by its own draws ``extra`` (rows, n), updated in place;
    ``index`` (steps, rows, n) are the drawn positions in those N + n tokens. ``base`` are the
    corpus counts (rows, k); ``first`` the counts of p(1) with total ``first_total``; ``true``
    p(0). The metrics ``names`` (a subset of :data:`KERNEL_COLUMNS` in that order, then
    ``collapsed`` as 0/1) of generation ``first_generation`` + step of row i go to
    ``out[:, i, step]``; the first Dirac generation of row i to ``collapse_time[rows[i]]``
    where it is still NaN.
    """
    total = corpus.shape[1] + index.shape[2]
    kernel = _fixed_corpus_kernel(tuple(name in names for name in KERNEL_COLUMNS))
    kernel(corpus, extra, index, first_generation, base, first, first_total, true,
           _clogc_table(total), rows, out, collapse_time)


@functools.cache
def _fixed_corpus_kernel(want: tuple[bool, ...]):
    """The loop of :func:`fixed_corpus_loop` compiled for one choice of metrics: ``want``
    flags the :data:`KERNEL_COLUMNS` to compute, as constants, so unwanted work is compiled
    out rather than branched over for every draw (that costs a third of the time)."""
    want_sigma, want_sup, want_first, want_true, want_entropy, want_support = want
    slots = np.cumsum(want) - 1  # where each wanted metric goes in ``out``
    s_sigma, s_sup, s_first, s_true, s_entropy, s_support = (int(v) for v in slots)
    s_collapsed = int(sum(want))

    def kernel(corpus, extra, index, first_generation, base, first, first_total, true,
               clogc_table, rows_global, out, collapse_time):
        # Row by row, so a row's corpus, counts and references stay in cache for all its
        # generations. Each generation updates the sums over the corpus counts r (with the
        # model's total T) with the n draws only: a drawn token with c0 = r + (earlier draws
        # of it) moves its count to c0 + 1.
        rows, width = corpus.shape
        steps, _, size = index.shape
        total = width + size
        inv_total = 1.0 / total
        k = base.shape[1]
        scratch = np.zeros(k, np.int64)  # draws of each token so far in this generation
        gap_first = np.empty(k, np.int64)  # r T1 − c1 T per token
        gap_true = np.empty(k)  # r / T − p0 per token
        tokens = np.empty(total, corpus.dtype)  # model m − 1's training tokens
        draws = np.empty(size, corpus.dtype)
        for i in range(rows):
            row = rows_global[i]
            tokens[:width] = corpus[i]
            tokens[width:] = extra[i]
            base_i = base[i]
            dirac_token = -1  # a model can be a Dirac mass only if its corpus is one
            sq_base = top_base = first_base = support_base = 0
            true_base = clogc_base = 0.0
            for t in range(k):
                r = base_i[t]
                gap_first[t] = r * first_total - first[i, t] * total
                gap_true[t] = r * inv_total - true[i, t]
                sq_base += r * r
                top_base = max(top_base, r)
                first_base += abs(gap_first[t])
                true_base += abs(gap_true[t])
                clogc_base += clogc_table[r]
                support_base += r > 0
                if r == width:
                    dirac_token = t
            for step in range(steps):
                sq = sq_base
                top = top_base
                l1_first = first_base
                l1_true = true_base
                clogc = clogc_base
                support = support_base
                for j in range(size):
                    t = tokens[index[step, i, j]]
                    draws[j] = t
                    x = scratch[t]
                    scratch[t] = x + 1
                    c0 = base_i[t] + x
                    sq += 2 * c0 + 1
                    if want_sup:
                        top = max(top, c0 + 1)
                    if want_first:
                        u = gap_first[t] + x * first_total
                        l1_first += abs(u + first_total) - abs(u)
                    if want_true:
                        w = gap_true[t] + x * inv_total
                        l1_true += abs(w + inv_total) - abs(w)
                    if want_entropy:
                        clogc += clogc_table[c0 + 1] - clogc_table[c0]
                    if want_support and c0 == 0:
                        support += 1
                dirac = dirac_token
                for j in range(size):
                    scratch[draws[j]] = 0
                    if draws[j] != dirac_token:
                        dirac = -1
                tokens[width:] = draws
                if want_sigma:
                    out[s_sigma, i, step] = sq * inv_total * inv_total
                if want_sup:
                    out[s_sup, i, step] = top * inv_total
                if want_first:
                    out[s_first, i, step] = l1_first / (total * first_total)
                if want_true:
                    out[s_true, i, step] = l1_true
                if want_entropy:
                    out[s_entropy, i, step] = (clogc_table[total] - clogc) / total
                if want_support:
                    out[s_support, i, step] = support
                out[s_collapsed, i, step] = 1.0 if dirac >= 0 else 0.0
                if dirac >= 0 and np.isnan(collapse_time[row]):
                    collapse_time[row] = first_generation + step
            extra[i] = tokens[width:]

    return numba.njit(cache=True, nogil=True)(kernel)


@functools.lru_cache(maxsize=8)
def _clogc_table(total: int) -> np.ndarray:
    """c log c for c = 0 … total (0 log 0 = 0): the entropy update becomes two lookups."""
    c = np.arange(total + 1, dtype=np.float64)
    return c * np.log(np.maximum(c, 1.0))
