"""Statistical verification suite: simulation against every applicable formula.

In the manner of msprime's verification: a grid of cases (scenario, s, S0, support, n, N),
each simulated with the package's loop, and named checks comparing the simulation with the
theory of ``modelcollapse.theory``:

* **exact** formulas pass when |z| < 4, z = (simulated − theory)/se;
* **lower/upper bounds** pass when the simulation does not fall significantly outside them
  (z > −4 for a lower bound, z < 4 for an upper bound);
* **predictions** report their relative error and pass within their stated tolerance, or when
  |z| < 4;
* **distribution** checks (Kolmogorov–Smirnov against the exact law of T, χ² for
  Proposition 1) pass when p > 1e-3.

``run_verification(quick=True)`` is the CI tier (seconds); the full grid takes under a minute.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from ._validation import check_int
from .api import simulate
from .distributions import target_distribution
from .results import Result
from .scenarios import FullySynthetic, MostRecent, PartiallySynthetic, RandomPool, Scenario
from .theory import (
    collapse_prob_bounds,
    collapse_time_bounds,
    collapse_time_law,
    collapse_time_prediction,
    expected_l1_to_first,
    expected_sigma,
    l1_to_first_upper_bound,
    log_theorem3_bound,
    log_theorem4_bound,
    most_recent_collapse_prediction,
)
from .theory.paper import expected_lambda_empirical

__all__ = [
    "FULL_CASES",
    "P0_SEED",
    "QUICK_CASES",
    "Case",
    "Check",
    "all_passed",
    "format_table",
    "run_verification",
]

#: Seed of every p(0) built by the suite (target_distribution(vocab, support, S0, seed=P0_SEED)).
P0_SEED = 0
#: |z| beyond which an exact formula or a bound fails.
Z_LIMIT = 4.0
#: p-value below which a distribution check fails.
P_LIMIT = 1e-3
#: Relative-error tolerances of the predictions.
TOLERANCE = {"littler": 0.15, "corrected": 0.01, "most-recent absorption": 0.10}


@dataclass(frozen=True)
class Case:
    """One point of the grid: a scenario on p(0) = target_distribution(vocab, support, S0)."""

    scenario: str
    n: int
    vocab: int = 600
    support: int = 29
    S0: float = 0.1
    N: int = 0
    K: int = 1
    n_runs: int = 1000
    n_generations: int = 0  # 0: long enough for the scenario (fully synthetic: all collapse)

    def label(self) -> str:
        extra = {"partially-synthetic": f" N={self.N}", "most-recent": f" K={self.K}"}
        return (f"{self.scenario} n={self.n}{extra.get(self.scenario, '')} s={self.vocab} "
                f"s~={self.support} S0={self.S0}")

    def p0(self) -> np.ndarray:
        return target_distribution(self.vocab, self.support, self.S0, seed=P0_SEED)

    def build(self) -> Scenario:
        if self.scenario == "fully-synthetic":
            return FullySynthetic(n=self.n)
        if self.scenario == "partially-synthetic":
            return PartiallySynthetic(n=self.n, N=self.N)
        if self.scenario == "most-recent":
            return MostRecent(n=self.n, K=self.K)
        if self.scenario == "random-pool":
            return RandomPool(n=self.n)
        raise ValueError(f"Scenario {self.scenario!r} has no verification checks. Choose from "
                         f"['fully-synthetic', 'most-recent', 'partially-synthetic', "
                         f"'random-pool'].")


@dataclass(frozen=True)
class Check:
    """One named comparison. ``z`` and ``rel_error`` are NaN where they do not apply."""

    name: str
    case: str
    kind: str
    theory: float
    simulated: float
    se: float
    z: float
    rel_error: float
    tolerance: str
    passed: bool
    detail: str = field(default="")


QUICK_CASES: tuple[Case, ...] = (
    Case("fully-synthetic", n=10, support=29, S0=0.1, n_runs=3000),
    Case("fully-synthetic", n=50, support=9, S0=0.7, n_runs=1500),
    Case("partially-synthetic", n=10, N=100, support=52, S0=0.1, n_runs=2000, n_generations=10),
    Case("partially-synthetic", n=100, N=100, support=22, S0=0.5, n_runs=1000, n_generations=10),
    Case("most-recent", n=10, K=5, support=52, S0=0.1, n_runs=1000),
    Case("random-pool", n=10, support=52, S0=0.1, n_runs=1000, n_generations=50),
)

FULL_CASES: tuple[Case, ...] = (
    *(Case("fully-synthetic", n=n, support=sup, S0=S0, n_runs=4000)
      for S0, sup in ((0.01, 181), (0.1, 29), (0.5, 10), (0.7, 9)) for n in (10, 50, 200)),
    *(Case("partially-synthetic", n=n, N=100, support=sup, S0=S0, n_runs=2000, n_generations=20)
      for S0, sup in ((0.01, 484), (0.1, 52), (0.5, 22), (0.7, 16)) for n in (1, 10, 100, 500)),
    *(Case("most-recent", n=10, K=K, support=52, S0=0.1, n_runs=2000) for K in (2, 5, 10)),
    Case("most-recent", n=40, K=4, support=52, S0=0.1, n_runs=1000),
    *(Case("random-pool", n=n, support=52, S0=0.1, n_runs=2000, n_generations=100)
      for n in (10, 100)),
)


# --------------------------------------------------------------------------------------------
# Comparisons


def _exact(name: str, case: str, theory: float, mean: float, se: float) -> Check:
    z = _z(mean - theory, se)
    return Check(name, case, "exact", theory, mean, se, z, _rel(mean, theory),
                 f"|z| < {Z_LIMIT:g}", abs(z) < Z_LIMIT)


def _bound(name: str, case: str, side: str, theory: float, mean: float, se: float) -> Check:
    z = _z(mean - theory, se)
    passed = z > -Z_LIMIT if side == "lower" else z < Z_LIMIT
    tol = f"z > -{Z_LIMIT:g}" if side == "lower" else f"z < {Z_LIMIT:g}"
    return Check(name, case, f"{side} bound", theory, mean, se, z, _rel(mean, theory), tol,
                 bool(passed))


def _prediction(name: str, case: str, theory: float, mean: float, se: float,
                tol: float) -> Check:
    z = _z(mean - theory, se)
    rel = _rel(theory, mean)
    return Check(name, case, "prediction", theory, mean, se, z, rel,
                 f"|rel| < {tol:g} or |z| < {Z_LIMIT:g}", abs(rel) < tol or abs(z) < Z_LIMIT)


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    """Mean and se of a per-run sample (outcomes such as T)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(values.size))


