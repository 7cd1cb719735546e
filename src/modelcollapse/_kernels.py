"""Compiled metric kernels (numba), used by the loop when numba is installed (extra ``fast``).

Each kernel computes, in one pass over a row's tokens, what :func:`metrics.count_metrics` and
:class:`metrics.DeltaMetrics` compute with several numpy passes; those stay the reference
(and the fallback without numba). The draws are the same either way, so results agree to
rounding in the last bits of the float metrics; integer facts (a Dirac mass, its token, the
support) agree exactly.

Outputs are written into ``out`` (rows, 6): σ, ‖p‖∞, ‖p − p(1)‖₁, ‖p − p(0)‖₁, entropy,
support; and ``dirac`` (rows,): the Dirac token, or −1. ‖p − q‖₁ needs no pass over the
vocabulary: Σ_i |p_i − q_i| = Σ_{i ∈ supp p} |p_i − q_i| + (mass of q off supp p), and for
p(1) = c1 / T1 that mass is the integer T1 − Σ_{supp p} c1_i, so the distance is exact (0 when
p = p(1)); for p(0) it is 1 − Σ_{supp p} p0_i.
"""

from __future__ import annotations

import functools

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

__all__ = ["AVAILABLE", "KERNEL_COLUMNS", "base_sums", "delta_metrics", "gather_two",
           "token_metrics"]

AVAILABLE = numba is not None
KERNEL_COLUMNS = ("sigma", "sup", "l1_to_first", "l1_to_true", "entropy", "support")


def _token_metrics(tokens, total, first, first_total, true, has_first, out, dirac):
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
        for j in range(size):
            t = tokens[i, j]
            c = scratch[t]
            if c == 0:  # token already counted
                continue
            scratch[t] = 0
            sq += c * c
            support += 1
            clogc += c * np.log(c)
            if c > top:
                top = c
                arg = t
            if has_first:
                c1 = first[i, t]
                l1_first += abs(c * first_total - c1 * total)
                first_on += c1
            q = true[i, t]
            l1_true += abs(c / total - q)
            true_on += q
        out[i, 0] = sq / (total * total)
        out[i, 1] = top / total
        if has_first:
            off = total * (first_total - first_on)
            out[i, 2] = (l1_first + off) / (total * first_total)
        else:
            out[i, 2] = np.nan
        out[i, 3] = l1_true + max(0.0, 1.0 - true_on)
        out[i, 4] = np.log(total) - clogc / total
        out[i, 5] = support
        dirac[i] = arg if top == total else -1


def _delta_metrics(draws, base, total, first, first_total, true, base_sums, clogc_table, out,
                   dirac):
    """Model = base counts (rows, k) + draws; base_sums (rows, 6) hold, for the base alone with
    this total: Σ r², max r, Σ |r T1 − c1 T| (int, as float), Σ |r/T − p0|, Σ r log r, support.
    ``clogc_table[c]`` = c log c for c = 0 … total."""
    rows, size = draws.shape
    scratch = np.zeros(base.shape[1], np.int64)
    inv_total = 1.0 / total
    for i in range(rows):
        sq = base_sums[i, 0]
        top = base_sums[i, 1]
        arg = -1
        l1_first = base_sums[i, 2]
        l1_true = base_sums[i, 3]
        clogc = base_sums[i, 4]
        support = base_sums[i, 5]
        for j in range(size):
            t = draws[i, j]
            c0 = base[i, t] + scratch[t]
            scratch[t] += 1
            c = c0 + 1
            sq += c * c - c0 * c0
            clogc += clogc_table[c] - clogc_table[c0]
            if c0 == 0:
                support += 1
            if c >= top:
                top = c
                arg = t
            c1 = first[i, t]
            l1_first += abs(c * first_total - c1 * total) - abs(c0 * first_total - c1 * total)
            q = true[i, t]
            l1_true += abs(c * inv_total - q) - abs(c0 * inv_total - q)
        for j in range(size):
            scratch[draws[i, j]] = 0
        out[i, 0] = sq / (total * total)
        out[i, 1] = top / total
        out[i, 2] = l1_first / (total * first_total)
        out[i, 3] = l1_true
        out[i, 4] = np.log(total) - clogc / total
        out[i, 5] = support
        dirac[i] = arg if top == total else -1


def _gather_two(first, second, index, out):
    """out[i, j] = first[i, index] if index < width of first, else second[i, index − width]."""
    rows, size = index.shape
    width = first.shape[1]
    for i in range(rows):
        for j in range(size):
            a = index[i, j]
            out[i, j] = first[i, a] if a < width else second[i, a - width]


if AVAILABLE:
    _token_metrics = numba.njit(cache=True, nogil=True)(_token_metrics)
    _delta_metrics = numba.njit(cache=True, nogil=True)(_delta_metrics)
    _gather_two = numba.njit(cache=True, nogil=True)(_gather_two)


def gather_two(first: np.ndarray, second: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Draw from the concatenation [first | second] of two token arrays without building it."""
    out = np.empty(index.shape, dtype=first.dtype)
    _gather_two(first, second, index, out)
    return out


def token_metrics(tokens: np.ndarray, first: np.ndarray | None, first_total: int,
                  true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Metrics of the models whose training tokens are ``tokens`` (rows, size); ``first`` are
    the integer counts of p(1) (rows, k) with total ``first_total`` (None before p(1))."""
    rows, size = tokens.shape
    out = np.empty((rows, 6))
    dirac = np.empty(rows, np.int64)
    has_first = first is not None
    first = first if has_first else np.zeros((1, 1), np.int64)
    _token_metrics(tokens, size, first, first_total, true, has_first, out, dirac)
    return out, dirac


def delta_metrics(draws: np.ndarray, base: np.ndarray, total: int, first: np.ndarray,
                  first_total: int, true: np.ndarray,
                  base_sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Metrics of (base counts + counts of ``draws``) / total; see :func:`base_sums`."""
    out = np.empty((draws.shape[0], 6))
    dirac = np.empty(draws.shape[0], np.int64)
    _delta_metrics(draws, base, total, first, first_total, true, base_sums,
                   _clogc_table(total), out, dirac)
    return out, dirac


@functools.lru_cache(maxsize=8)
def _clogc_table(total: int) -> np.ndarray:
    """c log c for c = 0 … total (0 log 0 = 0): the entropy update becomes two lookups."""
    c = np.arange(total + 1, dtype=np.float64)
    return c * np.log(np.maximum(c, 1.0))


def base_sums(base: np.ndarray, total: int, first: np.ndarray, first_total: int,
              true: np.ndarray) -> np.ndarray:
    """The per-row sums of the base counts that :func:`delta_metrics` updates (rows, 6)."""
    r = base.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        clogc = np.where(base > 0, r * np.log(np.maximum(r, 1)), 0.0).sum(axis=1)
    return np.stack([
        (r * r).sum(axis=1),
        r.max(axis=1),
        np.abs(base * first_total - first * total).sum(axis=1).astype(np.float64),
        np.abs(r / total - true).sum(axis=1),
        clogc,
        np.count_nonzero(base, axis=1).astype(np.float64),
    ], axis=1)
