"""Time and memory follow the work, not the generation limit (one command, ratios printed).

    python benchmarks/bench_recording.py [--quick]

Each case runs in a process of its own, whose wall time and peak resident memory (the
kernel's ru_maxrss for that child) are measured from outside:

1. ``modelcollapse simulate`` on a 40-token p(0) (support 40, S0 = 0.1), fully synthetic,
   n = 20, 2,000 runs: ``--generations 30000`` against ``--generations 1000`` (every run
   collapses within a few hundred generations, so both do the same work). Target: ≤ 1.3× in
   time and in peak memory.
2. 4,000 runs × 100,000 generations of the same loop, on the numpy and the torch (CPU)
   backend, no trajectories: peak memory (target < 1 GB), and the mean collapse time against
   the exact law (``theory.collapse_time_law``) in standard errors (target |z| < 4).
3. Partially synthetic, N = 100, n = 10, 10^4 runs, 500 generations (s = 600, support 52,
   S0 = 0.1; bench_loop.py's case b): trajectories "none" against "all" (every run's every
   generation, the dense table every simulation kept before results were streamed).
4. 10^6 runs, fully synthetic, n = 10, support 52, 200 generations, no trajectories, on every
   core: peak memory (target < 2 GB).

``--quick`` runs cases 1 and 3 only, with fewer runs in case 3.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

#: A case as a Python program: it prints one JSON line of what it measured itself.
SIMULATE = """
import json, sys
import numpy as np
from modelcollapse.distributions import target_distribution
from modelcollapse import simulate
from modelcollapse.scenarios import FullySynthetic, PartiallySynthetic
from modelcollapse.theory import collapse_time_law
kw = json.loads(sys.argv[1])
p0 = target_distribution(kw.pop("vocab"), kw.pop("support"), 0.1, seed=0)
N = kw.pop("N")
scenario = PartiallySynthetic(kw["n"], N) if N else FullySynthetic(kw["n"])
kw.pop("n")
res = simulate(p0=p0, scenario=scenario, seed=1, progress=False, **kw)
T = res.data["collapse_time"].values.ravel()
law = collapse_time_law(p0, n=scenario.n)
z = (np.nanmean(T) - law.mean) / (np.nanstd(T, ddof=1) / np.sqrt(T.size))
print(json.dumps({"censored": int(np.isnan(T).sum()), "T_mean": float(np.nanmean(T)),
                  "T_exact": float(law.mean), "z": float(z) if not N else None}))
"""


def measure(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak resident memory (GB) and stdout of one process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if process.returncode:
        raise RuntimeError(f"{' '.join(command[:4])} … exited with {process.returncode}")
    return wall, usage.ru_maxrss * 1024 / 1e9, out  # ru_maxrss is in KiB on Linux


def cli_simulate(generations: int) -> tuple[float, float]:
    script = os.path.join(os.path.dirname(sys.executable), "modelcollapse")
    wall, rss, _ = measure([script, "simulate",
                            "--vocab", "40", "--support", "40", "--S0", "0.1", "--n", "20",
                            "--runs", "2000", "--generations", str(generations), "--seed", "1",
                            "--no-progress"])
    return wall, rss


def loop_case(**kw) -> tuple[float, float, dict]:
    wall, rss, out = measure([sys.executable, "-c", SIMULATE, json.dumps(kw)])
    return wall, rss, json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="cases 1 and 3, case 3 smaller")
    args = parser.parse_args()

    print("1. simulate: 40-token p(0), fully synthetic, n = 20, 2,000 runs")
    short, long = cli_simulate(1000), cli_simulate(30000)
    print(f"   --generations  1000: {short[0]:6.2f} s, {short[1]:5.2f} GB peak")
    print(f"   --generations 30000: {long[0]:6.2f} s, {long[1]:5.2f} GB peak")
    print(f"   ratio 30000 / 1000:  {long[0] / short[0]:6.2f} × time, "
          f"{long[1] / short[1]:5.2f} × memory   (target ≤ 1.3 ×)\n")

    if not args.quick:
        print("2. 4,000 runs × 100,000 generations, same loop, no trajectories")
        for backend in ("numpy", "torch"):
            wall, rss, got = loop_case(vocab=40, support=40, n=20, N=None, runs=4000,
                                       generations=100_000, trajectories="none",
                                       backend=backend)
            print(f"   {backend:6} {wall:6.2f} s, {rss:5.2f} GB peak (target < 1 GB); "
                  f"E[T] {got['T_mean']:.2f} vs exact {got['T_exact']:.2f}: z = {got['z']:+.2f} "
                  f"(target |z| < 4); censored runs {got['censored']}")
        print()

    runs = 2000 if args.quick else 10_000
    print(f"3. partially synthetic, N = 100, n = 10, {runs} runs × 500 generations")
    cases = {}
    for trajectories in ("all", "none"):
        wall, rss, _ = loop_case(vocab=600, support=52, n=10, N=100, runs=runs,
                                 generations=500, trajectories=trajectories,
                                 trajectory_memory_mb=1e6)
        cases[trajectories] = (wall, rss)
        print(f"   trajectories {trajectories:4}: {wall:6.2f} s, {rss:5.2f} GB peak")
    (t_all, m_all), (t_none, m_none) = cases["all"], cases["none"]
    print(f"   none / all: {t_none / t_all:5.2f} × time, {m_none / m_all:5.2f} × memory\n")

    if not args.quick:
        print("4. 10^6 runs, fully synthetic, n = 10, support 52, 200 generations, "
              "no trajectories")
        wall, rss, got = loop_case(vocab=600, support=52, n=10, N=None, runs=1_000_000,
                                   generations=200, trajectories="none")
        print(f"   {wall:6.2f} s, {rss:5.2f} GB peak (target < 2 GB); E[T] z = {got['z']:+.2f}")


if __name__ == "__main__":
    main()
