"""Partially synthetic loop (theory.partial): exact second moments and the L1 deviation against
exact enumeration and simulation; the budget (theory.budget)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from enumeration import compositions
from scipy.stats import multinomial

from modelcollapse import simulate
from modelcollapse.distributions import target_distribution, uniform_distribution
from modelcollapse.scenarios import PartiallySynthetic
from modelcollapse.theory import (
    budget,
    expected_l1_to_first,
    expected_l2sq_to_first,
    log_theorem3_bound,
    partial,
    synthetic_budget,
    theory_report,
)
from modelcollapse.theory.paper import expected_sigma_partial
from result_tables import full


def enumerate_deviation(p: np.ndarray, N: int, n: int, m: int) -> tuple[float, float]:
    """(E‖p(m) − p(1)‖₁, E‖p(m) − p(1)‖₂²) by enumerating the corpus and the synthetic counts
    of the whole vocabulary (reference for small s, N, n)."""
    synth = compositions(n, p.size)
    arr = np.array(synth, dtype=float)
    l1 = l2 = 0.0
    for corpus in compositions(N, p.size):
        c = np.array(corpus, dtype=float)
        weight = multinomial.pmf(corpus, N, p)
        if weight == 0:
            continue
        law = np.array([multinomial.pmf(s, n, c / N) for s in synth])  # J of model 2
        models = (c[None, :] + arr) / (N + n)
        trans = np.array([[multinomial.pmf(s, n, q) for s in synth] for q in models])
        for _ in range(m - 2):
            law = law @ trans
        dev = models - c / N
        l1 += weight * float(law @ np.abs(dev).sum(axis=1))
        l2 += weight * float(law @ (dev * dev).sum(axis=1))
    return l1, l2


@pytest.mark.parametrize(("N", "n", "m"), [(3, 2, 2), (4, 3, 3), (2, 4, 5), (5, 1, 4)])
def test_exact_l1_and_l2_against_enumeration(N, n, m):
    p = np.array([0.5, 0.3, 0.2])
    l1, l2 = enumerate_deviation(p, N, n, m)
    S0 = float(np.sum(p * p))
    assert partial.expected_l2sq_deviation(S0, n, N, m) == pytest.approx(l2, rel=1e-10)
    scenario = PartiallySynthetic(n=n, N=N)
    assert expected_l2sq_to_first(p, scenario=scenario, m=m) == pytest.approx(l2, rel=1e-10)
    assert expected_l1_to_first(p, n=n, N=N, m=m, method="exact").value == pytest.approx(
        l1, rel=1e-10)
    # E‖D‖₂² = c_m E[Σ p1_i(1 − p1_i)] = c_m (1 − S_1)
    S1 = float(expected_sigma_partial(S0, n, N, 1))
    assert partial.deviation_variance_factor(n, N, m) * (1 - S1) == pytest.approx(l2, rel=1e-10)


def test_token_moments_sum_to_eq9():
    p = target_distribution(600, 52, 0.1, seed=0)
    for m in (0, 1, 2, 7, None):
        nu = partial.token_second_moments_partial(p, 10, 100, m)
        S = float(expected_sigma_partial(0.1, 10, 100, 400 if m is None else m))
        assert nu.sum() == pytest.approx(S, rel=1e-12)


def test_stationary_limits_agree():
    p = target_distribution(600, 22, 0.5, seed=0)
    exact = expected_l1_to_first(p, n=30, N=100, m=None, method="exact").value
    late = expected_l1_to_first(p, n=30, N=100, m=60, method="exact").value
    assert late == pytest.approx(exact, rel=1e-8)
    assert partial.expected_l2sq_deviation(0.5, 30, 100, None) == pytest.approx(
        partial.expected_l2sq_deviation(0.5, 30, 100, 60), rel=1e-10)


@pytest.mark.parametrize(("support", "S0"), [(52, 0.1), (22, 0.5)])
@pytest.mark.parametrize(("n", "N", "m"), [(120, 40, None), (500, 100, 20), (60, 600, None)])
def test_auto_is_within_a_thousandth_of_exact(support, S0, n, N, m):
    p = target_distribution(600, support, S0, seed=0)
    auto = expected_l1_to_first(p, n=n, N=N, m=m)
    exact = expected_l1_to_first(p, n=n, N=N, m=m, method="exact")
    assert abs(auto.value / exact.value - 1) < 1e-3
    assert exact.value <= exact.jensen_upper
    # The continuous forms alone miss the discrete, skewed tokens.
    gauss = expected_l1_to_first(p, n=n, N=N, m=m, method="gaussian").value
    assert abs(auto.value - exact.value) <= abs(gauss - exact.value)


def test_exact_l1_against_the_loop_and_theorem3():
    p = target_distribution(600, 52, 0.1, seed=0)
    n, N = 10, 100
    res = simulate(p0=p, scenario=PartiallySynthetic(n=n, N=N), runs=6000, generations=6, seed=5,
                   metrics=("l1_to_first", "sigma"), progress=False)
    for m in (2, 6):
        values = full(res)["l1_to_first"].isel(generation=m).values.ravel()
        dev = expected_l1_to_first(p, n=n, N=N, m=m)
        z = (values.mean() - dev.value) / (values.std(ddof=1) / math.sqrt(values.size))
        assert abs(z) < 4
        assert values.mean() < dev.jensen_upper < math.exp(log_theorem3_bound(p, n=n, N=N))


def test_report_is_json_ready():
    p = uniform_distribution(50)
    out = theory_report(p, n=5, N=40, epsilon=0.1)
    json.dumps(out, allow_nan=False)
    assert out["l1_deviation_prediction"] < out["l1_deviation_jensen_upper"]
    assert out["log_theorem3_bound"] > math.log(2)  # vacuous: ‖·‖₁ ≤ 2 always
    assert out["l2sq_deviation_exact"] == pytest.approx(
        float(expected_l2sq_to_first(p, scenario=PartiallySynthetic(n=5, N=40), m=None)))
    assert out["generations"] is None and out["l1_deviation_method"] in ("exact", "exact+beta")


def test_budget_matches_the_prediction_and_simulation():
    p = uniform_distribution(600)
    res = synthetic_budget(p, N=100, epsilon=0.1, n_runs=200, seed=1)
    assert res.n_prediction == 5 and res.n_eq11 == 0 and res.n_theorem3 == 0
    assert res.prediction_at_n <= 0.1 < res.prediction_at_next
    assert res.consistent
    assert [s.n for s in res.simulation] == [5, 6]


def test_budget_is_unlimited_when_even_infinite_n_is_safe():
    p = uniform_distribution(600)
    res = synthetic_budget(p, N=10**5, epsilon=0.1, simulate=False)
    assert res.n_prediction is None and res.prediction_at_n < 0.1
    assert res.n_eq11 >= 0 and res.consistent is None
    # The n → ∞ limit is the Beta(2c, 2(N − c)) diffusion value: check it against a large n.
    N = 200
    limit = budget.unlimited_deviation(p, N)
    far = expected_l1_to_first(p, n=200 * N, N=N, m=None).value
    assert far == pytest.approx(limit, rel=0.01)


def test_budget_for_a_fixed_generation_uses_the_first_unsafe_n():
    p = target_distribution(600, 52, 0.1, seed=0)
    n, at_n, at_next, _ = budget.largest_safe_n(p, 1000, 0.05, generations=10)
    assert at_n <= 0.05 < at_next
    for k in (1, n // 2, n):
        assert expected_l1_to_first(p, n=k, N=1000, m=10).value <= 0.05


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match=r"'method' parameter of theory\.expected_l1_to_first"):
        expected_l1_to_first(uniform_distribution(5), n=2, N=3, m=2, method="magic")
    with pytest.raises(ValueError, match=r"'m' parameter of theory\.synthetic_budget"):
        synthetic_budget(uniform_distribution(5), N=10, epsilon=0.1, m=1)
    with pytest.raises(ValueError, match=r"'p0' parameter of theory\.expected_l1_to_first"):
        expected_l1_to_first(np.full((2, 4), 0.25), n=2, N=3, m=2)
