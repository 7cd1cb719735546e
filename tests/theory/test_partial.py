"""Partially synthetic loop (theory.partial): exact second moments and the L1 deviation against
exact enumeration and simulation; the budget (theory.budget)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from enumeration import compositions
from scipy.stats import multinomial

from modelcollapse.distributions import target_distribution, uniform_distribution
from modelcollapse.loop import run_loop
from modelcollapse.scenarios import PartiallySynthetic
from modelcollapse.theory import budget, partial
from modelcollapse.theory.paper import expected_sigma_partial, log_theorem3_bound
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
    assert partial.expected_l1_deviation(p, n, N, m, method="exact").value == pytest.approx(
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
    exact = partial.expected_l1_deviation(p, 30, 100, None, method="exact").value
    late = partial.expected_l1_deviation(p, 30, 100, 60, method="exact").value
    assert late == pytest.approx(exact, rel=1e-8)
    assert partial.expected_l2sq_deviation(0.5, 30, 100, None) == pytest.approx(
        partial.expected_l2sq_deviation(0.5, 30, 100, 60), rel=1e-10)


@pytest.mark.parametrize(("support", "S0"), [(52, 0.1), (22, 0.5)])
@pytest.mark.parametrize(("n", "N", "m"), [(120, 40, None), (500, 100, 20), (60, 600, None)])
def test_auto_is_within_a_thousandth_of_exact(support, S0, n, N, m):
    p = target_distribution(600, support, S0, seed=0)
    auto = partial.expected_l1_deviation(p, n, N, m)
    exact = partial.expected_l1_deviation(p, n, N, m, method="exact")
    assert abs(auto.value / exact.value - 1) < 1e-3
    assert exact.value <= exact.jensen_upper
    # The continuous forms alone miss the discrete, skewed tokens.
    gauss = partial.expected_l1_deviation(p, n, N, m, method="gaussian").value
    assert abs(auto.value - exact.value) <= abs(gauss - exact.value)


def test_exact_l1_against_the_loop_and_theorem3():
    p = target_distribution(600, 52, 0.1, seed=0)
    n, N = 10, 100
    res = run_loop(p, PartiallySynthetic(n=n, N=N), n_runs=6000, n_generations=6, seed=5,
                   metrics=("l1_to_first", "sigma"), progress=False)
    for m in (2, 6):
        values = full(res)["l1_to_first"].isel(generation=m).values.ravel()
        dev = partial.expected_l1_deviation(p, n, N, m)
        z = (values.mean() - dev.value) / (values.std(ddof=1) / math.sqrt(values.size))
        assert abs(z) < 4
        assert values.mean() < dev.jensen_upper < math.exp(log_theorem3_bound(n, N, 600))


def test_summary_is_json_ready():
    p = uniform_distribution(50)
    out = partial.partial_deviation_summary(p, 5, 40, None)
    assert out["l1_prediction"] < out["l1_jensen_upper"]
    assert out["theorem3_bound"] > 2  # vacuous: ‖·‖₁ ≤ 2 always
    assert set(out) >= {"l2sq_exact", "l1_method", "log_theorem3_bound"}


def test_budget_matches_the_prediction_and_simulation():
    p = uniform_distribution(600)
    res = budget.synthetic_budget(p, 100, 0.1, n_runs=200, seed=1)
    assert res.n_prediction == 5 and res.n_eq11 == 0 and res.n_theorem3 == 0
    assert res.prediction_at_n <= 0.1 < res.prediction_at_next
    assert res.consistent
    assert [s.n for s in res.simulation] == [5, 6]


def test_budget_is_unlimited_when_even_infinite_n_is_safe():
    p = uniform_distribution(600)
    res = budget.synthetic_budget(p, 10**5, 0.1, simulate=False)
    assert res.n_prediction is None and res.prediction_at_n < 0.1
    assert res.n_eq11 >= 0 and res.consistent is None
    # The n → ∞ limit is the Beta(2c, 2(N − c)) diffusion value: check it against a large n.
    N = 200
    limit = budget.unlimited_deviation(p, N)
    far = partial.expected_l1_deviation(p, 200 * N, N, None).value
    assert far == pytest.approx(limit, rel=0.01)


def test_budget_for_a_fixed_generation_uses_the_first_unsafe_n():
    p = target_distribution(600, 52, 0.1, seed=0)
    n, at_n, at_next, _ = budget.largest_safe_n(p, 1000, 0.05, generations=10)
    assert at_n <= 0.05 < at_next
    for k in (1, n // 2, n):
        assert partial.expected_l1_deviation(p, k, 1000, 10).value <= 0.05


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match=r"'method' parameter of theory\.expected_l1_deviation"):
        partial.expected_l1_deviation(uniform_distribution(5), 2, 3, 2, method="magic")
    with pytest.raises(ValueError, match=r"'generations' parameter of theory\.synthetic_budget"):
        budget.synthetic_budget(uniform_distribution(5), 10, 0.1, generations=1)
