"""Models and their history on the numpy backend, held as counts over the live support (eq. 2).

A model fitted by counting is p = c / size: its counts c (rows, k) over the live support
divided by the number of its training samples. When the draws per model are many times the
live support, holding counts beats holding tokens (history.py): a draw of n samples is only
needed through its counts, one multinomial(n, c / size) per row, and a multinomial is drawn
exactly by conditional binomials over the tokens,

    x_j ~ Binomial(n − x_0 − … − x_{j−1},  c_j / (c_j + … + c_{k−1})),

so a row costs one binomial per live token at most: none for a dead token (c_j = 0), none
once the n draws are placed, none for the last live token (it takes the rest). The
conditional probabilities of a fitted model are ratios of integers, each one correctly
rounded division; those of p(0) come from its tail sums per context (:func:`conditional_table`).

Routes. On the plan's compiled route (numba installed, ``compiled`` not False) each run
block's rows are drawn row by row in compiled code, with exact binomial samplers of its own
(:func:`_binomial`: inversion for small means, Hörmann's BTRS otherwise), 1.4× faster than
numba's port of numpy's ``Generator.binomial`` and than ``Generator.multinomial``
(benchmarks/bench_counts.py). On the numpy route each block is one ``Generator.multinomial``
call.
Both draw the multinomial law exactly, reproducibly for a seed, each run block from its own
generator (:class:`~.sampling.RowStreams`) and for its own rows only, so results do not depend
on chunking; the two consume their streams differently, so their numbers differ (the result's
``route`` attribute says which ran).

:class:`CountHistory` is what scenarios draw on (the :class:`~modelcollapse.scenarios.History`
protocol) when their ``needs_token_order`` is False.
"""

from __future__ import annotations

import math

import numpy as np

from ...scenarios import Scenario
from ..history import CountHistoryBase, CountSample
from . import kernels
from .sampling import RowStreams

__all__ = ["CountHistory", "CountModel", "CountSample", "CountsFromP0", "conditional_table",
           "draw_counts"]


class CountModel:
    """A fitted model per row (eq. 2) held as its counts (rows, k) int64 over ``size`` samples.

    ``tokens`` and ``base`` are None: there are no training tokens to gather from, and no base
    whose metrics could be updated from new draws alone (the meter measures the counts).
    """

    tokens = None
    base = None

    def __init__(self, counts: np.ndarray, size: int, n_live: int):
        self.counts = counts
        self.size = int(size)
        self.n_live = n_live

    def draw(self, size: int, streams: RowStreams, *,
             compiled: bool = kernels.AVAILABLE) -> np.ndarray:
        """Counts (rows, k) of ``size`` i.i.d. draws per row from p = counts / self.size."""
        return draw_counts(self.counts, self.size, size, streams, compiled=compiled)

    def keep(self, mask: np.ndarray) -> CountModel:
        """The rows where ``mask`` (boolean) holds."""
        return CountModel(self.counts[mask], self.size, self.n_live)


