"""Trials per second of every engine over a grid, with ratios measured in the same run.

    python benchmarks/bench_engines.py            # full grid (~20 min on 2 CPU cores)
    python benchmarks/bench_engines.py --quick    # runs ≤ 10^4, smaller budget (~3 min)
    python benchmarks/bench_engines.py --n 100 --support 600 --runs 100000 --device cuda

Case: fully synthetic (§2.2), vocabulary s = 600, p(0) = target_distribution(600, support,
S0 = 1.5 / support, seed 0) — a nearly uniform p(0), so runs live long (E[T] ≈ 2n). Every
engine records σ and ‖p(m) − p(1)‖₁ (what the naive loop records). A trial is one token of
one multinomial draw: trials = runs × generations × n, counted for every nominal generation
(the "alive" column gives the share of run-generations that were not yet absorbed; engines
stop simulating absorbed runs, the batched multinomial does not, the naive loop stops at
collapse). Generations per cell: min(--generations, ⌈--budget / (runs · n)⌉), at least 2.

Engines: ``naive`` — benchmarks/baselines.py naive_loop, one Python loop per run, timed on
--naive-runs runs and scaled linearly to all runs (its runs are independent); ``batched`` —
numpy's batched Generator.multinomial over all s tokens; ``numpy`` — our numpy engine;
``torch-cpu`` — our torch engine on the CPU; ``torch-cuda`` — on a CUDA device when present.
The RNG table is the physical reference: uniform doubles per second from each backend's
generator on this machine. Times are the best of up to --repeat rounds; each round runs
every engine once, so the ratios compare engines under the same machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# One intra-op thread for every library unless asked otherwise: a per-core comparison, and
# stable timings on shared machines. Must be set before numpy and torch start their pools.
_THREADS = "1"
for _i, _arg in enumerate(sys.argv):
    if _arg == "--threads" and _i + 1 < len(sys.argv):
        _THREADS = sys.argv[_i + 1]
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, _THREADS)

import numpy as np  # noqa: E402

from baselines import batched_multinomial_loop, naive_loop, uniform_floor  # noqa: E402
from modelcollapse import simulate  # noqa: E402
from modelcollapse.distributions import target_distribution  # noqa: E402
from modelcollapse.scenarios import FullySynthetic  # noqa: E402

METRICS = ("sigma", "l1_to_first")
VOCAB = 600
ENGINES = ("naive", "batched", "numpy", "torch-cpu", "torch-cuda")


def _ints(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x]


def best_of(fn, repeat: int, min_total: float = 1.0) -> float:
    """Best wall time of ``fn`` over up to ``repeat`` calls (stops once min_total is spent)."""
    times: list[float] = []
    while len(times) < repeat:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if sum(times) >= min_total:
            break
    return min(times)


def interleaved_best(calls: dict, repeat: int, long_round: float = 20.0) -> dict[str, float]:
    """Best wall time of each callable, timed in rounds (one call of each per round), so
    that a change of machine load between engines does not masquerade as a ratio. Stops
    after the first round that took longer than ``long_round`` seconds."""
    best = dict.fromkeys(calls, np.inf)
    for _ in range(repeat):
        start_round = time.perf_counter()
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
        if time.perf_counter() - start_round > long_round:
            break
    return best


def engine_call(engine: str, p0: np.ndarray, n: int, runs: int, generations: int,
                naive_runs: int):
    """A zero-argument callable running ``engine`` on one cell, and the factor that scales
    its time to all ``runs`` (≠ 1 only for the naive loop)."""
    scenario = FullySynthetic(n)
    if engine == "naive":
        sub = min(runs, naive_runs)
        return (lambda: naive_loop(p0, n=n, N=None, runs=sub, generations=generations,
                                   seed=1)), runs / sub
    if engine == "batched":
        return (lambda: batched_multinomial_loop(p0, n=n, N=None, runs=runs,
                                                 generations=generations, seed=1)), 1.0
    backend, device = ("numpy", "cpu") if engine == "numpy" else ("torch", engine[6:])
    return (lambda: simulate(p0=p0, scenario=scenario, runs=runs, generations=generations,
                             seed=1, metrics=METRICS, backend=backend, device=device,
                             trajectories="none")), 1.0


def alive_share(p0: np.ndarray, n: int, runs: int, generations: int) -> float:
    """Share of run-generations before absorption (from a numpy-engine run of the cell)."""
    res = simulate(p0=p0, scenario=FullySynthetic(n), runs=min(runs, 2000),
                   generations=generations, seed=1, metrics=("sigma",), trajectories="none")
    lived = np.minimum(np.nan_to_num(res.data["absorption_time"].values, nan=generations),
                       generations)
    return float(lived.mean() / generations)


def rng_rates(engines: list[str], count: int) -> dict[str, float]:
    """Uniform doubles per second of each backend's generator (best of 3)."""
    rates = {"numpy PCG64DXSM": count / best_of(lambda: uniform_floor(count), 3)}
    if any(e.startswith("torch") for e in engines):
        import torch

        devices = [e[6:] for e in engines if e.startswith("torch")]
        for device in devices:
            gen = torch.Generator(device=device)
            gen.manual_seed(0)
            buf = torch.empty(min(count, 1 << 24), dtype=torch.float64, device=device)

            def draw(buf=buf, gen=gen, device=device):
                for _ in range(max(1, count // buf.numel())):
                    buf.uniform_(generator=gen)
                if device != "cpu":
                    torch.cuda.synchronize()

            draw()
            name = "torch MT19937 (cpu)" if device == "cpu" else f"torch Philox ({device})"
            rates[name] = max(1, count // buf.numel()) * buf.numel() / best_of(draw, 3)
    return rates


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="runs ∈ {10^2, 10^4}, budget 3e7 trials per engine and cell")
    parser.add_argument("--n", type=_ints, default=[10, 100, 1000])
    parser.add_argument("--support", type=_ints, default=[52, 600])
    parser.add_argument("--runs", type=_ints, default=None, help="default 100,10000,100000")
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--budget", type=float, default=None,
                        help="trials per engine and cell that set the generations "
                             "(default 2e8; 3e7 with --quick)")
    parser.add_argument("--naive-runs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engines", type=lambda s: s.split(","), default=None,
                        help=f"subset of {','.join(ENGINES)}")
    parser.add_argument("--device", default="auto",
                        help="'auto' adds torch-cuda when CUDA is available; 'cpu' never")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (all libs)")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)

    runs_grid = args.runs or ([100, 10_000] if args.quick else [100, 10_000, 100_000])
    budget = args.budget or (3e7 if args.quick else 2e8)
    engines = _engines(args)
    print(f"fully synthetic, vocab {VOCAB}, S0 = 1.5/support, metrics σ and L1; "
          f"threads={args.threads}; budget {budget:.0e} trials per engine and cell; "
          f"naive timed on ≤{args.naive_runs} runs and scaled linearly", flush=True)
    _warm_up(engines)
    rows = []
    header = (f"{'n':>5} {'supp':>5} {'runs':>7} {'G':>3} {'alive':>6} "
              + "".join(f"{e:>12}" for e in engines)
              + "".join(f"{r:>12}" for r in _ratio_names(engines)))
    print("\ntrials per second (runs × G × n / time)\n" + header + "\n" + "-" * len(header))
    for support in args.support:
        p0 = target_distribution(VOCAB, support, 1.5 / support, seed=0)
        for n in args.n:
            for runs in runs_grid:
                generations = int(max(2, min(args.generations, np.ceil(budget / (runs * n)))))
                trials = runs * generations * n
                row = {"n": n, "support": support, "runs": runs, "generations": generations,
                       "alive": alive_share(p0, n, runs, generations), "rate": {}}
                calls, scales = {}, {}
                for engine in engines:
                    calls[engine], scales[engine] = engine_call(engine, p0, n, runs,
                                                                generations, args.naive_runs)
                for engine, seconds in interleaved_best(calls, args.repeat).items():
                    row["rate"][engine] = trials / (seconds * scales[engine])
                row["ratios"] = _ratios(row["rate"])
                rows.append(row)
                print(f"{n:5d} {support:5d} {runs:7d} {generations:3d} {row['alive']:6.0%} "
                      + "".join(f"{row['rate'][e]:12.3g}" for e in engines)
                      + "".join(f"{v:12.2f}" for v in row["ratios"].values()), flush=True)
    rates = rng_rates(engines, 1 << 26)
    print("\nuniform RNG throughput (doubles per second)")
    for name, rate in rates.items():
        print(f"  {name:24s} {rate:10.3g}")
    out = {"threads": args.threads, "budget": budget, "cells": rows, "rng": rates,
           "engines": engines}
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2))
    return out


