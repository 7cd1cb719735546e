"""Exact small chains (theory.markov): closed forms, internal consistency, and the loop.

Monte Carlo checks use fixed seeds, |z| < 4 from the sample standard error, and
Kolmogorov–Smirnov p-values > 1e-3 against the exact law (conservative for a discrete law).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from modelcollapse import simulate
from modelcollapse.scenarios import MostRecent
from modelcollapse.theory.markov import fully_synthetic_chain, window_chain
from result_tables import full

Z_MAX = 4.0
P_MIN = 1e-3


def ks_pvalue(samples: np.ndarray, survival: np.ndarray) -> float:
    grid = np.arange(survival.size)
    empirical = np.searchsorted(np.sort(samples), grid, side="right") / samples.size
    return float(stats.kstwo.sf(np.max(np.abs(empirical - (1.0 - survival))), samples.size))


# -- fully synthetic on count vectors --------------------------------------------------------


def test_count_chain_is_stochastic_and_sized():
    chain = fully_synthetic_chain([0.1, 0.0, 0.2, 0.7], 7)
    assert chain.states.shape == (36, 3)                     # C(7 + 2, 2), zero token dropped
    np.testing.assert_array_equal(chain.states.sum(axis=1), 7)
    np.testing.assert_allclose(chain.transition.sum(axis=1), 1.0, rtol=1e-14)
    assert chain.initial.sum() == pytest.approx(1.0, rel=1e-14)
    assert chain.dirac.sum() == 3


@pytest.mark.parametrize("p", [0.5, 0.2, 0.01])
def test_two_samples_closed_form(p):
    """n = 2: X_1 = (1, 1) w.p. 2p(1−p); from there each generation is Dirac w.p. ½."""
    chain = fully_synthetic_chain([p, 1 - p], 2)
    mixed = 2 * p * (1 - p)
    assert chain.mean_collapse_time == pytest.approx(1 + 2 * mixed, rel=1e-12)
    # T − 1 = 0 w.p. 1 − mixed, else Geometric(½) with mean 2 and second moment 6
    second = 1 + 2 * (2 * mixed) + 6 * mixed
    sd = np.sqrt(second - (1 + 2 * mixed) ** 2)
    assert chain.sd_collapse_time == pytest.approx(sd, rel=1e-12)
    m = np.arange(1, 21)
    np.testing.assert_allclose(chain.survival(20)[1:], mixed * 0.5 ** (m - 1), rtol=1e-12)


@pytest.mark.parametrize(("p", "n"), [([0.3, 0.7], 9), ([0.2, 0.3, 0.5], 5),
                                      ([0.0, 0.25, 0.25, 0.5], 4)])
def test_proposition1_absorption_probabilities(p, n):
    chain = fully_synthetic_chain(p, n)
    np.testing.assert_allclose(chain.absorption_probabilities(), p, atol=1e-12)


def test_survival_series_sums_to_mean_and_rho_complements_it():
    chain = fully_synthetic_chain([0.2, 0.3, 0.5], 6)
    survival = chain.survival(400)
    assert survival[-1] < 1e-14
    assert survival.sum() == pytest.approx(chain.mean_collapse_time, rel=1e-12)
    m = np.arange(401)
    var = ((2 * m + 1) * survival).sum() - survival.sum() ** 2
    assert np.sqrt(var) == pytest.approx(chain.sd_collapse_time, rel=1e-10)
    rho = chain.collapse_prob(400)
    np.testing.assert_allclose(rho[1:], 1 - survival[1:], atol=1e-14)
    assert rho[0] == 0.0


def test_count_chain_edge_cases():
    dirac = fully_synthetic_chain([0.0, 1.0], 5)
    assert dirac.mean_collapse_time == 1.0 and dirac.sd_collapse_time == 0.0
    np.testing.assert_array_equal(dirac.collapse_prob(3), [1, 1, 1, 1])
    np.testing.assert_array_equal(dirac.absorption_probabilities(), [0.0, 1.0])
    one = fully_synthetic_chain([0.4, 0.6], 1)
    assert one.mean_collapse_time == 1.0
    with pytest.raises(ValueError, match="'n' parameter of fully_synthetic_chain"):
        fully_synthetic_chain(np.full(50, 0.02), 10)
    with pytest.raises(ValueError, match="must be a vector"):
        fully_synthetic_chain([[0.5, 0.5]], 3)


# -- most-recent-K window --------------------------------------------------------------------


@pytest.mark.parametrize("split", ["even", "literal"])
@pytest.mark.parametrize("n", [1, 3, 6])
def test_window_of_one_is_the_fully_synthetic_chain(split, n):
    window = window_chain([0.35, 0.65], n, 1, split=split)
    chain = fully_synthetic_chain([0.35, 0.65], n)
    assert window.mean_collapse_time == pytest.approx(chain.mean_collapse_time, rel=1e-12)
    assert window.mean_absorption_time == pytest.approx(chain.mean_collapse_time, rel=1e-12)
    t, a = window.survival(30)
    np.testing.assert_allclose(t, chain.survival(30), rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(a, t, rtol=1e-11, atol=1e-15)


@pytest.mark.parametrize(("n", "K", "split"), [(4, 2, "even"), (4, 3, "even"), (5, 3, "even"),
                                               (4, 2, "literal"), (6, 3, "literal")])
def test_window_solve_agrees_with_its_propagated_law(n, K, split):
    window = window_chain([0.4, 0.6], n, K, split=split)
    t, a = window.survival(3000)
    assert t[-1] < 1e-12 and a[-1] < 1e-12
    assert np.all(np.diff(t) <= 1e-15) and np.all(np.diff(a) <= 1e-15)
    assert t.sum() == pytest.approx(window.mean_collapse_time, rel=1e-9)
    assert a.sum() == pytest.approx(window.mean_absorption_time, rel=1e-9)
    assert window.mean_absorption_time >= window.mean_collapse_time


def test_literal_window_of_n_models_collapses_at_once():
    """split="literal", K = n: p(1) is fitted on ⌊n/K⌋ = 1 sample, a Dirac mass."""
    window = window_chain([0.5, 0.5], 4, 4, split="literal")
    assert window.mean_collapse_time == 1.0
    assert window.mean_absorption_time > 1.0   # later models can still mix the two tokens


def test_window_edge_cases():
    dirac = window_chain([1.0, 0.0], 4, 3)
    assert (dirac.mean_collapse_time, dirac.mean_absorption_time) == (1.0, 1.0)
    with pytest.raises(ValueError, match="at most two positive entries"):
        window_chain([0.2, 0.3, 0.5], 4, 2)
    with pytest.raises(ValueError, match="states"):
        window_chain([0.5, 0.5], 60, 4)
    with pytest.raises(ValueError, match="'split' parameter"):
        window_chain([0.5, 0.5], 4, 2, split="uneven")


@pytest.mark.parametrize(("K", "split", "seed"), [(2, "even", 21), (3, "even", 22),
                                                  (2, "literal", 23), (3, "literal", 24)])
def test_window_chain_matches_the_loop(K, split, seed):
    p0 = np.array([0.4, 0.6])
    n, runs, horizon = 4, 10_000, 300
    window = window_chain(p0, n, K, split=split)
    t_law, a_law = window.survival(horizon)
    res = simulate(p0=p0, scenario=MostRecent(n=n, K=K, split=split), runs=runs,
                   generations=horizon, seed=seed, metrics=("collapsed",), progress=False)
    for name, exact, law in (("collapse_time", window.mean_collapse_time, t_law),
                             ("absorption_time", window.mean_absorption_time, a_law)):
        values = full(res)[name].values.ravel()
        assert not np.isnan(values).any()     # the exact tail at 300 is far below 1/runs
        se = values.std(ddof=1) / np.sqrt(runs)
        if se == 0:                           # literal K = 3, n = 4: p(1) from one sample
            assert values.mean() == exact
        else:
            assert abs(values.mean() - exact) < Z_MAX * se
            assert ks_pvalue(values, law) > P_MIN
