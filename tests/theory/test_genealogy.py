"""The exact collapse-time law (theory.genealogy) against exact chains, closed forms and the loop.

Exact checks hold to rounding (1e-9 relative or better). Monte Carlo checks use fixed seeds and
|z| < 4 from the exact standard deviation, or a Kolmogorov–Smirnov p-value > 1e-3 (the KS
p-value is conservative for a discrete T, so the test keeps its level).
"""

from __future__ import annotations

import math
import tracemalloc
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from modelcollapse import simulate
from modelcollapse.distributions import target_distribution
from modelcollapse.scenarios import FullySynthetic
from modelcollapse.theory.genealogy import (
    _Kernel,
    collapse_time_law,
    lineage_pmf,
    occupancy_log_row,
)
from modelcollapse.theory.markov import fully_synthetic_chain
from result_tables import full

Z_MAX = 4.0
P_MIN = 1e-3


def stirling2(j: int, k: int) -> int:
    table = [[0] * (k + 1) for _ in range(j + 1)]
    table[0][0] = 1
    for a in range(1, j + 1):
        for b in range(1, k + 1):
            table[a][b] = b * table[a - 1][b] + table[a - 1][b - 1]
    return table[j][k]


def ks_pvalue(samples: np.ndarray, survival: np.ndarray) -> float:
    """KS test of integer samples against the law with P(T > m) = survival[m]."""
    cdf = 1.0 - survival
    grid = np.arange(survival.size)
    empirical = np.searchsorted(np.sort(samples), grid, side="right") / samples.size
    distance = float(np.max(np.abs(empirical - cdf)))
    return float(stats.kstwo.sf(distance, samples.size))


# -- the occupancy kernel --------------------------------------------------------------------


@pytest.mark.parametrize(("n", "j"), [(1, 1), (1, 5), (5, 3), (7, 7), (6, 11), (30, 30)])
def test_occupancy_row_is_stirling_times_falling_factorial(n, j):
    row = np.exp(occupancy_log_row(n, j))
    exact = [Fraction(stirling2(j, k) * math.perm(n, k), n**j) for k in range(1, min(j, n) + 1)]
    assert row.size == len(exact)
    np.testing.assert_allclose(row, [float(x) for x in exact], rtol=1e-12)


