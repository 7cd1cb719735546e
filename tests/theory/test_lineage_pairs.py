"""Moments from ancestral lineages (theory.lineage_pairs) against closed forms, exact chains,
the cross-moment recursions and the loop.

Exact checks hold to rounding. Monte Carlo checks use fixed seeds and |z| < 4 from the standard
error of the simulated mean.
"""

from __future__ import annotations

import numpy as np
import pytest

from modelcollapse import simulate
from modelcollapse.distributions import target_distribution
from modelcollapse.scenarios import (
    Accumulate,
    FreshReal,
    FullySynthetic,
    MostRecent,
    PartiallySynthetic,
    RandomPool,
)
from modelcollapse.theory import expected_l2sq_to_first, expected_sigma
from modelcollapse.theory.lineage_pairs import (
    _sigma_by_descent,
    expected_power_sum,
    partially_synthetic_moments,
)
from modelcollapse.theory.markov import fully_synthetic_chain, window_chain
from result_tables import full

Z_MAX = 4.0


# -- fully synthetic: E[Σ_i (p_i^{(m)})^r] from r lineages -----------------------------------


@pytest.mark.parametrize("n", [1, 3, 10, 57])
def test_eq6_sigma_from_two_lineages(n):
    p0 = target_distribution(40, 12, 0.2, seed=5)
    m = np.arange(31)
    expected = 1 - (1 - 1 / n) ** m * (1 - 0.2)          # eq. 6
    np.testing.assert_allclose(expected_power_sum(p0, n, 30), expected, rtol=1e-12)


def test_third_power_sum_matches_count_chain():
    p = np.array([0.2, 0.3, 0.5])
    chain = fully_synthetic_chain(p, 6)
    pi = chain.initial.copy()
    exact = [float(np.sum(p**3))]
    for _ in range(12):
        exact.append(float(pi @ np.sum((chain.states / 6) ** 3, axis=1)))
        pi = pi @ chain.transition
    np.testing.assert_allclose(expected_power_sum(p, 6, 12, order=3), exact, rtol=1e-12)


# -- partially synthetic ---------------------------------------------------------------------


def _eq9(m, n, N, S0):
    """S_m of Theorem 2 (eq. 9), with the S0-term sign as appendix B.3's recursion gives it."""
    if m == 1:
        return 1 / N + (1 - 1 / N) * S0
    a = n / (N + n)
    b = a * ((1 + 1 / N) * a - 1 / N)
    d = 1 + (1 + 1 / N) * a
    k = m - 1
    return ((1 / N) * (1 + 2 * a - (1 - 1 / N) * a * b**k) / d
            + (1 - 1 / N) * S0 / d * (1 + a + a * b**k / N))


@pytest.mark.parametrize(("n", "N"), [(1, 1), (3, 5), (10, 2), (50, 50)])
def test_partially_synthetic_sigma_is_theorem2(n, N):
    p0 = target_distribution(20, 7, 0.25, seed=4)
    moments = partially_synthetic_moments(p0, n, N, 12)
    assert moments.sigma_mean[0] == pytest.approx(0.25, rel=1e-9)
    expected = [_eq9(m, n, N, 0.25) for m in range(1, 13)]
    np.testing.assert_allclose(moments.sigma_mean[1:], expected, rtol=1e-12)


def test_partially_synthetic_moments_against_simulation():
    p0 = np.array([0.45, 0.3, 0.15, 0.1])
    n, N, runs, G = 6, 4, 40_000, 6
    moments = partially_synthetic_moments(p0, n, N, G)
    rng = np.random.Generator(np.random.PCG64DXSM(2024))
    corpus = rng.multinomial(N, p0, size=runs)
    first = corpus / N
    model = first
    l2 = np.zeros((runs, G + 1))
    sigma = np.zeros((runs, G + 1))
    sigma[:, 1] = np.sum(first**2, axis=1)
    for m in range(2, G + 1):
        model = (corpus + rng.multinomial(n, model)) / (N + n)
        l2[:, m] = np.sum((model - first) ** 2, axis=1)
        sigma[:, m] = np.sum(model**2, axis=1)
    for m in range(2, G + 1):
        for values, exact in ((l2[:, m], moments.l2sq_to_first[m]),
                              (sigma[:, m], moments.sigma_mean[m])):
            se = values.std(ddof=1) / np.sqrt(runs)
            assert abs(values.mean() - exact) < Z_MAX * se
    # the loop's σ_m agrees too, and nothing ever collapses with a 4-sample non-Dirac corpus
    res = simulate(p0=p0, scenario=PartiallySynthetic(n=n, N=N), runs=4000, generations=G, seed=5,
                   metrics=("sigma", "collapsed"), progress=False)
    for m in range(1, G + 1):
        values = full(res).sigma.values[:, 0, m]
        se = values.std(ddof=1) / np.sqrt(values.size)
        assert abs(values.mean() - moments.sigma_mean[m]) < Z_MAX * se
    rho = moments.collapse_prob[1]
    assert rho == pytest.approx(np.sum(p0**N))
    hits = full(res).collapsed.values[:, 0, G].mean()
    assert abs(hits - rho) < Z_MAX * np.sqrt(rho * (1 - rho) / 4000)


