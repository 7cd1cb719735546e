"""Timing of the functional loop's fits: warm-started Newton–CG (per-run convergence, logits
for rank c and λ = 0) against cold-started joint L-BFGS (the baseline), on the same counts.

    .venv/bin/python benchmarks/bench_functional.py [--runs 200 --contexts 81 --vocab 100]
    .venv/bin/python benchmarks/bench_functional.py --quick    # 40 runs, d = 16 and 81

Prints seconds per generation for each d and the ratio baseline / Newton.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from modelcollapse.functional import FunctionalSpec
from modelcollapse.functional.history import draw_counts
from modelcollapse.functional.loop import build_problem
from modelcollapse.functional.solvers import LogitObjective, SoftmaxObjective, fit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--contexts", type=int, default=81)
    parser.add_argument("--vocab", type=int, default=100)
    parser.add_argument("--dims", default="16,81,256")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="40 runs, d = 16 and 81")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.dims = 40, "16,81"
    for d in (int(x) for x in args.dims.split(",")):
        spec = FunctionalSpec(contexts=args.contexts, vocab=args.vocab, dim=d,
                              weight_decay=args.weight_decay)
        emb, p0 = build_problem(spec, 0)
        rng = np.random.default_rng(0)
        xt = torch.tensor(emb.reduced)
        c, s, R = args.contexts, args.vocab, args.runs
        p = np.tile(p0, (R, 1))
        warm = None
        times = {"newton (warm)": 0.0, "lbfgs (cold, joint)": 0.0}
        for _ in range(args.generations):
            counts = draw_counts(p, 10, rng).reshape(R, c, s)
            tensor = torch.tensor(counts.transpose(0, 2, 1), dtype=torch.float64)
            in_logits = emb.rank == c and spec.weight_decay == 0.0  # as the loop decides
            newton_obj = (LogitObjective(xt, tensor, spec.weight_decay) if in_logits
                          else SoftmaxObjective(xt, tensor, spec.weight_decay))
            start = warm if warm is not None else torch.zeros(
                R, s, c if in_logits else emb.rank, dtype=torch.float64)
            tick = time.perf_counter()
            warm, _ = fit(newton_obj, start, solver="newton", tol=spec.tol)
            times["newton (warm)"] += time.perf_counter() - tick
            base = SoftmaxObjective(xt, tensor, spec.weight_decay)
            tick = time.perf_counter()
            fit(base, torch.zeros(R, s, emb.rank, dtype=torch.float64), solver="lbfgs",
                tol=spec.tol, max_iter=200)
            times["lbfgs (cold, joint)"] += time.perf_counter() - tick
            p = torch.softmax(newton_obj.logits(warm), 1).transpose(1, 2).reshape(-1, s).numpy()
        per = {k: v / args.generations for k, v in times.items()}
        print(f"d={d:4d} λ={spec.weight_decay:g}: " + ", ".join(
            f"{k} {v:.2f} s/gen" for k, v in per.items())
            + f", ratio {per['lbfgs (cold, joint)'] / per['newton (warm)']:.2f}", flush=True)


if __name__ == "__main__":
    main()
