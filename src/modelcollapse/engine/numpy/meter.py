"""The metrics of each new model, by the fastest exact route available.

Three routes give the same metrics (metrics.py defines them):

* a model that adds new draws to the *same* base as the previous generation (the fixed corpus of
  the partially synthetic loop) is updated from the draws alone — ``DeltaMetrics`` (with numba,
  that loop runs in compiled code instead: fixed_corpus.py);
* with numba, any other model in one compiled pass: from its tokens
  (:func:`kernels.token_metrics`), or, held as counts (``tokens`` is None, counts.py), from
  its counts (:func:`count_metrics_table`);
* otherwise from its counts over the live support (``count_metrics``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from ...metrics import DeltaMetrics, count_metrics
from . import kernels
from .sampling import keep_rows


class ModelMeter:
    """Measures models of one chunk of rows; p(1) becomes the reference of ``l1_to_first``.

    The counts of p(1) stay where they were counted when rows stop: the rows still measured
    are an index into them (``first_rows``), so dropping rows copies no (rows, k) array.
    """

    def __init__(self, true: np.ndarray, names: Sequence[str], *,
                 compiled: bool = kernels.AVAILABLE):
        self.true = true  # (rows, k), or a broadcast view of one context's p(0)
        self.names = names
        self.compiled = compiled
        self._first_counts: np.ndarray | None = None  # integer counts of p(1), (rows₁, k)
        self.first_rows: np.ndarray | None = None  # each row's row of _first_counts
        self.first_total = 0
        self._last_base = None
        self._delta = None  # (base counts, total, DeltaMetrics)

    @property
    def first_counts(self) -> np.ndarray:
        """Integer counts of p(1), one row per row still measured (rows, k)."""
        return self._first_counts[self.first_rows]

    @property
    def first(self) -> np.ndarray:
        """p(1) as probabilities (rows, k)."""
        return self.first_counts / self.first_total

    def first_of(self, rows: np.ndarray) -> np.ndarray:
        """p(1) of the selected rows only (a boolean mask or indices)."""
        return self._first_counts[self.first_rows[rows]] / self.first_total

    def __call__(self, model) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Metrics of ``model`` per row and its Dirac token (−1 where it is not one)."""
        if self._first_counts is None:
            self._first_counts, self.first_total = model.counts, model.size
            self.first_rows = np.arange(self._first_counts.shape[0])
        same_base = model.base is not None and model.base is self._last_base
        self._last_base = model.base
        if same_base:
            return self._from_draws(model)
        if self.compiled and model.base is None:
            # (asked only here: a model with a base would join its tokens to answer)
            if model.tokens is None:  # held as counts
                table, dirac = count_metrics_table(model.counts, model.size,
                                                   self._first_counts, self.first_rows,
                                                   self.first_total, self.true,
                                                   tuple(self.names))
            else:
                table, dirac = kernels.token_metrics(model.tokens, self._first_counts,
                                                      self.first_rows, self.first_total,
                                                      self.true, tuple(self.names))
            return self._columns(table, dirac), dirac
        values = count_metrics(model.counts, model.size, self.first, self.true, self.names)
        return values, np.where(values["collapsed"], model.counts.argmax(axis=1), -1)

    def _from_draws(self, model) -> tuple[dict[str, np.ndarray], np.ndarray]:
        base = model.base.counts
        cached = self._delta
        if cached is None or cached[0] is not base or cached[1] != model.size:
            state = DeltaMetrics(base, model.size, self.first, self.true, self.names)
            self._delta = cached = (base, model.size, state)
        return cached[2](model.extra)

    def _columns(self, table: np.ndarray, dirac: np.ndarray) -> dict[str, np.ndarray]:
        out = {name: table[:, i] for i, name in enumerate(kernels.KERNEL_COLUMNS)
               if name in self.names}
        out["collapsed"] = dirac >= 0
        return out

    def keep(self, mask: np.ndarray) -> None:
        """Drop rows (runs that stopped)."""
        self.true = keep_rows(self.true, mask)
        if self.first_rows is not None:
            self.first_rows = self.first_rows[mask]
        self._delta = None
        self._last_base = None


def count_metrics_table(counts: np.ndarray, total: int, first: np.ndarray | None,
                        first_rows: np.ndarray, first_total: int, true: np.ndarray,
                        names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Metrics of the models p = ``counts`` / ``total`` (rows, k) in one compiled pass: the
    columns of :data:`kernels.KERNEL_COLUMNS` that ``names`` asks for (the others are left
    unset) and each row's Dirac token (−1 where it is none), as :func:`kernels.token_metrics`
    gives them from tokens and ``count_metrics`` from counts. ``first`` are the integer counts
    of p(1) with total ``first_total`` (None before p(1)), row ``first_rows[i]`` being row
    i's; ``true`` is p(0) per row."""
    rows = counts.shape[0]
    out = np.empty((rows, len(kernels.KERNEL_COLUMNS)))
    dirac = np.empty(rows, np.int64)
    has_first = first is not None
    first = first if has_first else np.zeros((1, 1), np.int64)
    want = tuple(name in names for name in kernels.KERNEL_COLUMNS)
    clogc = _clogc(min(int(total), CLOGC_TABLE)) if want[4] else np.zeros(1)
    _count_metrics_kernel(want)(counts, int(total), first, first_rows, int(first_total), true,
                                has_first, clogc, out, dirac)
    return out, dirac


#: Largest count whose c log c the entropy looks up instead of computing (a 512 KiB table).
CLOGC_TABLE = 1 << 16


@functools.lru_cache(maxsize=8)
def _clogc(top: int) -> np.ndarray:
    """c log c for c = 0 … top (0 log 0 = 0)."""
    c = np.arange(top + 1, dtype=np.float64)
    return c * np.log(np.maximum(c, 1.0))


@functools.cache
def _count_metrics_kernel(want: tuple[bool, ...]):
    """The pass of :func:`count_metrics_table` compiled for one choice of metrics (``want``
    flags the :data:`kernels.KERNEL_COLUMNS`, as constants), the distances as
    :func:`kernels.token_metrics` sums them: ‖p − p(1)‖₁ in integers,
    Σ_j |c_j T1 − c1_j T| / (T T1), so it is exact (0 when p = p(1))."""
    want_sigma, want_sup, want_first, want_true, want_entropy, want_support = want

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
            if want_sigma:
                out[i, 0] = sq / (total * total)
            if want_sup:
                out[i, 1] = top * inverse
            if want_first:
                if has_first:
                    off = total * (first_total - first_on)
                    out[i, 2] = (l1_first + off) / (total * first_total)
                else:
                    out[i, 2] = np.nan
            if want_true:
                out[i, 3] = l1_true + max(0.0, 1.0 - true_on)
            if want_entropy:
                out[i, 4] = np.log(total) - clogc * inverse
            if want_support:
                out[i, 5] = support
            dirac[i] = arg if top == total else -1

    return kernels.numba.njit(cache=True, nogil=True)(kernel) if kernels.AVAILABLE else kernel
