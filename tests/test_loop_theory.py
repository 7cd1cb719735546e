"""The loop against the paper's closed forms (Theorem 1, Theorem 2, Proposition 1) and an
exact small Markov chain. Tolerances: |z| < 4 from the Monte Carlo standard error; the
formulas are written here again from the paper, independently of modelcollapse.theory."""

import numpy as np
from scipy import stats
from scipy.special import comb

from modelcollapse import simulate
from modelcollapse.scenarios import FullySynthetic, PartiallySynthetic

Z_MAX = 4.0


def S_fully(m, n, S0):
    """Theorem 1, eq. 6."""
    return 1 - (1 - 1 / n) ** m * (1 - S0)


def S_partial(m_plus_1, n, N, S0):
    """Theorem 2, eq. 9, with the sign of its last term as the recursion of appendix B.3
    gives it: ν^(m+1) = A + β ν^(m) solves to [1 + α + αβ^m/N] in the S0 term, where the
    printed eq. 9 has [1 + α − αβ^m/N] (the two differ by 2(1 − 1/N) S0 αβ^m / (N d))."""
    if m_plus_1 == 1:
        return 1 / N + (1 - 1 / N) * S0
    m = m_plus_1 - 1
    a = n / (N + n)
    b = a * ((1 + 1 / N) * a - 1 / N)
    d = 1 + (1 + 1 / N) * a
    return ((1 / N) * (1 + 2 * a - (1 - 1 / N) * a * b ** m) / d
            + (1 - 1 / N) * S0 / d * (1 + a + a * b ** m / N))


def S2_partial_direct(n, N, S0):
    """S_2 from first principles: r ~ Mult(N, p), x | r ~ Mult(n, r/N), σ = Σ(r+x)²/(N+n)²."""
    second_moment_r = N + N * (N - 1) * S0  # Σ_i E[r_i²]
    return (second_moment_r * (1 + 2 * n / N + n * (n - 1) / N**2) + n) / (N + n) ** 2


def test_eq9_as_corrected_matches_first_principles():
    for n, N, S0 in ((100, 20, 0.1), (10, 100, 0.5), (7, 3, 0.3)):
        assert abs(S_partial(2, n, N, S0) - S2_partial_direct(n, N, S0)) < 1e-12


def test_theorem1_eq6_sigma_fully_synthetic(p0_fig6):
    n = 20
    res = simulate(p0=p0_fig6, scenario=FullySynthetic(n), runs=4000, generations=40, seed=10,
                   metrics=("sigma",))
    mean, se = res.mean("sigma")
    for m in (1, 2, 5, 10, 20, 40):
        z = (mean[m] - S_fully(m, n, 0.1)) / se[m]
        assert abs(z) < Z_MAX, (m, mean[m], S_fully(m, n, 0.1), z)


def test_theorem2_eq9_sigma_partially_synthetic(p0_fig6):
    for n, N in ((10, 100), (100, 20)):
        res = simulate(p0=p0_fig6, scenario=PartiallySynthetic(n, N), runs=4000,
                       generations=30, seed=11, metrics=("sigma",))
        mean, se = res.mean("sigma")
        for m in (1, 2, 3, 10, 30):
            expected = S_partial(m, n, N, 0.1)
            assert abs(mean[m] - expected) / se[m] < Z_MAX, (n, N, m, mean[m], expected)


def test_proposition1_absorbed_token_law(p0_small):
    res = simulate(p0=p0_small, scenario=FullySynthetic(6), runs=6000, generations=2000,
                   seed=12, metrics=("sigma",))
    tokens = res.data["absorbed_token"].values.ravel()
    assert np.all(tokens >= 0), "every run must collapse within 2000 generations"
    support = np.flatnonzero(p0_small > 0)
    observed = np.array([(tokens == t).sum() for t in support])
    chi2 = stats.chisquare(observed, p0_small[support] * tokens.size)
    assert chi2.pvalue > 1e-3, (observed, chi2)
    # The absorbed token always carries the whole mass, and agrees with the data.
    assert np.all(p0_small[tokens] > 0)


def test_expected_collapse_time_inside_theorem1_bounds(p0_fig6):
    for n in (5, 20):
        res = simulate(p0=p0_fig6, scenario=FullySynthetic(n), runs=3000, generations=5000,
                       seed=13, metrics=("sigma",))
        t = res.data["collapse_time"].values.ravel()
        assert not np.isnan(t).any()
        mean, se = t.mean(), t.std(ddof=1) / np.sqrt(t.size)
        lower = 1 + (1 - 0.1) / (1 - 1 / 52) * (n - 1)  # eq. 8
        upper = 1 + (1 - 0.1) * n * (n - 1)
        assert lower <= mean + Z_MAX * se and mean - Z_MAX * se <= upper, (n, lower, mean, upper)


def _exact_two_token_collapse_time(n: int, q: float) -> float:
    """E[T] for s = 2 by a linear solve on the count chain: X_1 ~ Bin(n, q), X_{m+1} ~
    Bin(n, X_m / n); T is the first m with X_m ∈ {0, n}."""
    k = np.arange(n + 1)
    P = np.array([[comb(n, j) * (i / n) ** j * (1 - i / n) ** (n - j) for j in k] for i in k])
    inner = k[1:-1]
    Q = P[np.ix_(inner, inner)]
    steps = np.linalg.solve(np.eye(inner.size) - Q, np.ones(inner.size))  # from transient i
    start = np.array([comb(n, j) * q ** j * (1 - q) ** (n - j) for j in k])
    return 1 + start[inner] @ steps


def test_collapse_time_matches_exact_two_token_chain():
    p0 = np.array([0.3, 0.7])
    for n in (3, 8):
        res = simulate(p0=p0, scenario=FullySynthetic(n), runs=20000, generations=3000,
                       seed=14, metrics=("sigma",))
        t = res.data["collapse_time"].values.ravel()
        exact = _exact_two_token_collapse_time(n, 0.3)
        z = (t.mean() - exact) / (t.std(ddof=1) / np.sqrt(t.size))
        assert abs(z) < Z_MAX, (n, t.mean(), exact, z)