def _at(res: Result, metric: str, m: int) -> tuple[float, float]:
    """Mean over runs of ``metric`` at generation m and its se (the result's statistics)."""
    mean, se = res.mean(metric)
    return float(mean[m]), float(se[m])


def _proportion(phat: float, r: int) -> tuple[float, float]:
    """A proportion of R runs and its se; the se is floored at that of one success in R
    trials so that a proportion of exactly 0 or 1 still gets a finite z."""
    return phat, math.sqrt(max(phat * (1 - phat), 1.0 / r) / r)


def _z(diff: float, se: float) -> float:
    if se > 0:
        return diff / se
    return 0.0 if diff == 0 else math.copysign(math.inf, diff)


def _rel(value: float, reference: float) -> float:
    return (value - reference) / reference if reference != 0 else math.nan


# --------------------------------------------------------------------------------------------
# Checks per scenario


def _fully(case: Case, seed: int) -> list[Check]:
    p0, label = case.p0(), case.label()
    law = collapse_time_law(p0, n=case.n)
    horizon = case.n_generations or int(law.quantile(1 - 1e-6)) + 1
    res = simulate(p0=p0, scenario=case.build(), runs=case.n_runs, generations=horizon, seed=seed,
                metrics=("sigma",), progress=False, trajectories="none")
    rho_m, _ = res.mean("collapsed")  # ρ_m (eq. 7): the fraction of runs collapsed by m
    T = res.data["collapse_time"].values.ravel()
    censored = int(np.isnan(T).sum())
    T = np.where(np.isnan(T), horizon + 1, T)  # censored runs count as T > horizon
    out: list[Check] = []
    marks = sorted({1, max(1, round(law.mean / 4)), max(1, round(law.mean / 2)), round(law.mean)})
    for m in marks:
        out.append(_exact(f"S_{m} (eq. 6)", label,
                          float(expected_sigma(p0, scenario=case.build(), m=m)),
                          *_at(res, "sigma", m)))
        lower, upper = collapse_prob_bounds(p0, n=case.n, m=m)
        rho, se = _proportion(float(rho_m[m]), case.n_runs)
        out.append(_bound(f"rho_{m} >= eq. 7 lower", label, "lower", float(lower), rho, se))
        out.append(_bound(f"rho_{m} <= eq. 7 upper", label, "upper", float(upper), rho, se))
        theory = float(law.collapse_prob[m])
        z = _z(rho - theory, se)
        out.append(Check(f"rho_{m} (exact law)", label, "exact", theory, rho, se, z,
                         _rel(rho, theory), f"|z| < {Z_LIMIT:g}", abs(z) < Z_LIMIT))
    lower, upper = collapse_time_bounds(p0, n=case.n)
    mean, se = _mean_se(T)
    out.append(_bound("E[T] >= eq. 8 lower", label, "lower", lower, mean, se))
    out.append(_bound("E[T] <= eq. 8 upper", label, "upper", upper, mean, se))
    out.append(_exact("E[T] (exact law)", label, float(law.mean), mean, se))
    out.append(_sd_check(label, float(law.sd), T))
    out.append(_ks_check(label, law, T, horizon, censored))
    out.append(_prediction("E[T] diffusion (Littler)", label,
                           float(collapse_time_prediction(p0, n=case.n, method="littler")),
                           mean, se,
                           TOLERANCE["littler"]))
    out.append(_prediction("E[T] corrected diffusion", label,
                           float(collapse_time_prediction(p0, n=case.n)), mean, se,
                           TOLERANCE["corrected"]))
    out.append(_proposition1(label, p0, res.data["absorbed_token"].values.ravel()))
    return out


