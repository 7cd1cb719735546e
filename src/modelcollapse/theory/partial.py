"""The partially synthetic loop: exact second moments and the L1 deviation ‖p(m) − p(1)‖₁.

Setting (§2.2, §3.2, proof of Theorem 4): p(1) = c/N is fitted on a fixed real corpus of N
samples of p(0) (counts c ~ Multinomial(N, p(0))); for m ≥ 2,
p(m) = (N p(1) + n q(m−1))/(N + n), where q(m−1) is the empirical distribution of n fresh
draws from p(m−1). Write α = n/(N+n) and D_m = p(m) − p(1) = α (q(m−1) − p(1)).

Exact results (derived here, checked by exact enumeration and simulation in the tests):

* E[p(m)_i p(1)_i] = E[p(1)_i²] for every m ≥ 1 (p(m) is a martingale around p(1)), hence
  E‖p(m) − p(1)‖₂² = S_m − S_1, with S_m of Theorem 2 (eq. 9).
* Given the corpus, Cov(D_m | p(1)) = c_m (diag p(1) − p(1)p(1)ᵀ) with
  c_m = (α²/n)(1 − r^{m−1})/(1 − r), r = α²(1 − 1/n): D_m = α(q(m−1) − p(m−1)) + α D_{m−1}
  and E[Cov_multinomial(p(m−1)) | p(1)] = Σ1 − Cov(D_{m−1} | p(1)).
* Each token on its own is a two-allele chain: with corpus count c, the synthetic count
  J_m of that token in the training set of model m satisfies J_2 ~ Bin(n, c/N),
  J_{m+1} | J_m ~ Bin(n, (c + J_m)/(N+n)), and D_{m,i} = (N J_m − n c)/(N(N+n)). So
  E‖D_m‖₁ = Σ_c w_c E|N J_m − n c|/(N(N+n)), w_c = Σ_i P(Bin(N, p_i) = c), is exact and
  costs (number of corpus counts) × (n+1)² × m operations.

Public (re-exported by :mod:`modelcollapse.theory`): ``expected_l1_to_first`` (E‖D_m‖₁, the
quantity Theorems 3 and 4 bound). The exact E‖p(m) − p(1)‖₂² is ``theory.expected_l2sq_to_first``
(built on ``expected_l2sq_deviation`` here). Building blocks, importable from here:
``token_second_moments_partial``, ``expected_l2sq_deviation``, ``deviation_variance_factor``,
``corpus_count_weights``, ``beta_mean_abs_deviation``.

Predictions and bounds for E‖D_m‖₁ (``expected_l1_to_first``):

* ``method="exact"``: the per-token chain above, run on the window of states of J that holds
  its law (the stationary law, for m = None, by a linear solve).
* ``method="beta"``: p(m)_i given its corpus count as a Beta law with the exact mean c/N and
  the exact variance c_m μ(1 − μ); its mean absolute deviation is closed-form. As n → ∞ it
  becomes exact for m = None: the chain pulled back to p(1) is then the Wright–Fisher
  diffusion with immigration, whose stationary law is Beta(2Nμ, 2N(1 − μ)).
* ``method="gaussian"``: D_m | p(1) normal with the exact conditional covariance.
* ``method="auto"`` (default): exact for every corpus count whose window is small (the
  discrete, skewed cases where the continuous forms fail by up to 35 %), Beta for the rest;
  within 0.05 % of the exact value on every case in docs/theory.md, in seconds.
* ``jensen_upper``: Σ_i √(E D_{m,i}²) = √(c_m (1 − 1/N)) Σ_i √(p_i(1 − p_i)), a rigorous upper
  bound (E|X| ≤ √(E X²)), far below Theorem 3's bound, which exceeds 2 in most settings.

``m=None`` means the stationary limit m → ∞ (c_m increases with m, so it is the worst case
over generations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import betaln, gammaln, xlog1py, xlogy
from scipy.stats import binom

from .._validation import check_choice, check_int, check_probabilities
from ..engine.footprint import check_fits
from .paper import _generations, expected_sigma_partial

__all__ = [
    "L1Deviation",
    "beta_mean_abs_deviation",
    "corpus_count_weights",
    "deviation_variance_factor",
    "expected_l1_to_first",
    "expected_l2sq_deviation",
    "token_second_moments_partial",
]

#: ``method="auto"`` runs the exact chain for a corpus count when its window has ≤ this many states.
AUTO_WINDOW = 160
#: Corpus-count weights below this are dropped (they cannot move the result).
WEIGHT_FLOOR = 1e-14
#: Cells of (token probability, corpus count) the windowed weight table evaluates at once.
CELLS_PER_CHUNK = 10**6
#: Cells of (corpus count, state, state) the batched exact chains hold at once.
CHAIN_CELLS = 4 * 10**6


def _where(name: str) -> str:
    return f"theory.{name}"


def _check_sizes(n: int, N: int, m: int | None, name: str, low_m: int = 1) -> tuple[int, int,
                                                                                       int | None]:
    where = _where(name)
    n = check_int(n, "n", low=1, where=where)
    N = check_int(N, "N", low=1, where=where)
    if m is not None:
        m = check_int(m, "m", low=low_m, where=where)
    return n, N, m


def token_second_moments_partial(p0: np.ndarray, n: int, N: int, m: int | None) -> np.ndarray:
    """ν_i^(m) = E[(p(m)_i)²] for every token, shape (vocab,), exact (appendix B.3).

    ν^(0) = p², ν^(1) = p/N + (1 − 1/N) p², and for m ≥ 2
    ν^(m) = [(N + 3n) p + (N − 1)(N + 2n) p² + n(n − 1) ν^(m−1)]/(N + n)².
    ``m=None`` gives the limit m → ∞.
    """
    p = check_probabilities(p0, "p0", where=_where("token_second_moments_partial"))
    n, N, m = _check_sizes(n, N, m, "token_second_moments_partial", low_m=0)
    if m == 0:
        return p * p
    first = p / N + (1 - 1 / N) * p * p
    if m == 1:
        return first
    size = N + n
    drive = ((N + 3 * n) * p + (N - 1) * (N + 2 * n) * p * p) / size**2
    beta = n * (n - 1) / size**2
    fixed = drive / (1 - beta)
    if m is None:
        return fixed
    return fixed + beta ** (m - 1) * (first - fixed)


def expected_l2sq_deviation(S0: float, n: int, N: int,
                            m: int | np.ndarray | None) -> float | np.ndarray:
    """E‖p(m) − p(1)‖₂² = S_m − S_1 exactly (module doc; S_m of Theorem 2, eq. 9), for m ≥ 1
    (an int: a float; an int array: an array of its shape); ``None``: m → ∞."""
    n, N, _ = _check_sizes(n, N, None, "expected_l2sq_deviation")
    S1 = float(expected_sigma_partial(S0, n, N, 1))
    if m is None:
        return deviation_variance_factor(n, N, None) * (1 - S1)
    gens = _generations(m, "expected_l2sq_deviation", low=1)
    out = expected_sigma_partial(S0, n, N, gens) - S1
    return float(out) if gens.ndim == 0 else out


def deviation_variance_factor(n: int, N: int, m: int | None) -> float:
    """c_m with Cov(p(m) − p(1) | p(1)) = c_m (diag p(1) − p(1) p(1)ᵀ); c_1 = 0.

    c_m = (α²/n)(1 − r^{m−1})/(1 − r), α = n/(N+n), r = α²(1 − 1/n); ``None``: m → ∞.
    """
    n, N, m = _check_sizes(n, N, m, "deviation_variance_factor")
    alpha = n / (N + n)
    r = alpha * alpha * (1 - 1 / n)
    if m is None:
        return alpha * alpha / n / (1 - r)
    return alpha * alpha / n * (1 - r ** (m - 1)) / (1 - r)


def corpus_count_weights(p0: np.ndarray, N: int) -> np.ndarray:
    """w_c = Σ_i P(Bin(N, p_i) = c) for c = 0 … N: the expected number of tokens whose corpus
    count is c. Shape (N+1,); sums to the support size."""
    p = check_probabilities(p0, "p0", where=_where("corpus_count_weights"))
    N = check_int(N, "N", low=1, where=_where("corpus_count_weights"))
    # The table has a cell per corpus count: refuse, in one line, one the machine cannot hold.
    check_fits(8 * 3 * (N + 1), what="corpus-count table", detail=f"N + 1 = {N + 1:,} counts",
               way_out="a smaller 'N'", where=_where("corpus_count_weights"))
    # Tokens of equal probability share one binomial: group them (a uniform or target p(0)
    # has one or two distinct values, so the table then costs a few pmf rows, not one a token).
    values, multiplicity = np.unique(p[p > 0], return_counts=True)
    if values.size * (N + 1) <= 2 * 10**7:
        pmf = binom.pmf(np.arange(N + 1)[None, :], N, values[:, None])
        return multiplicity.astype(float) @ pmf
    # Large corpora: each binomial on a window of ±12 sd around its mean, all windows as one
    # flat array of (value, count) cells, in chunks of at most CELLS_PER_CHUNK cells.
    sd = np.sqrt(N * values * (1 - values))
    lo = np.maximum(0, (N * values - 12 * sd - 2).astype(np.int64))
    hi = np.minimum(N, (N * values + 12 * sd + 2).astype(np.int64))
    width = hi - lo + 1
    w = np.zeros(N + 1)
    start = 0
    while start < values.size:
        stop = start + max(1, int(np.searchsorted(np.cumsum(width[start:]), CELLS_PER_CHUNK)))
        stop = min(stop, values.size)
        rows = np.repeat(np.arange(start, stop), width[start:stop])
        offset = np.arange(rows.size) - np.repeat(np.cumsum(width[start:stop]) - width[start:stop],
                                                  width[start:stop])
        c = lo[rows] + offset
        w += np.bincount(c, weights=multiplicity[rows] * binom.pmf(c, N, values[rows]),
                         minlength=N + 1)
        start = stop
    return w


@dataclass(frozen=True)
class L1Deviation:
    """E‖p(m) − p(1)‖₁: ``value`` (by ``method``), and the rigorous ``jensen_upper`` bound.

    ``exact_share`` is the fraction of the expected tokens (weighted by w_c) computed by the
    exact chain; the rest used the moment-matched Beta form."""

    value: float
    method: str
    jensen_upper: float
    generations: int | None
    exact_share: float


def _window(c: int, N: int, n: int, factor: float) -> tuple[int, int]:
    """States of J that carry all but ~1e-25 of its law at every generation: n μ ± 12 sd + 10,
    sd² ≤ n² μ(1 − μ)(c_m + 1/n) (J/n is q(m−1), whose variance given p(1) is at most
    that of p(m−1) plus one multinomial draw)."""
    mu = c / N
    sd = n * math.sqrt(mu * (1 - mu) * (factor + 1 / n))
    lo = max(0, math.floor(n * mu - 12 * sd - 10))
    hi = min(n, math.ceil(n * mu + 12 * sd + 10))
    return lo, hi


def _binom_pmf(k: np.ndarray, n: int, prob: np.ndarray) -> np.ndarray:
    """Binomial pmf by log-gamma (broadcasting k against prob); 3-5× faster than scipy.stats
    on the (W, W) grids of the per-token chain."""
    log_choose = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    return np.exp(log_choose + xlogy(k, prob) + xlog1py(n - k, -prob))


def _exact_count(c: int, N: int, n: int, m: int | None, factor: float) -> float:
    """E|D_{m,i}| for a token with corpus count c, by the two-allele chain on a window."""
    lo, hi = _window(c, N, n, factor)
    j = np.arange(lo, hi + 1)
    state = _binom_pmf(j, n, np.array(c / N))  # law of J_2
    if m is None or m > 2:
        trans = _binom_pmf(j[None, :], n, ((c + j) / (N + n))[:, None])  # (W, W), row = from
        if m is None:
            # Stationary law by iterating the chain (vector-matrix products: cheap, unlike
            # small LAPACK solves or matrix squaring under threaded BLAS on a busy machine).
            # It contracts by α = n/(N+n) per step; stop when a step moves < 1e-14. The law
            # is renormalised every step: rows of the log-gamma pmf sum to 1 ± 1e-13.
            for _ in range(10**6):
                new = state @ trans
                new /= new.sum()
                if np.max(np.abs(new - state)) < 1e-14:
                    break
                state = new
            state = new
        else:
            # Once a step moves the law by < 1e-14 it has reached the stationary law, and
            # further steps change nothing: a large m costs what m = None costs.
            for _ in range(m - 2):
                new = state @ trans
                if np.max(np.abs(new - state)) < 1e-14:
                    break
                state = new
    return float(state @ np.abs(N * j - n * c)) / (N * (N + n))


def _windows(cs: np.ndarray, N: int, n: int, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_window` for an array of corpus counts: (lo, hi), each of the shape of ``cs``."""
    mu = cs / N
    sd = n * np.sqrt(mu * (1 - mu) * (factor + 1 / n))
    lo = np.maximum(0, np.floor(n * mu - 12 * sd - 10)).astype(np.int64)
    hi = np.minimum(n, np.ceil(n * mu + 12 * sd + 10)).astype(np.int64)
    return lo, hi