def test_occupancy_rows_sum_to_one_and_never_underflow():
    row = occupancy_log_row(3000, 3000)
    assert np.all(np.isfinite(row))            # P(3000 → 3000) = 3000!/3000³⁰⁰⁰ ≈ e^−2996
    assert row[-1] < -2900
    assert math.isclose(np.exp(row).sum(), 1.0, rel_tol=1e-12)
    pmf = lineage_pmf(200, 200, 300)
    np.testing.assert_allclose(pmf.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(np.diff(pmf @ np.arange(1, 201)) <= 0)  # lineages only merge


def test_rows_rebuilt_on_demand_match_the_dense_block():
    """Above DENSE_ROWS the law rebuilds kernel rows by the recurrence (large n); check that
    path against the dense block on a small n with a tiny block."""
    rng = np.random.default_rng(0)
    pi = rng.dirichlet(np.ones(40))
    dense = _Kernel(40).step(pi, 40)
    rebuilt = _Kernel(40, dense_rows=7).step(pi, 40)
    np.testing.assert_allclose(rebuilt, dense, rtol=1e-12, atol=1e-300)
    assert rebuilt.sum() == pytest.approx(1.0, rel=1e-13)


# -- against the exact count chains ----------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 7, 20, 60])
@pytest.mark.parametrize("p", [0.5, 0.1, 0.93])
def test_matches_exact_two_token_chain(n, p):
    chain = fully_synthetic_chain([p, 1 - p], n)
    law = collapse_time_law([p, 1 - p], n=n, max_generations=40)
    assert law.mean == pytest.approx(chain.mean_collapse_time, rel=1e-9)
    assert law.sd == pytest.approx(chain.sd_collapse_time, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(law.survival, chain.survival(40), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(law.collapse_prob, chain.collapse_prob(40), rtol=1e-9,
                               atol=1e-15)


@pytest.mark.parametrize(("p", "n"), [([0.2, 0.3, 0.5], 6), ([0.1, 0.2, 0.3, 0.4], 5),
                                      ([0.05, 0.0, 0.95, 0.0], 9)])
def test_matches_exact_count_vector_chain(p, n):
    chain = fully_synthetic_chain(p, n)
    law = collapse_time_law(p, n=n)
    assert law.mean == pytest.approx(chain.mean_collapse_time, rel=1e-9)
    assert law.sd == pytest.approx(chain.sd_collapse_time, rel=1e-9)
    m = law.generations[-1]
    np.testing.assert_allclose(law.survival, chain.survival(m), rtol=1e-8, atol=1e-15)


def test_series_and_solve_agree_and_tail_is_below_tol():
    p0 = target_distribution(600, 29, 0.1, seed=0)
    law = collapse_time_law(p0, n=100, tol=1e-12)
    assert law.tail <= 1e-12
    # what the series leaves out is the tail beyond M, about tail × n
    assert law.mean_series == pytest.approx(law.mean, rel=1e-12)
    assert law.sd_series == pytest.approx(law.sd, rel=1e-9)
    assert law.pmf.sum() == pytest.approx(1.0, abs=1e-11)
    assert law.pmf[0] == 0.0 and np.all(law.pmf >= 0)


def test_survival_is_accurate_far_below_rounding_of_one():
    """n = 2, p = (½, ½): P(T > m) = 2^−m exactly; 1 − ρ_m would floor at ~1e−16."""
    law = collapse_time_law([0.5, 0.5], n=2, tol=1e-30)
    m = law.generations
    np.testing.assert_allclose(law.survival[1:], 0.5 ** m[1:], rtol=1e-13)
    assert law.survival[-1] < 1e-30
    # a nearly-Dirac p(0): P(T > 1) = 1 − p1² − p2² = 2ε(1 − ε), without cancellation
    eps = 2.0**-40
    near = collapse_time_law([1 - eps, eps], n=2, max_generations=3)
    assert near.survival[1] == pytest.approx(2 * eps * (1 - eps), rel=1e-13)
    assert near.mean == pytest.approx(1 + 4 * eps * (1 - eps), rel=1e-15)


# -- the paper's results from the same machinery ----------------------------------------------


def test_proposition1_limit_token_and_rho():
    p0 = np.array([0.5, 0.0, 0.3, 0.2])
    law = collapse_time_law(p0, n=12, tol=1e-13)
    late = law.dirac_token_prob(int(law.generations[-1]))
    np.testing.assert_allclose(late, p0, atol=1e-12)       # Proposition 1
    for m in (0, 1, 5, 30):
        assert law.dirac_token_prob(m).sum() == pytest.approx(law.collapse_prob[m], abs=1e-14)
    chain = fully_synthetic_chain(p0, 6)
    np.testing.assert_allclose(collapse_time_law(p0, n=6).dirac_token_prob(8),
                               _chain_token_prob(chain, 8), rtol=1e-10)


def _chain_token_prob(chain, m):
    pi = chain.initial.copy()
    for _ in range(m - 1):
        pi = pi @ chain.transition
    out = np.zeros(chain.p0.size)
    idx = np.flatnonzero(chain.dirac)
    out[chain.tokens[chain.states[idx].argmax(axis=1)]] = pi[idx]
    return out


def test_eq8_bounds_hold():
    for S0, support in ((0.01, 181), (0.5, 10)):
        p0 = target_distribution(600, support, S0, seed=0)
        for n in (10, 100):
            mean = collapse_time_law(p0, n=n).mean
            lower = 1 + (1 - S0) / (1 - 1 / support) * (n - 1)
            upper = 1 + (1 - S0) * n * (n - 1)
            assert lower <= mean <= upper


# -- edge cases and shapes -------------------------------------------------------------------


def test_one_sample_collapses_at_once():
    law = collapse_time_law([0.2, 0.8], n=1)
    assert (law.mean, law.sd) == (1.0, 0.0)
    np.testing.assert_array_equal(law.survival, [1.0, 0.0])
    np.testing.assert_array_equal(law.collapse_prob, [0.0, 1.0])
    np.testing.assert_array_equal(law.expected_support, [2.0, 1.0])
    assert law.quantile(0.5) == 1 and law.quantile(1.0) == 1


def test_dirac_p0():
    law = collapse_time_law([0.0, 1.0, 0.0], n=25, max_generations=4)
    assert (law.mean, law.sd) == (1.0, 0.0)
    np.testing.assert_array_equal(law.collapse_prob, [1.0] * 5)
    np.testing.assert_array_equal(law.survival, [1.0, 0, 0, 0, 0])
    np.testing.assert_allclose(law.expected_support, 1.0, rtol=1e-14)
    np.testing.assert_array_equal(law.pmf, [0.0, 1.0, 0, 0, 0])


def test_contexts_are_independent_chains():
    p = np.array([target_distribution(30, 8, 0.3, seed=1), target_distribution(30, 3, 0.5, seed=2),
                  np.eye(30)[4]])
    both = collapse_time_law(p, n=15, max_generations=50)
    assert both.mean.shape == (3,) and both.survival.shape == (3, 51)
    for c in range(3):
        one = collapse_time_law(p[c], n=15, max_generations=50)
        assert both.mean[c] == pytest.approx(one.mean, rel=1e-14)
        assert both.sd[c] == pytest.approx(one.sd, rel=1e-14, abs=1e-15)
        np.testing.assert_allclose(both.collapse_prob[c], one.collapse_prob, rtol=1e-13)
        np.testing.assert_allclose(both.expected_support[c], one.expected_support, rtol=1e-13)
    assert both.quantile(0.5).shape == (3,)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="'n' parameter of collapse_time_law"):
        collapse_time_law([0.5, 0.5], n=0)
    with pytest.raises(ValueError, match="'p0' parameter of collapse_time_law"):
        collapse_time_law([0.5, 0.6], n=3)
    with pytest.raises(ValueError, match="'q' parameter"):
        collapse_time_law([0.5, 0.5], n=5, max_generations=3).quantile(0.9999)


def test_large_n_moments_hold_no_square_matrix():
    p0 = target_distribution(600, 181, 0.01, seed=0)
    tracemalloc.start()
    law = collapse_time_law(p0, n=10_000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50e6                      # an n × n float64 matrix would be 800 MB
    diffusion = -2 * 10_000 * np.sum((1 - p0) * np.log1p(-p0))
    assert law.mean == pytest.approx(diffusion, rel=1e-3)
    assert 0.5 * law.mean < law.sd < law.mean


# -- against Monte Carlo of the loop ---------------------------------------------------------


def test_loop_matches_law_mean_ks_support_and_rho():
    p0 = target_distribution(12, 6, 0.3, seed=3)
    n, runs = 8, 4000
    law = collapse_time_law(p0, n=n)
    horizon = law.quantile(1 - 1e-6)
    res = simulate(p0=p0, scenario=FullySynthetic(n=n), runs=runs, generations=horizon, seed=11,
                   metrics=("support", "collapsed"), progress=False)
    times = res.data.collapse_time.values.ravel()
    assert not np.isnan(times).any()
    z = (times.mean() - law.mean) / (law.sd / np.sqrt(runs))
    assert abs(z) < Z_MAX
    assert ks_pvalue(times, law.survival) > P_MIN
    # the same KS statistic rejects the law of a neighbouring n: it has power here
    assert ks_pvalue(times, collapse_time_law(p0, n=n + 2).survival) < P_MIN
    for m in (1, 3, 8, 20):
        support = full(res).support.values[:, 0, m]
        se = support.std(ddof=1) / np.sqrt(runs)
        assert abs(support.mean() - law.expected_support[m]) < Z_MAX * se
        rho = law.collapse_prob[m]
        hits = full(res).collapsed.values[:, 0, m].mean()
        assert abs(hits - rho) < Z_MAX * np.sqrt(rho * (1 - rho) / runs)