def _sd_check(label: str, sd: float, T: np.ndarray) -> Check:
    """sd(T) against the exact law; se of the sample sd by the delta method,
    se(s) ≈ √((μ₄ − s⁴)/R)/(2s)."""
    s = float(T.std(ddof=1))
    mu4 = float(np.mean((T - T.mean()) ** 4))
    se = math.sqrt(max(mu4 - s**4, 0.0) / T.size) / (2 * s) if s > 0 else 0.0
    z = _z(s - sd, se)
    return Check("sd(T) (exact law)", label, "exact", sd, s, se, z, _rel(s, sd),
                 f"|z| < {Z_LIMIT:g}", abs(z) < Z_LIMIT)


def _ks_check(label: str, law, T: np.ndarray, horizon: int, censored: int) -> Check:
    """Kolmogorov–Smirnov distance between the simulated and the exact law of T; the p-value
    of the continuous KS law is conservative for a discrete T."""
    grid = np.arange(law.survival.size)
    cdf = 1.0 - law.survival
    ecdf = np.searchsorted(np.sort(T), grid, side="right") / T.size
    d = float(np.max(np.abs(ecdf[: horizon + 1] - cdf[: horizon + 1])))
    p = float(stats.kstwo.sf(d, T.size))
    return Check("law of T: KS vs exact law", label, "distribution", 0.0, d, math.nan, math.nan,
                 math.nan, f"p > {P_LIMIT:g}", p > P_LIMIT,
                 detail=f"p = {p:.3g}; censored runs: {censored}")


def _proposition1(label: str, p0: np.ndarray, tokens: np.ndarray) -> Check:
    """χ² of the absorbing tokens against p(0) (Proposition 1), tokens with expected count < 5
    pooled into one cell."""
    tokens = tokens[tokens >= 0]
    counts = np.bincount(tokens, minlength=p0.size).astype(float)
    expected = p0 * tokens.size
    big = expected >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    keep = exp > 0
    chi2 = float(np.sum((obs[keep] - exp[keep]) ** 2 / exp[keep]))
    dof = max(int(keep.sum()) - 1, 1)
    p = float(stats.chi2.sf(chi2, dof))
    return Check("Proposition 1: absorbing token ~ p(0)", label, "distribution", float(dof), chi2,
                 math.nan, math.nan, math.nan, f"p > {P_LIMIT:g}", p > P_LIMIT,
                 detail=f"chi2 = {chi2:.3g} on {dof} dof, p = {p:.3g}")


def _partial(case: Case, seed: int) -> list[Check]:
    p0, label = case.p0(), case.label()
    G = case.n_generations or 10
    res = simulate(p0=p0, scenario=case.build(), runs=case.n_runs, generations=G, seed=seed,
                metrics=("sigma", "l1_to_first"), progress=False, trajectories="none")
    out: list[Check] = []
    lam, _ = expected_lambda_empirical(p0, case.N, n_draws=200, seed=seed)
    log_b3 = log_theorem3_bound(p0, n=case.n, N=case.N)
    log_b4 = log_theorem4_bound(p0, n=case.n, N=case.N, expected_lambda1=lam)
    for m in sorted({2, G}):
        out.append(_exact(f"S_{m} (eq. 9, corrected sign)", label,
                          float(expected_sigma(p0, scenario=case.build(), m=m)),
                          *_at(res, "sigma", m)))
        dev = expected_l1_to_first(p0, n=case.n, N=case.N, m=m)
        mean, se = _at(res, "l1_to_first", m)
        out.append(_exact(f"E|p({m})-p(1)|_1 (exact chain)", label, dev.value, mean, se))
        out.append(_bound(f"E|p({m})-p(1)|_1 <= Jensen bound", label, "upper", dev.jensen_upper,
                          mean, se))
        for name, log_b in (("Theorem 3", log_b3), ("Theorem 4", log_b4)):
            out.append(_bound(f"E|p({m})-p(1)|_1 <= {name}", label, "upper",
                              math.exp(min(log_b, 700.0)), mean, se))
    return out