def _engines(args) -> list[str]:
    engines = list(args.engines or ENGINES)
    unknown = set(engines) - set(ENGINES)
    if unknown:
        raise SystemExit(f"unknown engines {sorted(unknown)}; choose from {list(ENGINES)}")
    torch_ok = True
    try:
        import torch

        torch.set_num_threads(args.threads)
        cuda = torch.cuda.is_available() and args.device != "cpu"
    except ImportError:
        torch_ok = cuda = False
    return [e for e in engines
            if (e != "torch-cuda" or cuda) and (not e.startswith("torch") or torch_ok)]


def _warm_up(engines: list[str]) -> None:
    """Run every engine once on a tiny case (lazy initialisation is not the loop's cost)."""
    p0 = target_distribution(VOCAB, 52, 1.5 / 52, seed=0)
    for engine in engines:
        engine_call(engine, p0, 10, 10, 3, 10)[0]()


def _ratio_names(engines: list[str]) -> list[str]:
    return list(_ratios(dict.fromkeys(engines, 1.0)))


def _ratios(rate: dict[str, float]) -> dict[str, float]:
    """Speed-ups measured in the same run (ratios of trials per second)."""
    out = {}
    if "numpy" in rate and "naive" in rate:
        out["numpy/naive"] = rate["numpy"] / rate["naive"]
    if "numpy" in rate and "batched" in rate:
        out["numpy/batch"] = rate["numpy"] / rate["batched"]
    for engine in ("torch-cpu", "torch-cuda"):
        if engine in rate and "numpy" in rate:
            out[f"{engine[6:]}/numpy"] = rate[engine] / rate["numpy"]
    return out


if __name__ == "__main__":
    main()
