"""The metrics of each new model, by the fastest exact route available.

Three routes give the same metrics (metrics.py defines them):

* a model that adds new draws to the *same* base as the previous generation (the fixed corpus of
  the partially synthetic loop) is updated from the draws alone — ``DeltaMetrics`` (with numba,
  that loop runs in compiled code instead: fixed_corpus.py);
* with numba, any other model in one compiled pass: from its tokens
  (:func:`kernels.token_metrics`), or, held as counts (``tokens`` is None, counts.py), from
  its counts (:func:`kernels.count_metrics`);
* otherwise from its counts over the live support (``count_metrics``).
"""

from __future__ import annotations

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
                table, dirac = kernels.count_metrics(model.counts, model.size,
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
