"""Models held as counts on the numpy backend: speed against plain loops, and the crossover.

    python benchmarks/bench_counts.py                # about a minute on 2 CPU cores
    python benchmarks/bench_counts.py --quick        # smaller token-route samples and grid

Case 1 — p(0) = (0.999, 0.001), fully synthetic, n = 10^4, 10^4 runs × 50 generations:
our engine with ``representation="counts"`` (all metrics, per-generation statistics, runs
stop when absorbed) against a plain count loop (one batched ``Generator.multinomial`` over
the runs' counts per generation, no metrics, no early stop). Target: within 3× of it.
Case 2 — p(0) = target_distribution(600, 52, 0.1, seed=0), fully synthetic, n = 1000,
10^4 runs × 50 generations: against the naive loop (Python loops over runs and generations,
``rng.multinomial(n, p)`` over the vocabulary, the same metrics with numpy, a run stopping at
collapse), timed on --naive-runs runs and scaled to all runs (its runs are independent), and
once more over the live support only. Target: ≥ 10× the naive loop. The token route runs
both cases too (case 1 on --token-runs runs, scaled: runs are independent).

Draws: conditional binomials in compiled code (ours) against one ``Generator.multinomial``
per run block (the numpy fallback) on the same counts.

Crossover: for a uniform p(0) over k live tokens, fully synthetic, n = r·k for a grid of r,
the time of the token route over that of the count route; the crossover r* (where it is 1,
interpolated in log r) is what ``COUNTS_RATIO["numpy"]`` in engine/plan.py stands for
(auto holds models as counts when the smallest fresh draw n ≥ ratio · k).

Every time is the best of --repeat rounds; each round times every contender once, so the
ratios compare them under the same machine load. One thread for every library.
"""

from __future__ import annotations

import argparse
import functools
import os
import time

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from scipy.special import xlogy  # noqa: E402

from modelcollapse import simulate  # noqa: E402
from modelcollapse.distributions import target_distribution  # noqa: E402
from modelcollapse.engine.numpy.counts import draw_counts  # noqa: E402
from modelcollapse.engine.numpy.sampling import RowStreams, rows_per_block  # noqa: E402
from modelcollapse.scenarios import FullySynthetic  # noqa: E402


