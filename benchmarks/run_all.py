"""Every speed benchmark in one command (``make bench``), each printing its own ratios.

    python benchmarks/run_all.py            # the quick set (about a minute on 2 CPU cores)
    python benchmarks/run_all.py --full     # full grids, the sweep and the transformer too
    python benchmarks/run_all.py --only bench_loop,bench_engines

Each benchmark runs as its own process, one after the other, so that none inherits another's
threads, caches or memory; its output streams through, and a summary at the end lists how
long each took and which failed. The CUDA benchmarks join in when torch sees a CUDA device.
The exit status is 1 when any benchmark failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: (script, arguments in the quick set, arguments in the full set); None: not in that set.
CPU_BENCHMARKS = [
    ("bench_loop.py", [], []),
    ("bench_engines.py", ["--quick"], []),
    ("bench_counts.py", ["--quick"], []),
    ("bench_collapse_law.py", ["--quick"], []),
    ("bench_recording.py", ["--quick"], []),
    ("bench_budget.py", ["--quick"], []),
    ("bench_ngram_generate.py", ["--quick"], []),
    ("bench_ngram.py", ["--quick"], []),
    ("bench_functional.py", ["--quick"], []),
    ("bench_sweep.py", None, []),
    ("bench_lm.py", None, []),
]
CUDA_BENCHMARKS = [
    ("gpu_engines.py", [], []),
    ("gpu_fused_tuning.py", [], []),
    ("gpu_lm.py", None, []),
]


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def plan(full: bool, only: list[str] | None, cuda: bool) -> list[list[str]]:
    """The command lines to run, in order."""
    commands = []
    for script, quick_args, full_args in CPU_BENCHMARKS + (CUDA_BENCHMARKS if cuda else []):
        args = full_args if full else quick_args
        name = script.removesuffix(".py")
        if only is not None:
            if name not in only:
                continue
            args = args if args is not None else full_args
        if args is None:
            continue
        commands.append([sys.executable, str(HERE / script), *args])
    return commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full grids and every benchmark")
    parser.add_argument("--only", type=lambda s: s.split(","), default=None,
                        help="comma-separated benchmark names (e.g. bench_loop,bench_engines)")
    args = parser.parse_args(argv)
    known = {script.removesuffix(".py") for script, _, _ in CPU_BENCHMARKS + CUDA_BENCHMARKS}
    unknown = sorted(set(args.only or ()) - known)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; "
                     f"known: {', '.join(sorted(known))}")
    commands = plan(args.full, args.only, _cuda())
    summary = []
    for command in commands:
        name = Path(command[1]).stem
        print(f"\n===== {name} {' '.join(command[2:])}".rstrip(), flush=True)
        start = time.perf_counter()
        code = subprocess.call(command, cwd=HERE.parent)
        summary.append((name, time.perf_counter() - start, code))
    print("\n===== summary")
    for name, seconds, code in summary:
        print(f"{name:<24} {seconds:8.1f} s  {'ok' if code == 0 else f'FAILED (exit {code})'}")
    return int(any(code for _, _, code in summary))


if __name__ == "__main__":
    sys.exit(main())