def _exact_counts(cs: np.ndarray, N: int, n: int, m: int | None, factor: float) -> np.ndarray:
    """:func:`_exact_count` for many corpus counts at once, shape of ``cs``: the chains run
    side by side on windows padded to the widest (states outside a count's window hold no
    mass and receive none), in batches of at most CHAIN_CELLS (count, state, state) cells.
    Each chain stops exactly where :func:`_exact_count` stops it (a step that moves its law
    by < 1e-14), so the two agree to rounding."""
    out = np.empty(cs.size)
    if cs.size == 0:
        return out
    lo, hi = _windows(cs, N, n, factor)
    order = np.argsort(hi - lo)  # similar widths share a batch: less padding
    start = 0
    while start < cs.size:
        width = int(hi[order[start]] - lo[order[start]] + 1)
        stop = start + 1
        while stop < cs.size:
            wider = int(hi[order[stop]] - lo[order[stop]] + 1)
            if (stop + 1 - start) * wider * wider > CHAIN_CELLS:
                break
            width = wider
            stop += 1
        idx = order[start:stop]
        out[idx] = _exact_batch(cs[idx], lo[idx], hi[idx], width, N, n, m)
        start = stop
    return out


def _exact_batch(cs: np.ndarray, lo: np.ndarray, hi: np.ndarray, width: int, N: int, n: int,
                 m: int | None) -> np.ndarray:
    j = lo[:, None] + np.arange(width)[None, :]  # (C, W) states of each chain
    inside = j <= hi[:, None]
    j = np.minimum(j, hi[:, None])  # padded states: any valid number, masked below
    c = cs[:, None].astype(float)
    state = np.where(inside, _binom_pmf(j, n, c / N), 0.0)  # law of J_2, (C, W)
    if m is None or m > 2:
        # (C, W, W), [chain, from, to]; no mass flows into or out of padded states
        trans = _binom_pmf(j[:, None, :], n, ((c + j) / (N + n))[:, :, None])
        trans *= inside[:, None, :] & inside[:, :, None]
        active = np.ones(cs.size, dtype=bool)
        steps = 10**6 if m is None else m - 2
        for _ in range(steps):
            if not active.any():
                break
            new = np.matmul(state[active, None, :], trans[active])[:, 0, :]
            if m is None:
                new /= new.sum(axis=1, keepdims=True)
            moved = np.max(np.abs(new - state[active]), axis=1) >= 1e-14
            rows = np.flatnonzero(active)
            if m is None:
                state[rows] = new  # the first law that moves < 1e-14 is kept (as _exact_count)
            else:
                state[rows[moved]] = new[moved]
            active[rows[~moved]] = False
    return np.sum(state * np.abs(N * j - n * c), axis=1) / (N * (N + n))