# --- multinomial draws ------------------------------------------------------------------------
def conditional_table(p_live: np.ndarray) -> np.ndarray:
    """q_j = p_j / (p_j + … + p_{k−1}) per context (contexts, k): the success probability of
    token j's binomial once tokens 0 … j−1 are drawn. Tail sums run from the end, so the last
    live token's tail is its own mass and its q exactly 1; past it q is 0."""
    tail = np.cumsum(p_live[:, ::-1], axis=1)[:, ::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(p_live > 0, p_live / tail, 0.0)
    return np.minimum(q, 1.0)


def draw_counts(counts: np.ndarray, total: int, size: int, streams: RowStreams, *,
                compiled: bool = kernels.AVAILABLE) -> np.ndarray:
    """Counts (rows, k) int64 of ``size`` i.i.d. draws per row from p = counts / ``total``
    (every row of ``counts`` sums to ``total``): one multinomial per row, block by block."""
    out = np.zeros(counts.shape, dtype=np.int64)
    if size == 0:
        return out
    for generator, a, b in streams.blocks():
        if compiled:
            _counts_kernel(generator, counts[a:b], total, size, out[a:b])
        else:
            out[a:b] = generator.multinomial(size, counts[a:b] / total)
    return out


class CountsFromP0:
    """Draws of counts from p(0) of each row's context: its :func:`conditional_table` for the
    compiled route, its probabilities (normalised to sum to 1 within rounding, as
    ``Generator.multinomial`` asks) for the numpy route."""

    def __init__(self, p_live: np.ndarray):
        self.table = conditional_table(p_live)
        self.p = p_live / p_live.sum(axis=1, keepdims=True)

    def __call__(self, row_context: np.ndarray, size: int, streams: RowStreams, *,
                 compiled: bool = kernels.AVAILABLE) -> np.ndarray:
        """Counts (rows, k) int64 of ``size`` i.i.d. draws per row from p(0) of its context."""
        out = np.zeros((row_context.size, self.table.shape[1]), dtype=np.int64)
        if size == 0:
            return out
        for generator, a, b in streams.blocks():
            if compiled:
                _table_kernel(generator, self.table, row_context[a:b], size, out[a:b])
            else:
                out[a:b] = generator.multinomial(size, self.p[row_context[a:b]])
        return out


def _counts_kernel(generator, counts, total, size, out):
    """Row by row: x_j ~ Binomial(left, c_j / tail), ``left`` the draws not yet placed and
    ``tail`` the counts of tokens j … k−1 (c_j = tail: token j takes the rest)."""
    rows, k = counts.shape
    for i in range(rows):
        left = size
        tail = total
        for j in range(k):
            c = counts[i, j]
            if c == 0:
                continue
            if c == tail:
                out[i, j] = left
                break
            x = _binomial(generator, left, c / tail)
            out[i, j] = x
            left -= x
            if left == 0:
                break
            tail -= c


def _table_kernel(generator, table, row_context, size, out):
    """As :func:`_counts_kernel`, the conditional probabilities read from ``table``."""
    rows, k = out.shape
    for i in range(rows):
        left = size
        context = row_context[i]
        for j in range(k):
            q = table[context, j]
            if q == 0.0:
                continue
            if q >= 1.0:
                out[i, j] = left
                break
            x = _binomial(generator, left, q)
            out[i, j] = x
            left -= x
            if left == 0:
                break


# --- binomial samplers (compiled route) -------------------------------------------------------
#: Below this mean n·min(p, 1 − p), a binomial is drawn by inversion (about mean + 1 steps of
#: the CDF), at or above it by BTRS (about two uniforms), as TensorFlow does; on this
#: machine (AMD EPYC) the two cost the same near a mean of 10.
INVERSION_MEAN = 10.0
#: 1/x for the inversion's steps x = 1 … 63.
_RECIPROCAL = np.concatenate([[0.0], 1.0 / np.arange(1.0, 64.0)])
#: log x! − [(x + ½) log(x + 1) − (x + 1) + ½ log 2π], the error of Stirling's formula for
#: log x!, for x = 0 … 15; beyond, its series (error below 1e-12).
_STIRLING_TAIL = np.array([math.lgamma(x + 1.0) - ((x + 0.5) * math.log(x + 1.0) - (x + 1.0)
                                                    + 0.5 * math.log(2.0 * math.pi))
                           for x in range(16)])


def _binomial(generator, n, p):
    """One Binomial(n, p) draw for n ≥ 1 and 0 < p < 1: of the smaller side's probability,
    by inversion when its mean is small, by BTRS otherwise."""
    flip = p > 0.5
    r = 1.0 - p if flip else p
    if n * r < INVERSION_MEAN:
        x = _inversion(generator, n, r)
    else:
        x = _btrs(generator, n, r)
    return n - x if flip else x


def _inversion(generator, n, p):
    """Binomial(n, p) by inversion of its CDF from 0 (mean n·p < INVERSION_MEAN): one uniform
    u, P(0) = (1 − p)^n and P(x) = P(x − 1) · (n − x + 1)/x · p/(1 − p). Since
    (1 − p)^n ≥ 1 − np, a uniform u ≤ 1 − np is 0 without computing P(0). The walk stops at
    x = 63 (P(X > 63) < 1e-20 for a mean below 10), where a uniform past the floating-point
    sum of the pmf (within rounding of 1) is drawn again, as numpy's inversion does at its
    bound."""
    mean = n * p
    q = 1.0 - p
    ratio = p / q
    top = min(n, 63)
    start = -1.0
    while True:
        u = generator.random()
        if u <= 1.0 - mean:
            return 0
        if start < 0.0:
            start = math.exp(n * math.log1p(-p))
        x = 0
        mass = start
        while u > mass and x < top:
            u -= mass
            x += 1
            mass *= (n - x + 1) * ratio * _RECIPROCAL[x]
        if u <= mass:
            return x


def _stirling_tail(x):
    """:data:`_STIRLING_TAIL` of a non-negative integer-valued float x."""
    if x < 16.0:
        return _STIRLING_TAIL[int(x)]
    y = 1.0 / ((x + 1.0) * (x + 1.0))
    return (1.0 / 12.0 - (1.0 / 360.0 - y / 1260.0) * y) / (x + 1.0)


def _btrs(generator, n, p):
    """Binomial(n, p) for p ≤ 1/2 and n·p ≥ 10 by BTRS, transformed rejection with squeeze
    (W. Hörmann, "The generation of binomial random variates", J. Stat. Comput. Simul. 46,
    1993): a candidate k from two uniforms is accepted at once inside the squeeze (half of
    them at npq = 10, more as npq grows); otherwise v is compared with f(k)/f(m), f the pmf
    and m its mode — as a product of the |k − m| ≤ 20 ratios f(i)/f(i − 1), else through its
    logarithm, against the bounds t ± ρ of Kachitvichyanukul & Schmeiser's BTPE where they
    hold (20 < |k − m| < npq/2 − 1, as numpy uses them) and then exactly, by Stirling's
    formula with its error terms."""
    q = 1.0 - p
    npq = n * p * q
    spq = math.sqrt(npq)
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    v_r = 0.92 - 4.2 / b
    while True:
        u = generator.random() - 0.5
        v = generator.random()
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + c)
        if k < 0.0 or k > n:
            continue
        if us >= 0.07 and v <= v_r:
            return int(k)
        v *= (2.83 + 5.1 / b) * spq / (a / (us * us) + b)  # accept iff v ≤ f(k)/f(m)
        m = math.floor((n + 1) * p)
        km = abs(k - m)
        r = p / q
        if km <= 20.0 and n < 1e12:
            # f(i)/f(i − 1) = (n − i + 1) r / i: the products of numerators and denominators
            # (below 1e12^20 = 1e240) and one division
            up = 1.0
            down = 1.0
            for i in range(int(min(k, m)) + 1, int(max(k, m)) + 1):
                up *= (n - i + 1.0) * r
                down *= i
            if v <= (up / down if m < k else down / up):
                return int(k)
            continue
        log_v = math.log(v)
        if 20.0 < km < npq / 2.0 - 1.0:
            rho = (km / npq) * ((km * (km / 3.0 + 0.625) + 1.0 / 6.0) / npq + 0.5)
            t = -km * km / (2.0 * npq)
            if log_v < t - rho:
                return int(k)
            if log_v > t + rho:
                continue
        log_ratio = ((m + 0.5) * math.log((m + 1.0) / (r * (n - m + 1.0)))
                     + (n + 1.0) * math.log((n - m + 1.0) / (n - k + 1.0))
                     + (k + 0.5) * math.log(r * (n - k + 1.0) / (k + 1.0))
                     + _stirling_tail(m) + _stirling_tail(n - m)
                     - _stirling_tail(k) - _stirling_tail(n - k))
        if log_v <= log_ratio:
            return int(k)


