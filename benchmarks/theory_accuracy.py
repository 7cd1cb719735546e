"""Accuracy of the predictions beyond the collapse time, against exact values and simulation.

Three Markdown tables (the ones in docs/theory.md):

1. partially synthetic E‖p(m) − p(1)‖₁: simulation (mean ± se), the exact per-token chain,
   the default ("auto") prediction, the Beta and Gaussian forms, the Jensen bound, Theorem 3;
2. most-recent-K: simulated absorption time and first Dirac time T, n_e and the prediction;
3. the synthetic-data budget: eq. 11, Theorem 3, the prediction and its simulation.

    .venv/bin/python benchmarks/theory_accuracy.py        # ≈ 2 min on 2 cores
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from modelcollapse import simulate
from modelcollapse.distributions import target_distribution, uniform_distribution
from modelcollapse.scenarios import MostRecent, PartiallySynthetic
from modelcollapse.theory import (
    effective_population,
    expected_l1_to_first,
    log_theorem3_bound,
    most_recent_collapse_prediction,
    synthetic_budget,
)

P0_SEED = 0


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))


def partial_table(runs: int, seed: int) -> str:
    lines = ["| p(0) | n | N | m | simulated ± se | exact chain | auto | Beta | Gaussian | "
             "Jensen bound | Theorem 3 bound |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    cases = [((600, 1 / 600), 10, 100), ((52, 0.1), 10, 100), ((52, 0.1), 100, 100),
             ((52, 0.1), 500, 100), ((22, 0.5), 100, 100), ((22, 0.5), 10, 1000)]
    for (support, S0), n, N in cases:
        p0 = target_distribution(600, support, S0, seed=P0_SEED)
        res = simulate(p0=p0, scenario=PartiallySynthetic(n=n, N=N), runs=runs, generations=20,
                       seed=seed, metrics=("l1_to_first",), trajectories="none",
                       progress=False)
        means, ses = res.mean("l1_to_first")
        for m in (2, 20):
            mean, se = means[m], ses[m]
            ex = expected_l1_to_first(p0, n=n, N=N, m=m, method="exact")
            auto = expected_l1_to_first(p0, n=n, N=N, m=m).value
            beta = expected_l1_to_first(p0, n=n, N=N, m=m, method="beta").value
            gauss = expected_l1_to_first(p0, n=n, N=N, m=m, method="gaussian").value
            bound3 = math.exp(log_theorem3_bound(p0, n=n, N=N))
            lines.append(
                f"| s̃={support}, S0={S0:.3g} | {n} | {N} | {m} | {mean:.4f} ± {se:.4f} | "
                f"{ex.value:.4f} | {auto:.4f} | {beta:.4f} ({100 * (beta / ex.value - 1):+.1f} %)"
                f" | {gauss:.4f} ({100 * (gauss / ex.value - 1):+.1f} %) | "
                f"{ex.jensen_upper:.4f} | {bound3:.3g} |")
    return "\n".join(lines)


def most_recent_table(runs: int, seed: int) -> str:
    p0 = target_distribution(600, 52, 0.1, seed=P0_SEED)
    lines = ["| n | K | n_e | n(K+1)²/4 | simulated absorption ± se | prediction (rel. err.) | "
             "simulated first Dirac T ± se |", "|---|---|---|---|---|---|---|"]
    for n, K in ((10, 2), (10, 5), (10, 10), (20, 5), (40, 4), (60, 3)):
        pred = most_recent_collapse_prediction(p0, n=n, K=K)
        res = simulate(p0=p0, scenario=MostRecent(n=n, K=K), runs=runs,
                       generations=int(8 * pred), seed=seed, metrics=(), trajectories="none",
                       progress=False)
        absorbed = res.data["absorption_time"].values.ravel()
        first = res.data["collapse_time"].values.ravel()
        a, a_se = _mean_se(absorbed[~np.isnan(absorbed)])
        t, t_se = _mean_se(first[~np.isnan(first)])
        n_e = effective_population(scenario=MostRecent(n=n, K=K))
        lines.append(f"| {n} | {K} | {n_e:.1f} | "
                     f"{n * (K + 1) ** 2 / 4:.1f} | {a:.1f} ± {a_se:.1f} | {pred:.1f} "
                     f"({100 * (pred / a - 1):+.1f} %) | {t:.1f} ± {t_se:.1f} |")
    return "\n".join(lines)


def budget_table(runs: int, seed: int) -> str:
    lines = ["| p(0) | N | ε | m | eq. 11 | Theorem 3 | prediction | simulated at n (z vs ε) | "
             "simulated at n + 1 (z vs ε) |", "|---|---|---|---|---|---|---|---|---|"]
    cases = [("uniform 600", uniform_distribution(600), 100, 0.1, None),
             ("uniform 600", uniform_distribution(600), 10_000, 0.1, None),
             ("s̃=52, S0=0.1", target_distribution(600, 52, 0.1, seed=P0_SEED), 1000, 0.05, 10),
             ("uniform 600", uniform_distribution(600), 100_000, 0.1, None)]
    for name, p0, N, eps, m in cases:
        r = synthetic_budget(p0, N=N, epsilon=eps, m=m, n_runs=runs, seed=seed)
        sims = [f"{s.mean:.4f} ± {s.se:.4f} ({s.z:+.1f})" for s in r.simulation] or ["—", "—"]
        pred = "unlimited" if r.n_prediction is None else str(r.n_prediction)
        lines.append(f"| {name} | {N} | {eps} | {m if m is not None else 'all'} | {r.n_eq11} | "
                     f"{r.n_theorem3} | {pred} | {sims[0]} | {sims[1]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    print("## Partially synthetic: E‖p(m) − p(1)‖₁\n")
    print(partial_table(args.runs, args.seed))
    print("\n## Most-recent-K\n")
    print(most_recent_table(args.runs // 2, args.seed))
    print("\n## Synthetic-data budget\n")
    print(budget_table(200, args.seed))


if __name__ == "__main__":
    main()