# -- S_m of every fresh-draw scenario from a pair of lineages --------------------------------


def test_sigma_by_descent_reduces_to_eq6_and_eq9():
    p0 = target_distribution(20, 7, 0.25, seed=4)
    np.testing.assert_allclose(_sigma_by_descent(p0, FullySynthetic(n=9), 25),
                               1 - (1 - 1 / 9) ** np.arange(26) * 0.75, rtol=1e-12)
    np.testing.assert_allclose(_sigma_by_descent(p0, MostRecent(n=9, K=1), 25),
                               _sigma_by_descent(p0, FullySynthetic(n=9), 25), rtol=1e-13)
    np.testing.assert_allclose(_sigma_by_descent(p0, PartiallySynthetic(n=3, N=5), 10)[1:],
                               [_eq9(m, 3, 5, 0.25) for m in range(1, 11)], rtol=1e-12)
    with pytest.raises(ValueError, match="'scenario' parameter of expected_sigma"):
        _sigma_by_descent(p0, Accumulate(n=3, N=5), 4)


@pytest.mark.parametrize("split", ["even", "literal"])
@pytest.mark.parametrize(("n", "K"), [(4, 2), (5, 3), (7, 3)])
def test_window_sigma_matches_exact_window_chain(n, K, split):
    exact = window_chain([0.4, 0.6], n, K, split=split).sigma_mean(40)
    scenario = MostRecent(n=n, K=K, split=split)
    np.testing.assert_allclose(_sigma_by_descent([0.4, 0.6], scenario, 40), exact, rtol=1e-12)
    np.testing.assert_allclose(expected_sigma([0.4, 0.6], scenario=scenario, m=np.arange(41)),
                               exact, rtol=1e-12)


@pytest.mark.parametrize(("scenario", "seed"), [(RandomPool(n=6), 31),
                                                (MostRecent(n=10, K=5), 32),
                                                (FreshReal(n=6, N=3), 33)])
def test_expected_sigma_matches_the_loop(scenario, seed):
    p0 = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
    runs, G = 4000, 30
    exact = expected_sigma(p0, scenario=scenario, m=np.arange(G + 1))
    res = simulate(p0=p0, scenario=scenario, runs=runs, generations=G, seed=seed,
                   metrics=("sigma",), progress=False)
    sigma = full(res).sigma.values[:, 0, :]
    se = sigma.std(axis=0, ddof=1) / np.sqrt(runs)
    z = (sigma.mean(axis=0)[1:] - exact[1:]) / se[1:]
    assert np.max(np.abs(z)) < Z_MAX  # 30 generations: Bonferroni level 30 × 6.3e-5 = 2e-3


def test_pair_genealogy_agrees_with_the_public_second_moments():
    """Two independent derivations of the same second moments: lineage pairs here; eqs. 6
    and 9 and the cross moments M(t, u) of theory.mixed and theory.partial behind the public
    theory.expected_sigma and theory.expected_l2sq_to_first."""
    p0 = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
    m = np.arange(121)
    for scenario in (FullySynthetic(n=7), PartiallySynthetic(n=3, N=5), MostRecent(n=10, K=5),
                     MostRecent(n=9, K=4, split="literal"), RandomPool(n=6), FreshReal(n=6, N=3)):
        np.testing.assert_allclose(_sigma_by_descent(p0, scenario, 120),
                                   expected_sigma(p0, scenario=scenario, m=m), rtol=1e-12)
    moments = partially_synthetic_moments(p0, 3, 5, 20)
    m = np.array([1, 2, 5, 20])
    np.testing.assert_allclose(
        moments.l2sq_to_first[m],
        expected_l2sq_to_first(p0, scenario=PartiallySynthetic(n=3, N=5), m=m),
        rtol=1e-12, atol=1e-15)
