"""Speed of the numpy engine against the naive loop and the random-number floor (one command).

    python benchmarks/bench_loop.py [--runs 10000] [--baseline-runs 300]

Cases (10,000 runs, s = 600, support 52, S0 = 0.1): (a) fully synthetic, n = 10, up to 500
generations (runs stop at collapse); (b) partially synthetic, N = 100, n = 10, 500
generations. Our engine is timed on one thread and, for (b), whose compiled route runs
run blocks in parallel, also on every core. The naive baseline (benchmarks/baselines.py) is
timed on ``--baseline-runs`` runs and scaled linearly to all runs: its runs are independent
Python loops, so its time is proportional to their number. The floor is the time the same
generator (PCG64DXSM) takes to draw the R·G·n uniforms the loop needs at the least; for (a)
it is given both for G = 500 and for the generations the runs actually lived (Σ T). Our
engine keeps per-generation means and standard errors (trajectories "none") unless a line
says it keeps every run's trajectory.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from baselines import naive_loop, uniform_floor
from modelcollapse import simulate
from modelcollapse._system import available_cores
from modelcollapse.distributions import target_distribution
from modelcollapse.scenarios import FullySynthetic, PartiallySynthetic

FIGURE_METRICS = ("sigma", "l1_to_first")


def best_of(repeat: int, fn, *args, **kwargs) -> float:
    """Shortest wall time of ``repeat`` calls of ``fn(*args, **kwargs)``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--baseline-runs", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    p0 = target_distribution(600, 52, 0.1, seed=0)
    R, G, n = args.runs, 500, 10
    cases = {"(a) fully-synthetic n=10": (FullySynthetic(n), None),
             "(b) partially-synthetic N=100 n=10": (PartiallySynthetic(n, 100), 100)}
    cores = available_cores()
    print(f"runs={R}, generations≤{G}, s=600, support 52, S0=0.1; times are best of "
          f"{args.repeat}; one thread unless stated ({cores} cores available)\n")
    header = (f"{'case':38} {'engine':>22} {'time s':>8} {'× baseline':>11} {'× floor':>8}")
    print(header)
    print("-" * len(header))
    for label, (scenario, N) in cases.items():
        base_runs = min(args.baseline_runs, R)
        t_base = best_of(1, naive_loop, p0, n=n, N=N, runs=base_runs, generations=G,
                         seed=1) * R / base_runs
        res = simulate(p0=p0, scenario=scenario, runs=R, generations=G, seed=1,
                       metrics=FIGURE_METRICS, trajectories="none")
        lived = np.nan_to_num(res.data["collapse_time"].values, nan=G).sum()
        t_floor = best_of(args.repeat, uniform_floor, R * G * n)
        t_floor_lived = best_of(args.repeat, uniform_floor, int(lived) * n)
        print(f"{label:38} {'naive per-run loop':>22} {t_base:8.2f} {1.0:11.1f} "
              f"{t_base / t_floor:8.1f}")
        engines = [("ours, σ and L1", FIGURE_METRICS, 1, None, "none"),
                   ("ours, all metrics", None, 1, None, "none"),
                   ("ours, σ and L1, numpy", FIGURE_METRICS, 1, False, "none"),
                   ("σ and L1, trajectories", FIGURE_METRICS, 1, None, "all")]
        if N is not None and cores > 1:
            engines.insert(1, (f"ours, σ and L1, {cores} thr.", FIGURE_METRICS, cores, None,
                               "none"))
        times = {}
        for name, metrics, threads, compiled, trajectories in engines:
            times[name] = t = best_of(args.repeat, simulate, p0=p0, scenario=scenario, runs=R,
                                      generations=G, seed=1, metrics=metrics,
                                      threads=threads, compiled=compiled,
                                      trajectories=trajectories, trajectory_memory_mb=1e6)
            print(f"{'':38} {name:>22} {t:8.2f} {t_base / t:11.1f} {t / t_floor:8.1f}")
        print(f"{'':38} {'floor R·G·n uniforms':>22} {t_floor:8.3f}")
        if N is None:
            print(f"{'':38} {'floor R·E[T]·n':>22} {t_floor_lived:8.4f}   "
                  f"(runs lived {lived / R:.1f} generations on average; ours, σ and L1, "
                  f"takes {times['ours, σ and L1'] / t_floor_lived:.1f} × this floor)")
    print("\n× baseline: speed-up over the naive loop; × floor: time / floor time (R·G·n).\n"
          "numpy: the numpy-only route (what runs without numba).")


if __name__ == "__main__":
    main()
