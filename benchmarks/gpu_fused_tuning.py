"""Settings of the fused span kernel on a CUDA device: warps per program, generations per
launch, and generations between the loop's absorption checks.

    python benchmarks/gpu_fused_tuning.py [--out DIR]            # on a CUDA device (~30 s)
    TRITON_INTERPRET=1 python benchmarks/gpu_fused_tuning.py --device cpu --rows 6
                                                                 # the checks only

The kernel (``modelcollapse.engine.torch.fused``) runs one program per row; how many warps a
program has and how many generations a launch covers change its speed, not its draws.
1. Checks, before any timing: every ``num_warps`` gives the same tokens and collapses, and
   the same float metrics to rounding (the order of a sum over a row follows the warps);
   a span of S generations equals S spans of one exactly.
2. Kernel time per generation at 10^5 rows, n = 100, support 600, σ and ‖p − p(1)‖₁ (the goal
   case of issue 7), with CUDA events, for num_warps ∈ {1, 2, 4, 8} × steps ∈ {1, 8, 32};
   trials/s = rows · n / time. Then the partially synthetic step (a corpus of N = 100, so
   models of 200 tokens) at 32 steps, num_warps ∈ {1, 2, 4}.
3. The whole loop (``simulate``, backend torch; the whole call timed), goal case, G = 100,
   with the absorption check every 8 (the default), 16 and 32 generations: a span ends at a
   check, so this is also the span.
Writes DIR/gpu_fused_tuning.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import triton

from modelcollapse import simulate
from modelcollapse.distributions import target_distribution
from modelcollapse.engine import plan as engine_plan
from modelcollapse.engine.torch import fused
from modelcollapse.scenarios import FullySynthetic

ROWS, N, K = 100_000, 100, 600
NAMES = ("sigma", "l1_to_first", "collapsed")


def _case(rows: int, dev: torch.device):
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, K, (rows, N), generator=gen)
    tokens[: max(1, rows // 50)] = 7  # some collapsed rows
    first = torch.rand(rows, K, dtype=torch.float64, generator=gen)
    first /= first.sum(dim=1, keepdim=True)
    return tokens.to(dev), first.to(dev), first[:1].clone().to(dev)


def _same(a: fused.Span, b: fused.Span) -> bool:
    return (torch.equal(a.tokens, b.tokens) and torch.equal(a.dirac, b.dirac)
            and torch.equal(a.onset, b.onset)
            and torch.equal(a.metrics["collapsed"], b.metrics["collapsed"])
            and all(torch.allclose(a.metrics[name], b.metrics[name], rtol=0, atol=1e-12)
                    for name in a.metrics if name != "collapsed"))


def checks(tokens, first, truth, row_ids) -> dict:
    seeds = [fused.generation_seed(1, m) for m in range(2, 6)]
    reference = fused.fused_steps(tokens, row_ids, seeds, NAMES, first, truth, num_warps=1)
    result = {}
    for warps in (2, 4, 8):
        got = fused.fused_steps(tokens, row_ids, seeds, NAMES, first, truth, num_warps=warps)
        result[f"num_warps={warps} equals num_warps=1 (float metrics to 1e-12)"] = _same(
            got, reference)
    current, metrics = tokens, []
    for seed in seeds:
        one = fused.fused_steps(current, row_ids, [seed], NAMES, first, truth, num_warps=1)
        current = one.tokens
        metrics.append(one.metrics)
    result["span of 4 equals 4 spans of 1"] = (
        torch.equal(current, reference.tokens) and torch.equal(one.dirac, reference.dirac)
        and all(torch.equal(torch.cat([m[name] for m in metrics], dim=1),
                            reference.metrics[name]) for name in reference.metrics))
    return result


def kernel_times(tokens, first, truth, row_ids, repeats: int) -> list[dict]:
    rows = []
    corpus = tokens.flip(1)  # a corpus of N = n tokens per row for the partially synthetic rows
    cases = [(warps, steps, None) for warps in (1, 2, 4, 8) for steps in (1, 8, 32)]
    cases += [(warps, 32, corpus) for warps in (1, 2, 4)]
    for warps, steps, real in cases:
        seeds = [fused.generation_seed(1, m) for m in range(2, 2 + steps)]

        def launch(warps=warps, seeds=seeds, real=real):
            fused.fused_steps(tokens, row_ids, seeds, NAMES, first, truth, corpus=real,
                              draws=N, num_warps=warps)

        launch()
        start, stop = (torch.cuda.Event(enable_timing=True) for _ in range(2))
        start.record()
        for _ in range(repeats):
            launch()
        stop.record()
        torch.cuda.synchronize()
        ms = start.elapsed_time(stop) / (repeats * steps)
        real_n = 0 if real is None else real.shape[1]
        rows.append({"num_warps": warps, "steps": steps, "corpus_N": real_n,
                     "ms_per_generation": ms, "trials_per_s": tokens.shape[0] * N / (ms / 1e3)})
        print(f"num_warps={warps} steps={steps:>2} N={real_n:>3}: {ms:.3f} ms/generation, "
              f"{rows[-1]['trials_per_s']:.2e} trials/s (n draws counted)", flush=True)
    return rows


def loop_times(dev: torch.device, runs: int) -> list[dict]:
    p0 = target_distribution(K, K, 1.5 / K, seed=0)
    kw = dict(p0=p0, scenario=FullySynthetic(N), backend="torch", seed=1, metrics=NAMES,
              device=str(dev), trajectories="none", progress=False)
    rows = []
    default = engine_plan.CHECK_EVERY["torch"]
    try:
        for every in (default, 16, 32):
            engine_plan.CHECK_EVERY["torch"] = every
            simulate(runs=min(runs, 2000), generations=3, **kw)
            start = time.perf_counter()
            result = simulate(runs=runs, generations=100, **kw)
            wall = time.perf_counter() - start
            trials = runs * 100 * N
            rows.append({"check_every": every, "route": result.data.attrs["route"],
                         "wall_s": wall, "trials_per_s_wall": trials / wall})
            print(f"check every {every:>2}: wall {wall:.3f} s ({trials / wall:.2e} trials/s)",
                  flush=True)
    finally:
        engine_plan.CHECK_EVERY["torch"] = default
    return rows


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--rows", type=int, default=ROWS)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    dev = torch.device(args.device)
    out_dir = args.out or Path(os.environ.get("OUT") or ".")
    out_dir.mkdir(parents=True, exist_ok=True)
    tokens, first, truth = _case(args.rows, dev)
    row_ids = torch.arange(args.rows, device=dev)
    report: dict = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                    "triton": triton.__version__, "torch": torch.__version__,
                    "rows": args.rows, "n": N, "k": K}
    report["checks"] = checks(tokens, first, truth, row_ids)
    print("checks:", report["checks"], flush=True)
    if dev.type == "cuda" and all(report["checks"].values()):
        report["kernel"] = kernel_times(tokens, first, truth, row_ids, args.repeats)
        report["loop"] = loop_times(dev, args.rows)
    path = out_dir / "gpu_fused_tuning.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"{time.perf_counter() - t0:.1f} s")