if kernels.AVAILABLE:
    import numba

    _jit = numba.njit(cache=True, nogil=True)
    _stirling_tail = _jit(_stirling_tail)
    _inversion = _jit(_inversion)
    _btrs = _jit(_btrs)
    _binomial = _jit(_binomial)
    _counts_kernel = _jit(_counts_kernel)
    _table_kernel = _jit(_table_kernel)


# --- the history ------------------------------------------------------------------------------
class CountHistory(CountHistoryBase):
    """What a scenario may draw on when it builds model m, models held as counts (numpy).
    ``compiled``: draw with the compiled samplers (else ``Generator.multinomial``)."""

    def __init__(self, scenario: Scenario, p_live: np.ndarray, row_context: np.ndarray,
                 streams: RowStreams, n_generations: int, *,
                 compiled: bool = kernels.AVAILABLE):
        super().__init__(scenario, row_context, streams, p_live.shape[1])
        self.compiled = compiled
        self._p0 = CountsFromP0(p_live)

    def draw_counts(self, t: int, size: int) -> np.ndarray:
        if t == 0:
            return self._p0(self.row_context, size, self.streams, compiled=self.compiled)
        return self._models[t].draw(size, self.streams, compiled=self.compiled)

    def fit(self, counts: np.ndarray, size: int) -> CountModel:
        return CountModel(counts, size, self.n_live)