def plain_count_loop(p0: np.ndarray, *, n: int, runs: int, generations: int,
                     seed: int) -> np.ndarray:
    """All runs' counts at once, one batched multinomial per generation, no early stop."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.broadcast_to(p0, (runs, p0.size)))
    for _ in range(2, generations + 1):
        counts = rng.multinomial(n, counts / n)
    return counts


def naive_loop(p0: np.ndarray, *, n: int, runs: int, generations: int, seed: int) -> None:
    """One Python loop per run, every metric of the engine computed with numpy each
    generation; a run stops when it collapses."""
    rng = np.random.default_rng(seed)
    for _ in range(runs):
        p = rng.multinomial(n, p0) / n
        first = p
        for m in range(1, generations + 1):
            if m > 1:
                p = rng.multinomial(n, p) / n
            _ = (p @ p, np.abs(p - first).sum(), np.abs(p - p0).sum(), -xlogy(p, p).sum(),
                 np.count_nonzero(p))
            if p.max() == 1.0:
                break


def ours(p0: np.ndarray, n: int, runs: int, generations: int, representation: str):
    return simulate(p0=p0, scenario=FullySynthetic(n), runs=runs, generations=generations,
                    seed=1, representation=representation, trajectories="none",
                    progress=False)


def best(times: dict[str, list[float]], fns: dict, repeat: int) -> dict[str, float]:
    """Each round calls every fn once; the best time of each over the rounds."""
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times.setdefault(name, []).append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def case_1(args) -> None:
    p0 = np.array([0.999, 0.001])
    n, runs, G = 10_000, args.runs, 50
    ours(p0, n, 1000, 2, "counts")  # compile and load the kernels outside the timing
    t = best({}, {"plain": lambda: plain_count_loop(p0, n=n, runs=runs, generations=G, seed=1),
                  "counts": lambda: ours(p0, n, runs, G, "counts")}, args.repeat)
    start = time.perf_counter()
    ours(p0, n, args.token_runs, G, "tokens")
    t["tokens"] = (time.perf_counter() - start) * runs / args.token_runs
    lived = np.nan_to_num(ours(p0, n, runs, G, "counts").data["absorption_time"].values,
                          nan=G).mean()
    print(f"Case 1: p(0) = (0.999, 0.001), fully synthetic n = {n}, {runs} runs × {G} "
          f"generations (runs lived {lived:.1f} generations on average)")
    print(f"  {'plain count loop (batched multinomial)':46} {t['plain']:8.3f} s")
    print(f"  {'ours, counts, all metrics':46} {t['counts']:8.3f} s   "
          f"{t['counts'] / t['plain']:5.2f} × plain (target ≤ 3)")
    label = f"ours, tokens (scaled from {args.token_runs} runs)"
    print(f"  {label:46} {t['tokens']:8.3f} s   {t['tokens'] / t['counts']:5.0f} × counts\n")


def case_2(args) -> None:
    p0 = target_distribution(600, 52, 0.1, seed=0)
    live = p0[p0 > 0]
    n, runs, G = 1000, args.runs, 50
    ours(p0, n, 1000, 2, "counts")
    ours(p0, n, 1000, 2, "tokens")
    base = args.naive_runs
    t = best({}, {
        "naive": lambda: naive_loop(p0, n=n, runs=base, generations=G, seed=1),
        "naive-live": lambda: naive_loop(live, n=n, runs=base, generations=G, seed=1),
        "counts": lambda: ours(p0, n, runs, G, "counts"),
        "tokens": lambda: ours(p0, n, runs, G, "tokens"),
    }, args.repeat)
    t["naive"] *= runs / base
    t["naive-live"] *= runs / base
    print(f"Case 2: target_distribution(600, 52, 0.1), fully synthetic n = {n}, {runs} runs × "
          f"{G} generations, all metrics")
    print(f"  {'naive per-run loop, vocabulary 600 (scaled)':46} {t['naive']:8.3f} s")
    print(f"  {'naive per-run loop, live support 52 (scaled)':46} {t['naive-live']:8.3f} s")
    for name in ("counts", "tokens"):
        print(f"  {'ours, ' + name:46} {t[name]:8.3f} s   {t['naive'] / t[name]:5.1f} × naive "
              f"({t['naive-live'] / t[name]:.1f} × on the live support)"
              + ("   (target ≥ 10)" if name == "counts" else ""))
    print()


def draws(args) -> None:
    """Our compiled conditional binomials against Generator.multinomial, the same counts."""
    print("Draws of one generation from the same counts, 10^4 rows (ms)")
    print(f"  {'counts':36} {'compiled binomials':>18} {'Generator.multinomial':>22}")
    rng = np.random.default_rng(0)
    cases = {"k = 2, n = 10^4 (case 1)": (rng.multinomial(10_000, [0.999, 0.001], 10_000),
                                          10_000),
             "k = 52, n = 1000 (case 2, p(1))": (
                 rng.multinomial(1000, target_distribution(52, 52, 0.1, seed=0), 10_000), 1000)}
    for label, (counts, n) in cases.items():
        def run(compiled, counts=counts, n=n):
            draw_counts(counts, n, n, RowStreams(1, 0, rows_per_block(counts.shape[0], 1)),
                        compiled=compiled)
        run(True)
        t = best({}, {"compiled": lambda: run(True), "numpy": lambda: run(False)},
                 args.repeat * 3)
        print(f"  {label:36} {t['compiled'] * 1e3:18.1f} {t['numpy'] * 1e3:22.1f}")
    print()


def crossover(args) -> None:
    ratios = [1, 2, 4, 8, 16, 32] if args.quick else [1, 2, 4, 8, 16, 32, 64]
    supports = [8, 52] if args.quick else [8, 52, 256]
    runs, G = 2000, 10
    print(f"Crossover: uniform p(0) over k tokens, fully synthetic, n = r·k, {runs} runs × {G} "
          f"generations, all metrics; tokens time / counts time")
    print("  " + f"{'k':>5}" + "".join(f"{'r=' + str(r):>8}" for r in ratios) + f"{'r*':>8}")
    found = []
    for k in supports:
        p0 = np.full(k, 1.0 / k)
        ours(p0, k, 1000, 2, "counts")
        ours(p0, k, 1000, 2, "tokens")
        speedup = []
        for r in ratios:
            t = best({}, {rep: functools.partial(ours, p0, r * k, runs, G, rep)
                          for rep in ("counts", "tokens")}, args.repeat)
            speedup.append(t["tokens"] / t["counts"])
        log_s, log_r = np.log(speedup), np.log(ratios)
        above = np.flatnonzero(log_s >= 0)
        if above.size == 0:
            star = float("inf")
        elif above[0] == 0:
            star = float(ratios[0])
        else:
            i = above[0]
            frac = -log_s[i - 1] / (log_s[i] - log_s[i - 1])
            star = float(np.exp(log_r[i - 1] + frac * (log_r[i] - log_r[i - 1])))
        found.append(star)
        print("  " + f"{k:>5}" + "".join(f"{s:8.2f}" for s in speedup) + f"{star:8.1f}")
    print(f"  crossover ratio n / k: {min(found):.1f} … {max(found):.1f} "
          f"(COUNTS_RATIO['numpy'] in engine/plan.py)\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--naive-runs", type=int, default=300)
    parser.add_argument("--token-runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.naive_runs, args.token_runs, args.repeat = 100, 200, 2
    case_1(args)
    case_2(args)
    draws(args)
    crossover(args)


if __name__ == "__main__":
    main()