def beta_mean_abs_deviation(c: np.ndarray, N: int, factor: float) -> np.ndarray:
    """E|X − μ| per corpus count c (array), X ~ Beta with mean μ = c/N and variance
    factor·μ(1 − μ): 2 μ^a (1 − μ)^b / ((a + b) B(a, b)), a = κμ, b = κ(1 − μ), κ = 1/factor − 1.

    With factor = c_m it models p(m)_i given p(1)_i = μ. As n → ∞ (m → ∞, factor → 1/(2N+1))
    it is the exact diffusion limit: the Wright–Fisher chain pulled back to p(1) has the
    stationary law Beta(2Nμ, 2N(1 − μ))."""
    mu = c / N
    kappa = 1.0 / factor - 1.0
    a, b = kappa * mu, kappa * (1 - mu)
    log_mad = (math.log(2.0) + a * np.log(mu) + b * np.log1p(-mu) - np.log(a + b)
               - betaln(a, b))
    return np.exp(log_mad)


def expected_l1_to_first(p0: object, *, n: int, N: int, m: int | None = None,
                         method: str = "auto") -> L1Deviation:
    """E‖p(m) − p(1)‖₁ (metric ``l1_to_first``) for the partially synthetic loop, the quantity
    Theorem 3 and Theorem 4 bound; m ≥ 1, or None for m → ∞ (module doc).

    ``method``: "exact" (per-token chain for every corpus count), "beta" (moment-matched Beta
    for every count), "gaussian" (normal with the exact conditional covariance), or "auto":
    the exact chain for each count whose window has at most 160 states (the discrete,
    skewed cases) and the Beta form for the rest (counts and n both large, where it is within
    1 % of exact; see docs/theory.md). ``p0`` is (vocab,). The result also carries the
    rigorous upper bound ``jensen_upper``.
    """
    where = _where("expected_l1_to_first")
    p = check_probabilities(p0, "p0", where=where)
    if p.ndim != 1:
        raise ValueError(f"The 'p0' parameter of {where} must be one distribution (vocab,). "
                         f"Got shape {p.shape} instead.")
    n, N, m = _check_sizes(n, N, m, "expected_l1_to_first")
    method = check_choice(method, "method", ("auto", "exact", "beta", "gaussian"), where=where)
    factor = deviation_variance_factor(n, N, m)
    q = p[p > 0]
    upper = math.sqrt(factor * (1 - 1 / N)) * float(np.sum(np.sqrt(q * (1 - q))))
    if m == 1:
        return L1Deviation(0.0, "exact", 0.0, m, 1.0)
    return _l1_from_weights(corpus_count_weights(p, N), n=n, N=N, m=m, method=method,
                            factor=factor, upper=upper)


