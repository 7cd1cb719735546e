"""Moments of p(m) from a few ancestral lineages: E[Σ_i (p_i^{(m)})^r] and S_m = E‖p(m)‖₂².

The argument of :mod:`.genealogy` (docs/collapse_time_law.md) with r lineages instead of n:
r draws from p(m) trace back to A distinct draws of p(0), which are i.i.d. p(0) and independent
of the genealogy, so all r carry one token with probability Σ_i p_i^A. In the fully-synthetic
loop A follows the occupancy chain of :func:`~.genealogy.lineage_pmf`, which gives
E[Σ_i (p_i^{(m)})^r] (:func:`expected_power_sum`); r = 2 is the paper's eq. 6 (Theorem 1).

Pairs of lineages give S_m for every scenario whose samples are fresh draws
(:func:`_sigma_by_descent`, an independent derivation that the tests hold
``theory.expected_sigma`` to: windows of either split, the random pool of §4.2, fresh real data;
the counts n_t^(m) of eq. 5): two draws carry the same token if their lineages meet
(identity by descent) and otherwise with probability S0. Where a lineage can land on the fixed
real corpus they give the partially-synthetic S_m of eq. 9 (Theorem 2) and the exact
E‖p(m) − p(1)‖₂² (:func:`partially_synthetic_moments`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_int
from ..scenarios import (
    FreshReal,
    FullySynthetic,
    MostRecent,
    PartiallySynthetic,
    RandomPool,
    Scenario,
)
from .genealogy import _ancestor_weights, _as_contexts, _support_logs, lineage_pmf

__all__ = [
    "PartiallySyntheticMoments",
    "expected_power_sum",
    "partially_synthetic_moments",
]


# ---------------------------------------------------------------------------------------------
# Fully synthetic: r lineages on the occupancy chain


def expected_power_sum(p0: object, n: int, n_generations: int, *, order: int = 2) -> np.ndarray:
    """E[Σ_i (p_i^{(m)})^r] for m = 0 … n_generations in the fully-synthetic loop.

    r = ``order`` draws from p(m) are r lineages; after m generations of uniform parent choice
    they sit on A distinct draws of p(0), and all r draws carry one token with probability
    Σ_i p_i^A. For r = 2 this is S_m of the paper's eq. 6: 1 − (1 − 1/n)^m (1 − S0).
    Returns (n_generations+1,) for a vector p0, (contexts, n_generations+1) for a matrix.
    """
    p, single = _as_contexts(p0, "expected_power_sum")
    n = check_int(n, "n", low=1, where="expected_power_sum")
    n_generations = check_int(n_generations, "n_generations", low=0, where="expected_power_sum")
    order = check_int(order, "order", low=1, where="expected_power_sum")
    pmf = lineage_pmf(n, order, n_generations)                 # (G+1, r)
    dirac = _ancestor_weights(p, order)["dirac"]               # (contexts, r)
    out = np.minimum(dirac @ pmf.T, 1.0)                       # (contexts, G+1)
    return out[0] if single else out


# ---------------------------------------------------------------------------------------------
# Partially synthetic: pairs of lineages and the fixed corpus


@dataclass(frozen=True, eq=False)
class PartiallySyntheticMoments:
    """Exact second moments of the partially-synthetic loop (paper §2.2, §3.2), m = 0 … G.

    ``sigma_mean``: S_m = E‖p(m)‖₂² (Theorem 2, eq. 9). ``l2sq_to_first``: E‖p(m) − p(1)‖₂²
    = α² (1 − S0) (F_m − 1/N), α = n/(N+n), F_m = P(two draws of the n synthetic samples of
    model m share a corpus ancestor). ``collapse_prob``: ρ_m = Σ_i p_i^N for m ≥ 1 (p(m) is a
    Dirac mass only if the corpus is). ``expected_support``: Σ_i 1 − (1 − p_i)^N for m ≥ 1
    (every model contains the corpus). Arrays (G+1,) or (contexts, G+1).
    """

    sigma_mean: np.ndarray
    l2sq_to_first: np.ndarray
    collapse_prob: np.ndarray
    expected_support: np.ndarray


def partially_synthetic_moments(p0: object, n: int, N: int,
                                n_generations: int) -> PartiallySyntheticMoments:
    """Pairs of lineages in the partially-synthetic loop: p(1) = corpus of N draws of p(0),
    p(m) = (corpus + n draws of p(m−1)) / (N + n).

    Every lineage ends on a corpus sample. Two distinct synthetic samples of generation m ≥ 3
    pick training samples of model m−1 (N corpus + n synthetic): the same one with probability
    1/(N+n); a corpus and a synthetic sample, whose corpus ancestor is that one with
    probability 1/N; or two distinct synthetic ones (recursion). So f_2 = 1/N and
    f_m = [N + 3n + n(n−1) f_{m−1}] / (N+n)²; F_m = 1/n + (1 − 1/n) f_m. Two samples with
    the same corpus ancestor carry the same token; otherwise they agree with probability S0.
    """
    p, single = _as_contexts(p0, "partially_synthetic_moments")
    n = check_int(n, "n", low=1, where="partially_synthetic_moments")
    N = check_int(N, "N", low=1, where="partially_synthetic_moments")
    G = check_int(n_generations, "n_generations", low=0, where="partially_synthetic_moments")
    s0 = np.sum(p * p, axis=1)[:, None]                    # (contexts, 1)
    total = N + n
    big_f = np.zeros(G + 1)                                # F_m, m ≥ 2
    f = 1.0 / N
    for m in range(2, G + 1):
        if m > 2:
            f = (N + 3 * n + n * (n - 1) * f) / total**2
        big_f[m] = 1.0 / n + (1.0 - 1.0 / n) * f

    def same(ibd: np.ndarray | float) -> np.ndarray:
        return ibd + (1.0 - ibd) * s0

    corpus_pair = same(1.0 / N)                            # E Σ c_i² = E Σ c_i q_i
    sigma = np.empty((p.shape[0], G + 1))
    sigma[:, 0] = s0[:, 0]
    if G >= 1:
        sigma[:, 1] = corpus_pair[:, 0]
    if G >= 2:
        synth = same(big_f[None, 2:])                      # E Σ q_i²
        sigma[:, 2:] = (N * N * corpus_pair + 2 * N * n * corpus_pair
                        + n * n * synth) / total**2
    alpha = n / total
    l2 = np.zeros_like(sigma)
    l2[:, 0] = (1.0 - s0[:, 0]) / N  # E‖p(0) − p(1)‖² = E σ_1 − S0 (p(1) is unbiased)
    if G >= 2:
        l2[:, 2:] = alpha**2 * (1.0 - s0) * (big_f[None, 2:] - 1.0 / N)
    rho = np.zeros_like(sigma)
    rho[:, 0] = p.max(axis=1) >= 1.0
    support = np.zeros_like(sigma)
    support[:, 0] = np.count_nonzero(p > 0, axis=1)
    if G >= 1:
        logp, log1m = _support_logs(p)
        rho[:, 1:] = np.exp(N * logp).sum(axis=1)[:, None]
        support[:, 1:] = (-np.expm1(N * log1m)).sum(axis=1)[:, None]

    def out(a: np.ndarray) -> np.ndarray:
        return a[0] if single else a

    return PartiallySyntheticMoments(sigma_mean=out(sigma), l2sq_to_first=out(l2),
                                     collapse_prob=out(rho), expected_support=out(support))


# ---------------------------------------------------------------------------------------------
# Any scenario with fresh draws: S_m from a pair of lineages


def _lagged_pair_identity(scenario: Scenario, G: int) -> np.ndarray:
    """P(two independent draws from p(m) share an ancestral training slot), m = 1 … G, for a
    scenario with deterministic counts n_t^(m) (eq. 5), fresh draws and a finite lag.

    A lineage sits on a training slot of some model; a slot of model a is a draw from model
    u (probability n_u^(a)/n^(a) for a uniform slot), i.e. a uniform slot of model u, or a
    fresh p(0) draw (u = 0), where it ends. With E(a) = P(two independent uniform slots of model
    a coincide in ancestry), F(a) the same for two distinct slots and D(a, b) for uniform slots
    of models a > b:  E(a) = 1/n^(a) + (1 − 1/n^(a)) F(a),
    F(a) = Σ_{u1,u2} n_{u1}(n_{u2} − [u1=u2]) / (n^(a)(n^(a) − 1)) · J(u1, u2),
    D(a, b) = Σ_u n_u^(a)/n^(a) · J(u, b),  J(u, u) = E(u), J(u, v) = D(max, min), J(0, ·) = 0.
    Pairs stay within the lag of each other, so the work is O(G · lag²).
    """
    lag = int(scenario.lag)
    e = np.zeros(G + 1)
    d: dict[tuple[int, int], float] = {}

    def joint(u: int, v: int) -> float:
        if u == 0 or v == 0:
            return 0.0          # distinct fresh draws of p(0) share no ancestry
        if u == v:
            return e[u]
        return d[(u, v) if u > v else (v, u)]

    for a in range(1, G + 1):
        counts = scenario.counts(a).astype(np.float64)
        total = counts.sum()
        sources = np.flatnonzero(counts)
        for b in range(max(1, a - lag + 1), a):
            d[(a, b)] = sum(counts[u] / total * joint(int(u), b) for u in sources)
        f = 0.0
        if total > 1:
            for u in sources:
                for v in sources:
                    pairs = counts[u] * (counts[v] - (u == v))
                    if pairs:
                        f += pairs * joint(int(u), int(v))
            f /= total * (total - 1)
        e[a] = 1.0 / total + (1.0 - 1.0 / total) * f
    return e


def _pool_pair_identity(n: int, G: int) -> np.ndarray:
    """The same for the random pool (§4.2): each slot of model a is a draw from a model chosen
    uniformly in 0 … a−1, independently. Then D(a, b) = [Σ_{b<u<a} D(u, b) + E(b)
    + Σ_{u<b} D(b, u)] / a and F(a) = [Σ_{u<a} E(u) + 2 Σ_{b<u<a} D(u, b)] / a², kept as running
    sums: O(G²) time, O(G) memory."""
    e = np.zeros(G + 1)
    below = np.zeros(G + 1)     # Σ_{b<u<a} D(u, b) for each b, as a grows
    row = np.zeros(G + 1)       # Σ_{u<b} D(b, u): row b of D, summed
    for a in range(1, G + 1):
        f = (e[1:a].sum() + 2.0 * row[1:a].sum()) / (a * a)
        e[a] = 1.0 / n + (1.0 - 1.0 / n) * f
        if a < G:               # row a of D, needed from a + 1 on
            d = (below[1:a] + e[1:a] + row[1:a]) / a
            row[a] = d.sum()
            below[1:a] += d
    return e


def _sigma_by_descent(p0: object, scenario: Scenario, n_generations: int) -> np.ndarray:
    """S_m = E‖p(m)‖₂² (the mean of the loop's ``sigma``), m = 0 … n_generations, exactly,
    from pairs of lineages: the independent cross-check of ``theory.expected_sigma``.

    Two draws from p(m) carry the same token if their lineages meet (identity by descent),
    and otherwise with probability S0, as they end on distinct draws of p(0):
    S_m = I_m + (1 − I_m) S0. Covers the fully-synthetic loop (eq. 6), the most-recent-K
    window (either split) and fresh real data through :func:`_lagged_pair_identity`, the random
    pool through :func:`_pool_pair_identity`, and the partially-synthetic loop (eq. 9) through
    :func:`partially_synthetic_moments`. Returns (G+1,) or (contexts, G+1).
    """
    p, single = _as_contexts(p0, "expected_sigma")
    G = check_int(n_generations, "n_generations", low=0, where="expected_sigma")
    if isinstance(scenario, PartiallySynthetic):
        out = partially_synthetic_moments(p, scenario.n, scenario.N, G).sigma_mean
        return out[0] if single else out
    if isinstance(scenario, RandomPool):
        ibd = _pool_pair_identity(scenario.n, G)
    elif isinstance(scenario, (FullySynthetic, MostRecent, FreshReal)):
        ibd = _lagged_pair_identity(scenario, G)
    else:
        raise ValueError(f"The 'scenario' parameter of expected_sigma must be one of "
                         f"fully-synthetic, partially-synthetic, most-recent, random-pool or "
                         f"fresh-real. Got {scenario.describe()} instead.")
    s0 = np.sum(p * p, axis=1)[:, None]
    out = ibd[None, :] + (1.0 - ibd[None, :]) * s0
    out[:, 0] = s0[:, 0]
    return out[0] if single else out