def _most_recent(case: Case, seed: int) -> list[Check]:
    p0, label = case.p0(), case.label()
    scenario = case.build()
    prediction = most_recent_collapse_prediction(p0, n=case.n, K=case.K)
    G = case.n_generations or int(6 * prediction) + 10
    res = simulate(p0=p0, scenario=scenario, runs=case.n_runs, generations=G, seed=seed,
                metrics=("sigma",), progress=False, trajectories="none")
    sigma = expected_sigma(p0, scenario=scenario, m=np.arange(G + 1))
    out = [_exact(f"S_{m} (exact moments)", label, float(sigma[m]), *_at(res, "sigma", m))
           for m in sorted({1, case.K, 2 * case.K, G // 4})]
    absorbed = res.data["absorption_time"].values.ravel()
    absorbed = np.where(np.isnan(absorbed), G + 1, absorbed)
    out.append(_prediction("absorption time (n_e approximation)", label, prediction,
                           *_mean_se(absorbed), TOLERANCE["most-recent absorption"]))
    return out


def _random_pool(case: Case, seed: int) -> list[Check]:
    p0, label = case.p0(), case.label()
    scenario = case.build()
    G = case.n_generations or 50
    res = simulate(p0=p0, scenario=scenario, runs=case.n_runs, generations=G, seed=seed,
                metrics=("sigma", "l1_to_first"), progress=False, trajectories="none")
    sigma = expected_sigma(p0, scenario=scenario, m=np.arange(G + 1))
    upper = l1_to_first_upper_bound(p0, scenario=scenario, m=np.arange(G + 1))
    out = []
    for m in sorted({1, 2, G // 2, G}):
        out.append(_exact(f"S_{m} (exact moments)", label, float(sigma[m]),
                          *_at(res, "sigma", m)))
        if m >= 2:
            mean, se = _at(res, "l1_to_first", m)
            out.append(_bound(f"E|p({m})-p(1)|_1 <= Jensen bound", label, "upper",
                              float(upper[m]), mean, se))
    return out


_RUNNERS: dict[str, Callable[[Case, int], list[Check]]] = {
    "fully-synthetic": _fully,
    "partially-synthetic": _partial,
    "most-recent": _most_recent,
    "random-pool": _random_pool,
}


def run_verification(*, quick: bool = False, seed: int = 0,
                     cases: Sequence[Case] | None = None,
                     progress: Callable[[str], None] | None = None) -> list[Check]:
    """Run every check on the quick or the full grid (or on ``cases``); seeds per case are
    spawned from ``seed``, so the suite is reproducible."""
    seed = check_int(seed, "seed", low=0, where="verify")
    grid = tuple(cases) if cases is not None else (QUICK_CASES if quick else FULL_CASES)
    children = np.random.SeedSequence(seed).spawn(len(grid))
    checks: list[Check] = []
    for case, child in zip(grid, children):
        if progress is not None:
            progress(case.label())
        case_seed = int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
        checks.extend(_RUNNERS[case.scenario](case, case_seed))
    return checks


def all_passed(checks: Sequence[Check]) -> bool:
    return all(c.passed for c in checks)


def format_table(checks: Sequence[Check]) -> str:
    """A fixed-width table, one row per check, grouped by case, with a PASS/FAIL column."""
    rows = []
    current = None
    for c in checks:
        if c.case != current:
            rows.append(f"\n{c.case}")
            current = c.case
        rel = "" if math.isnan(c.rel_error) else f"{100 * c.rel_error:+.2f}%"
        z = "" if math.isnan(c.z) else f"{c.z:+.2f}"
        se = "" if math.isnan(c.se) else f"{c.se:.4g}"
        status = "PASS" if c.passed else "FAIL"
        rows.append(f"  {status}  {c.name:<42} {c.kind:<12} theory={c.theory:<12.6g} "
                    f"sim={c.simulated:<11.6g} se={se:<9} z={z:<7} rel={rel:<8} "
                    f"[{c.tolerance}] {c.detail}".rstrip())
    n_fail = sum(not c.passed for c in checks)
    rows.append(f"\n{len(checks) - n_fail} passed, {n_fail} failed, {len(checks)} checks")
    return "\n".join(rows).lstrip("\n")