def _l1_from_weights(weights: np.ndarray, *, n: int, N: int, m: int | None, method: str,
                     factor: float | None = None, upper: float = math.nan) -> L1Deviation:
    """The body of :func:`expected_l1_to_first` given the corpus-count weights (inputs
    already checked): callers that evaluate many n for one p(0) (the budget's search) build
    the weight table once."""
    if factor is None:
        factor = deviation_variance_factor(n, N, m)
    if m == 1:
        return L1Deviation(0.0, "exact", 0.0, m, 1.0)
    cs = np.flatnonzero(weights > WEIGHT_FLOOR)
    cs = cs[(cs > 0) & (cs < N)]  # c = 0 and c = N never deviate
    if cs.size == 0:
        return L1Deviation(0.0, "exact", upper, m, 1.0)
    if method == "gaussian":
        mu = cs / N
        spread = float(np.sum(weights[cs] * np.sqrt(mu * (1 - mu))))
        value = math.sqrt(2 * factor / math.pi) * spread
        return L1Deviation(value, method, upper, m, 0.0)
    if method == "exact":
        exact = np.ones(cs.size, dtype=bool)
    elif method == "beta":
        exact = np.zeros(cs.size, dtype=bool)
    else:
        lo, hi = _windows(cs, N, n, factor)
        exact = hi - lo + 1 <= AUTO_WINDOW
    value = float(np.sum(weights[cs[exact]] * _exact_counts(cs[exact], N, n, m, factor)))
    if np.any(~exact):
        value += float(np.sum(weights[cs[~exact]] * beta_mean_abs_deviation(cs[~exact], N, factor)))
    share = float(weights[cs[exact]].sum() / weights[cs].sum())
    label = method if method != "auto" else ("exact" if share == 1.0 else
                                             "beta" if share == 0.0 else "exact+beta")
    return L1Deviation(float(value), label, upper, m, share)
