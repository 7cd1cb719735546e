"""The paper's closed forms and bounds (theory.paper) against exact small cases and Monte Carlo:
the public functions (p(0) first, sizes as keywords) and the formulas in the paper's own
variables they are built on."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from enumeration import compositions
from scipy.stats import binom, multinomial

from modelcollapse.distributions import PAPER_FIG2_PAIRS, target_distribution, uniform_distribution
from modelcollapse.theory import collapse_time_law, paper


def exact_fully_sigma(p: np.ndarray, n: int, m_max: int) -> np.ndarray:
    """E σ_m of the fully synthetic loop by propagating the law of counts (reference)."""
    states = compositions(n, p.size)
    arr = np.array(states, dtype=float) / n
    trans = np.array([[multinomial.pmf(t, n, a) for t in states] for a in arr])
    law = np.array([multinomial.pmf(s, n, p) for s in states])  # p(1)
    out = [float(np.sum(p * p))]
    for _ in range(m_max):
        out.append(float(law @ np.sum(arr * arr, axis=1)))
        law = law @ trans
    return np.array(out)


def exact_partial_sigma(p: float, N: int, n: int, m_max: int) -> np.ndarray:
    """E σ_m for two tokens in the partially synthetic loop, by exact enumeration."""
    total = np.zeros(m_max + 1)
    total[0] = p * p + (1 - p) ** 2
    for c in range(N + 1):
        weight = binom.pmf(c, N, p)
        sig1 = (c / N) ** 2 + (1 - c / N) ** 2
        total[1] += weight * sig1
        j = np.arange(n + 1)
        law = binom.pmf(j, n, c / N)  # synthetic count of token 1 in model 2
        trans = binom.pmf(j[None, :], n, ((c + j) / (N + n))[:, None])
        for m in range(2, m_max + 1):
            x = (c + j) / (N + n)
            total[m] += weight * float(law @ (x * x + (1 - x) ** 2))
            law = law @ trans
    return total


def test_eq6_is_exact_against_the_count_chain():
    p = np.array([0.5, 0.3, 0.2])
    exact = exact_fully_sigma(p, 3, 6)
    formula = paper.expected_sigma_fully(float(np.sum(p * p)), 3, np.arange(7))
    np.testing.assert_allclose(formula, exact, rtol=1e-12)


def test_eq9_corrected_is_exact_and_the_printed_sign_is_not():
    p, N, n = 0.3, 4, 3
    S0 = p * p + (1 - p) ** 2
    exact = exact_partial_sigma(p, N, n, 6)
    m = np.arange(7)
    np.testing.assert_allclose(paper.expected_sigma_partial(S0, n, N, m), exact, rtol=1e-12)
    printed = paper.expected_sigma_partial(S0, n, N, m, as_printed=True)
    assert abs(printed[2] - exact[2]) > 1e-3  # the misprint shows at m = 2 …
    big = paper.expected_sigma_partial(S0, n, N, np.array([200]))
    assert abs(paper.expected_sigma_partial(S0, n, N, np.array([200]), as_printed=True)[0]
               - big[0]) < 1e-15  # … and vanishes in the limit


@pytest.mark.parametrize(("S0", "support"), PAPER_FIG2_PAIRS)
@pytest.mark.parametrize("n", [2, 10, 50, 200])
def test_eq7_and_eq8_bound_the_exact_law(S0, support, n):
    p0 = target_distribution(600, support, S0, seed=0)
    law = collapse_time_law(p0, n=n)
    lower, upper = paper.collapse_time_bounds(p0, n=n)
    # Both bounds can be tight (the upper one at n = 2): compare up to rounding.
    assert lower <= law.mean * (1 + 1e-12) and law.mean <= upper * (1 + 1e-12)
    m = np.arange(1, law.collapse_prob.size)
    lo, hi = paper.collapse_prob_bounds(p0, n=n, m=m)
    rho = law.collapse_prob[1:]
    assert np.all(lo <= rho + 1e-12) and np.all(rho <= hi + 1e-12)


def test_eq7_and_eq8_per_context():
    rows = np.stack([target_distribution(600, support, S0, seed=0)
                     for S0, support in PAPER_FIG2_PAIRS])
    lower, upper = paper.collapse_time_bounds(rows, n=10)
    lo, hi = paper.collapse_prob_bounds(rows, n=10, m=np.arange(1, 5))
    assert lower.shape == upper.shape == (4,) and lo.shape == hi.shape == (4, 4)
    for i, row in enumerate(rows):
        assert (lower[i], upper[i]) == paper.collapse_time_bounds(row, n=10)
        np.testing.assert_array_equal(lo[i], paper.collapse_prob_bounds(row, n=10,
                                                                         m=np.arange(1, 5))[0])


def test_bounds_reject_a_trivial_p0():
    dirac = np.array([0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match=r"'p0' parameter of theory\.collapse_time_bounds"):
        paper.collapse_time_bounds(dirac, n=10)
    with pytest.raises(ValueError, match="nontrivial p"):
        paper.collapse_prob_bounds(dirac, n=10, m=3)
    with pytest.raises(ValueError, match="'m' parameter"):
        paper.collapse_prob_bounds(np.array([0.5, 0.5]), n=10, m=0)
    with pytest.raises(TypeError, match="'m' parameter"):
        paper.expected_sigma_fully(0.1, 10, 2.5)


def test_proposition1_returns_p0():
    p0 = target_distribution(20, 7, 0.3, seed=4)
    out = paper.absorption_probabilities(p0)
    np.testing.assert_allclose(out, p0, rtol=1e-14)
    assert out is not p0


def test_G_regimes_and_logs():
    C0 = paper.C0
    assert math.isclose(C0, math.e**3 / (2 * math.pi)) and math.isclose(
        paper.C1, 6 * math.e / math.pi**1.5)
    n = 100
    s1 = math.ceil(C0 * n / math.e + 2)
    s3 = math.floor(C0 * n / 4 + 2) - 1
    assert paper.G_regime(n, s1) == 1
    assert paper.G_regime(n, s1 - 1) == 2
    assert paper.G_regime(n, s3) == 3
    assert math.isclose(paper.log_G(n, s1), math.log(paper.C1 * s1) + C0 * n / (2 * math.e))
    assert math.isclose(paper.log_G(n, s1 - 1),
                        math.log(paper.C1 * (s1 - 1)) + (s1 - 1) / 2 * math.log(C0 * n / (s1 - 1)))
    assert math.isclose(paper.log_G(n, 20), math.log(2**20 - 2))
    assert paper.log_G(5, 1) == -math.inf


@pytest.mark.parametrize("s", [600, 10**5])
@pytest.mark.parametrize("n", [1, 400, 10**4, 10**6])
def test_log_space_stays_finite(s, n):
    p0 = uniform_distribution(s)
    values = [paper.log_G(n, s), paper.log_theorem3_bound(p0, n=n, N=100),
              paper.log_theorem4_bound(p0, n=n, N=100, expected_lambda1=0.2),
              paper.log_lemma1_bound(p0, n=n, epsilon=0.1),
              paper.log_weissman_bound(p0, n=n, epsilon=0.1)]
    assert all(math.isfinite(v) for v in values)


def test_the_plain_numbers_would_overflow():
    top = math.log(np.finfo(float).max)
    assert paper.log_G(10**4, 10**5) > top  # case 1: e^{C0 n/(2e)}
    assert paper.log_G(10**4, 2000) > top  # case 3: 2^2000 − 2


def test_theorem3_bound_matches_its_formula_where_it_is_a_float():
    n, N, s = 3, 50, 4
    G = 2**s - 2 if s < paper.C0 * n / 4 + 2 else None
    assert G is not None
    expected = math.sqrt(math.pi * n / 2) * G / N
    assert math.isclose(math.exp(paper.log_theorem3_bound(uniform_distribution(s), n=n, N=N)),
                        expected)


@pytest.mark.parametrize(("s", "N", "eps"), [(600, 10**6, 0.1), (600, 10**8, 0.05),
                                             (50, 10**5, 0.2), (1000, 10**9, 0.01)])
def test_eq11_is_sufficient_and_more_conservative_than_theorem3(s, N, eps):
    n11 = paper.largest_safe_n_eq11(s, N, eps)
    n3 = paper.largest_safe_n_theorem3(s, N, eps)
    assert n3 >= n11
    p0 = uniform_distribution(s)  # Theorem 3 depends on p(0) through s only
    if n11 >= 1:
        assert paper.log_theorem3_bound(p0, n=n11, N=N) <= math.log(eps)
    assert paper.log_theorem3_bound(p0, n=n3, N=N) <= math.log(eps) < paper.log_theorem3_bound(
        p0, n=n3 + 1, N=N)


def test_eq11_allows_nothing_for_the_papers_settings():
    assert paper.eq11_max_n(600, 100, 0.1) < 0
    assert paper.largest_safe_n_eq11(600, 100, 0.1) == 0


def test_phi_and_zeta():
    assert paper.phi(0.5) == 2.0
    assert math.isclose(float(paper.phi(0.1)), math.log(9) / 0.8)
    x = np.linspace(0.01, 0.5, 50)
    assert np.all(np.diff(paper.phi(x)) < 0)
    assert math.isclose(float(paper.phi(0.5 - 1e-9)), 2.0, rel_tol=1e-12)
    assert paper.phi(0.0) == np.inf
    assert paper.zeta(0.25, 10, 100) == 0.5
    # E[λ1] = 1/4 turns Theorem 4 into Theorem 3 (φ(1/2) = 2).
    p0 = uniform_distribution(600)
    assert math.isclose(paper.log_theorem4_bound(p0, n=10, N=100, expected_lambda1=0.25),
                        paper.log_theorem3_bound(p0, n=10, N=100))
    assert (paper.log_theorem4_bound(p0, n=10, N=100, expected_lambda1=0.05)
            < paper.log_theorem3_bound(p0, n=10, N=100))
    # Without E[λ1], Theorem 4 estimates it (Monte Carlo over corpora of N samples).
    lam, _ = paper.expected_lambda_empirical(p0, 100, n_draws=200, seed=3)
    assert paper.log_theorem4_bound(p0, n=10, N=100, seed=3) == paper.log_theorem4_bound(
        p0, n=10, N=100, expected_lambda1=lam)
    with pytest.raises(ValueError, match=r"'x' parameter of theory\.phi"):
        paper.phi(0.7)


def brute_pi(p: np.ndarray) -> float:
    best = 0.0
    for mask in itertools.product([0, 1], repeat=p.size):
        s = float(np.dot(mask, p))
        best = max(best, min(s, 1 - s))
    return best


def test_partition_on_counts_is_exact():
    rng = np.random.default_rng(3)
    for _ in range(30):
        counts = rng.integers(0, 9, size=rng.integers(2, 10))
        if counts.sum() == 0:
            continue
        total = counts.sum()
        brute = max(min(s, total - s) for mask in itertools.product([0, 1], repeat=counts.size)
                    for s in [int(np.dot(mask, counts))])
        assert paper.balanced_partition_counts(counts) == brute


def test_pi_p_exact_paths_and_certified_bracket():
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(12))
    part = paper.pi_p(p)
    assert part.exact and math.isclose(part.value, brute_pi(p), abs_tol=1e-12)
    heavy = np.array([0.6, 0.3, 0.1])
    assert paper.pi_p(heavy).value == pytest.approx(0.4)
    # 200 tokens on a 1/997 grid: exact through the denominator, bracketed without it.
    counts = rng.multinomial(997, np.ones(200) / 200)
    q = counts / 997
    exact = paper.pi_p(q, denominator=997)
    assert exact.exact and exact.value == paper.balanced_partition_counts(counts) / 997
    bracket = paper.pi_p(q)
    assert bracket.lower <= exact.value + 1e-12 <= bracket.upper + 2e-12
    assert bracket.upper - bracket.lower <= 200 / 2**22 + 1e-12
    lo, hi = paper.lambda_p(q)
    assert lo <= exact.lam + 1e-12 and exact.lam <= hi + 1e-12


def test_expected_lambda_against_exact_enumeration():
    p, N = np.array([0.5, 0.3, 0.2]), 6
    exact = 0.0
    for c in compositions(N, 3):
        best = paper.balanced_partition_counts(np.array(c))
        exact += multinomial.pmf(c, N, p) * (best / N) * (1 - best / N)
    mean, se = paper.expected_lambda_empirical(p, N, n_draws=4000, seed=1)
    assert abs(mean - exact) < 4 * se


def test_lemma1_and_weissman_bound_the_simulated_tail():
    rng = np.random.default_rng(7)
    p, n, eps = np.array([0.7, 0.3]), 400, 0.12
    draws = rng.multinomial(n, p, size=20000) / n
    tail = float(np.mean(np.abs(draws - p).sum(axis=1) >= eps))
    assert tail <= math.exp(paper.log_weissman_bound(p, n=n, epsilon=eps))
    assert tail <= math.exp(paper.log_lemma1_bound(p, n=n, epsilon=eps))
    # Lemma 1 improves on Weissman when s/n is large.
    wide = uniform_distribution(600)
    assert (paper.log_lemma1_bound(wide, n=10, epsilon=0.5)
            < paper.log_weissman_bound(wide, n=10, epsilon=0.5))
