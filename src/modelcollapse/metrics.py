"""The metric table of the design, computed from per-row token counts.

Names are used everywhere (API, files, plots): ``sigma`` = ‖p‖₂² (σ_m of §3), ``sup`` = ‖p‖∞,
``l1_to_first`` = ‖p(m) − p(1)‖₁, ``l1_to_true`` = ‖p(m) − p(0)‖₁, ``entropy`` (nats),
``support`` (tokens with p > 0), ``collapsed`` (‖p‖∞ = 1, a Dirac mass, Definition 1).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy.special import xlogy

from ._validation import check_choice

#: Per-generation metrics, in the order files and tables list them.
METRICS = ("sigma", "sup", "l1_to_first", "l1_to_true", "entropy", "support", "collapsed")


def resolve_metrics(names: Sequence[str] | None) -> tuple[str, ...]:
    """Validate a metric selection; ``None`` means all. ``collapsed`` is always computed."""
    if names is None:
        return METRICS
    for name in names:
        check_choice(name, "metrics", METRICS)
    return tuple(m for m in METRICS if m in set(names) | {"collapsed"})


def distribution_metrics(p: np.ndarray, first: np.ndarray | None, true: np.ndarray,
                         names: Sequence[str]) -> dict[str, np.ndarray]:
    """Metrics of probability rows ``p`` (rows, k); ``first`` = p(1) rows (None before it
    exists: l1_to_first is then NaN), ``true`` = p(0) rows, all in live coordinates."""
    out: dict[str, np.ndarray] = {}
    if "sigma" in names:
        out["sigma"] = np.einsum("ij,ij->i", p, p)
    top = p.max(axis=1)
    if "sup" in names:
        out["sup"] = top
    if "l1_to_first" in names:
        out["l1_to_first"] = (np.abs(p - first).sum(axis=1) if first is not None
                              else np.full(p.shape[0], np.nan))
    if "l1_to_true" in names:
        out["l1_to_true"] = np.abs(p - true).sum(axis=1)
    if "entropy" in names:
        out["entropy"] = -xlogy(p, p).sum(axis=1)
    if "support" in names:
        out["support"] = np.count_nonzero(p, axis=1).astype(np.float64)
    out["collapsed"] = top >= 1.0
    return out


def count_metrics(counts: np.ndarray, total: int | np.ndarray, first: np.ndarray | None,
                  true: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Metrics of the fitted models p = counts / total (eq. 2), rows of live-support counts."""
    total = np.asarray(total, dtype=np.float64)
    p = counts / (total[:, None] if total.ndim else total)
    out = distribution_metrics(p, first, true, names)
    # A Dirac mass is exact in integers; do not trust float division for it.
    out["collapsed"] = counts.max(axis=1) == (total if total.ndim else int(total))
    return out


def mean_and_se(values: np.ndarray,
                axis: int | tuple[int, ...] = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean over ``axis`` ignoring NaN, and its standard error sd / √count."""
    values = np.asarray(values, dtype=np.float64)
    count = np.sum(~np.isnan(values), axis=axis)
    # All-NaN slices (every run censored) are expected: they give NaN, not a warning.
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values, axis=axis) if values.size else np.nan
        sd = np.nanstd(values, axis=axis, ddof=1) if values.size else np.nan
        se = np.where(count > 1, sd / np.sqrt(np.maximum(count, 1)), np.nan)
    return mean, se


class DeltaMetrics:
    """Metrics of models p = (r + x) / T, where r are fixed base counts (the real corpus of the
    partially synthetic loop, reused every generation) and x the counts of a few new tokens.

    Every metric but ``sup`` is a sum over tokens of some g_i(c_i), so it equals the base sum
    Σ_i g_i(r_i) — computed once — plus a correction over the tokens the new draws touched.
    The correction is a sum over the draws j themselves: Σ_j [g(r_tj + x_tj) − g(r_tj)] / x_tj
    counts each touched token once. A generation then costs O(rows · draws), not O(rows · k).
    ``sup`` follows from max(max_i r_i, max_j (r_tj + x_tj)): an untouched token keeps r_i, and
    a touched one only grows.
    """

    def __init__(self, base_counts: np.ndarray, total: int, first: np.ndarray,
                 true: np.ndarray, names: Sequence[str]):
        self.names = names
        self.r = base_counts
        self.total = total
        self.first, self.true = first, true
        r = base_counts.astype(np.float64)
        T = float(total)
        self.base: dict[str, np.ndarray] = {}
        if "sigma" in names:
            self.base["sigma"] = np.einsum("ij,ij->i", r, r)
        if "l1_to_first" in names:
            self.base["l1_to_first"] = np.abs(r / T - first).sum(axis=1)
        if "l1_to_true" in names:
            self.base["l1_to_true"] = np.abs(r / T - true).sum(axis=1)
        if "entropy" in names:
            self.base["entropy"] = xlogy(r, r).sum(axis=1)
        if "support" in names:
            self.base["support"] = np.count_nonzero(base_counts, axis=1).astype(np.float64)
        self.base_max = base_counts.max(axis=1)

    def __call__(self, draws: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Metrics of (r + counts of ``draws``) / T and the Dirac token per row (−1 if none)."""
        rows, size = draws.shape
        k = self.r.shape[1]
        if k > 8 * size:
            # Many more tokens than draws: count repeats within each sorted row, O(rows · draws).
            draws = np.sort(draws, axis=1)
            starts = np.ones(draws.shape, dtype=bool)
            starts[:, 1:] = draws[:, 1:] != draws[:, :-1]
            group = np.cumsum(starts.ravel()) - 1
            x = np.bincount(group)[group].reshape(rows, size)
            flat = np.arange(rows, dtype=np.int64)[:, None] * k + draws
        else:
            flat = np.arange(rows, dtype=np.int64)[:, None] * k + draws
            x = np.bincount(flat.ravel(), minlength=rows * k)[flat]
        r = self.r.ravel()[flat]
        weight = 1.0 / x
        new = r + x
        T = float(self.total)
        out: dict[str, np.ndarray] = {}
        if "sigma" in self.names:
            out["sigma"] = (self.base["sigma"] + (weight * (new * new - r * r)).sum(1)) / T**2
        for name, q in (("l1_to_first", self.first), ("l1_to_true", self.true)):
            if name in self.names:
                qj = q[np.arange(rows)[:, None], draws]  # q may be a broadcast view
                delta = np.abs(new / T - qj) - np.abs(r / T - qj)
                out[name] = self.base[name] + (weight * delta).sum(axis=1)
        if "entropy" in self.names:
            s = self.base["entropy"] + (weight * (xlogy(new, new) - xlogy(r, r))).sum(axis=1)
            out["entropy"] = np.log(T) - s / T
        if "support" in self.names:
            out["support"] = self.base["support"] + (weight * (r == 0)).sum(axis=1)
        top = np.maximum(self.base_max, new.max(axis=1))
        if "sup" in self.names:
            out["sup"] = top / T
        out["collapsed"] = top == self.total
        dirac = np.full(rows, -1, dtype=np.int64)
        if out["collapsed"].any():  # rare: only a Dirac corpus allows it
            hit = np.flatnonzero(out["collapsed"])
            dirac[hit] = draws[hit, new[hit].argmax(axis=1)]
        return out, dirac
