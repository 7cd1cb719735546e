"""Timings of the exact collapse-time law (modelcollapse.theory.genealogy).

Run: ``.venv/bin/python benchmarks/bench_collapse_law.py`` (add ``--quick`` to stop at n = 2000;
``--table`` prints instead the Markdown table of docs/collapse_time_law.md: exact E[T] against the
paper's eq. 8 bounds and the diffusion prediction on Fig. 2's four distributions).

For each n it prints: the time of E[T] and sd(T) by the triangular solve and its peak traced
memory (from a second, traced run), the time of the whole law (ρ_m, P(T > m), expected
support) until P(T > M) ≤ 1e-10 and its length M, and for n ≤ 1000 the time of the dense
linear solve of the s = 2 count chain (the textbook route, O(n³)) on a two-token p(0) for
comparison. p(0) is Fig. 2's S0 = 0.01, support 181 distribution (vocab 600, seed 0).
"""

from __future__ import annotations

import argparse
import platform
import time
import tracemalloc

import numpy as np

from modelcollapse.distributions import PAPER_FIG2_PAIRS, target_distribution
from modelcollapse.theory import collapse_time_law
from modelcollapse.theory.markov import fully_synthetic_chain


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def table() -> None:
    """Exact E[T] beside eq. 8 and the diffusion prediction −2n Σ (1 − p_i) ln(1 − p_i)."""
    print("| S0 | s̃ | n | exact E[T] | sd(T) | eq. 8 lower | eq. 8 upper | diffusion "
          "| diffusion rel. error |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for S0, support in PAPER_FIG2_PAIRS:
        p0 = target_distribution(600, support, S0, seed=0)
        q = p0[p0 > 0]
        spread = -np.sum((1 - q) * np.log1p(-q))
        for n in (10, 50, 100, 200, 400):
            law = collapse_time_law(p0, n=n)
            lower = 1 + (1 - S0) / (1 - 1 / support) * (n - 1)
            upper = 1 + (1 - S0) * n * (n - 1)
            diffusion = 2 * n * spread
            print(f"| {S0} | {support} | {n} | {law.mean:.2f} | {law.sd:.2f} | {lower:.2f} "
                  f"| {upper:.0f} | {diffusion:.2f} | {100 * (diffusion / law.mean - 1):+.2f} % |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="stop at n = 2000")
    parser.add_argument("--table", action="store_true", help="print the docs table and stop")
    args = parser.parse_args(argv)
    if args.table:
        table()
        return
    sizes = [10, 100, 400, 1000, 2000] + ([] if args.quick else [5000, 10_000])
    p0 = target_distribution(600, 181, 0.01, seed=0)
    print(f"# {platform.processor() or platform.machine()}, numpy {np.__version__}")
    print(f"{'n':>6} {'E[T]':>10} {'sd(T)':>10} {'solve s':>8} {'peak MB':>8} "
          f"{'law s':>7} {'M':>7} {'M/E[T]':>7} {'chain s':>8}")
    for n in sizes:
        law, t_solve = timed(lambda n=n: collapse_time_law(p0, n=n))
        tracemalloc.start()  # a second, traced solve: tracing slows it, so it is not timed
        collapse_time_law(p0, n=n)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        _, t_law = timed(lambda law=law: law.survival)
        m_last = int(law.generations[-1])
        chain = "-"
        if n <= 1000:
            _, t_chain = timed(lambda n=n: fully_synthetic_chain([0.3, 0.7], n).mean_collapse_time)
            chain = f"{t_chain:8.3f}"
        print(f"{n:>6} {law.mean:>10.2f} {law.sd:>10.2f} {t_solve:>8.3f} {peak / 1e6:>8.1f} "
              f"{t_law:>7.2f} {m_last:>7} {m_last / law.mean:>7.1f} {chain:>8}")


if __name__ == "__main__":
    main()
