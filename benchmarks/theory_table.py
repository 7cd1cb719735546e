"""Acceptance table of the collapse-time theory: the paper's Fig. 2 distributions × n.

For p(0) = target_distribution(600, support, S0, seed=P0_SEED) with (S0, support) of Fig. 2 and
n ∈ {10, 50, 100, 200, 400}: simulated E[T] (mean ± se over --runs runs of the loop), the
paper's bounds (eq. 8), the exact E[T] (lineage chain, theory.genealogy), Littler's diffusion
formula and the corrected prediction (theory.diffusion), with relative errors against the
simulation and against the exact value. Prints a Markdown table (the one in docs/theory.md).

    .venv/bin/python benchmarks/theory_table.py            # ≈ 5 min on 2 cores
    .venv/bin/python benchmarks/theory_table.py --runs 2000 --out table.md
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from modelcollapse import simulate as run_simulation
from modelcollapse.distributions import PAPER_FIG2_PAIRS, target_distribution
from modelcollapse.scenarios import FullySynthetic
from modelcollapse.theory import collapse_time_bounds, collapse_time_law, collapse_time_prediction

#: Seed of every p(0) in the table (the same as the verification suite's).
P0_SEED = 0
SIZES = (10, 50, 100, 200, 400)


def simulate(p0: np.ndarray, n: int, runs: int, horizon: int,
             seed: int) -> tuple[float, float, int]:
    """Mean and se of T over ``runs`` runs; runs still alive at ``horizon`` are counted at
    horizon + 1 and reported (the horizon leaves P(T > horizon) ≤ 1e-7 by the exact law)."""
    res = run_simulation(p0=p0, scenario=FullySynthetic(n=n), runs=runs, generations=horizon,
                         seed=seed, metrics=(), trajectories="none", progress=False)
    T = res.data["collapse_time"].values.ravel()
    censored = int(np.isnan(T).sum())
    T = np.where(np.isnan(T), horizon + 1, T)
    return float(T.mean()), float(T.std(ddof=1) / math.sqrt(T.size)), censored


def rows(runs: int, seed: int) -> list[dict]:
    out = []
    for k, (S0, support) in enumerate(PAPER_FIG2_PAIRS):
        p0 = target_distribution(600, support, S0, seed=P0_SEED)
        for j, n in enumerate(SIZES):
            law = collapse_time_law(p0, n=n)
            horizon = int(law.quantile(1 - 1e-7))
            start = time.perf_counter()
            mean, se, censored = simulate(p0, n, runs, horizon, seed + 100 * k + j)
            lower, upper = collapse_time_bounds(p0, n=n)
            out.append({
                "S0": S0, "support": support, "n": n, "sim_mean": mean, "sim_se": se,
                "censored": censored, "lower_eq8": lower, "upper_eq8": upper,
                "exact": float(law.mean),
                "littler": float(collapse_time_prediction(p0, n=n, method="littler")),
                "prediction": float(collapse_time_prediction(p0, n=n)),
                "seconds": time.perf_counter() - start,
            })
    return out


def markdown(table: list[dict], runs: int) -> str:
    head = ("| S0 | s̃ | n | simulated E[T] ± se | eq. 8 lower | eq. 8 upper | exact E[T] | "
            "Littler (rel. err. vs sim) | corrected prediction (rel. err. vs sim) | "
            "prediction vs exact |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in table:
        lit = r["littler"] / r["sim_mean"] - 1
        pred = r["prediction"] / r["sim_mean"] - 1
        vs_exact = r["prediction"] / r["exact"] - 1
        lines.append(
            f"| {r['S0']} | {r['support']} | {r['n']} | {r['sim_mean']:.2f} ± {r['sim_se']:.2f} "
            f"| {r['lower_eq8']:.2f} | {r['upper_eq8']:.0f} | {r['exact']:.3f} | "
            f"{r['littler']:.2f} ({100 * lit:+.2f} %) | {r['prediction']:.3f} "
            f"({100 * pred:+.2f} %) | {100 * vs_exact:+.4f} % |")
    censored = sum(r["censored"] for r in table)
    lines.append(f"\n{runs} runs per row, p(0) seed {P0_SEED}; censored runs: {censored}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", type=Path, help="Also write the Markdown table here.")
    args = parser.parse_args(argv)
    text = markdown(rows(args.runs, args.seed), args.runs)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
