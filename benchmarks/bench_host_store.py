"""The torch loop's host leg: its metric log into the host result arrays (one command).

    python benchmarks/bench_host_store.py [--runs 100000] [--generations 100] [--repeat 5]

The torch engine keeps each window of generations (``LOG_WIDTH``) of its metrics on the
device and copies it, through a staging buffer, into the Result's host arrays with torch's
thread pool. Those arrays are left unfilled (the loop writes every cell), so the first copy
that reaches a page also faults it in. This times the whole host leg for the GPU goal case's
arrays — σ and ‖p(m) − p(1)‖₁ in float64 and ``collapsed``, 10^5 runs, 101 generations —
from already staged windows, three ways, each on freshly allocated arrays:

* cold: straight into the unfilled arrays (the copies take the first-touch faults);
* fault-in: ``_Store.fault_in`` first, on one thread (its time included), then the copies;
* NaN-filled: the arrays filled with NaN first (its time included), then the copies.

Times are medians of ``--repeat`` runs; the ratio is cold over fault-in. Where the kernel
backs large allocations with transparent huge pages, first-touch faults taken by several
threads at once stall one another, and cold is many times slower; elsewhere the ratio is
near 1 and the fault-in costs one pass over the pages.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch

from modelcollapse.loop import _Store
from modelcollapse.torch_backend.loop import LOG_WIDTH

NAMES = ("sigma", "l1_to_first", "collapsed")


def windows(n_generations: int) -> list[slice]:
    """The generations each copy writes: the first window holds generation 0 too."""
    bounds = [0, *range(LOG_WIDTH + 1, n_generations + 1, LOG_WIDTH), n_generations + 1]
    return [slice(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def host_leg(rows: int, n_generations: int, prepare: str) -> float:
    """Seconds to prepare fresh arrays and copy every window into them."""
    values = torch.rand((len(NAMES) - 1, rows, LOG_WIDTH + 1), dtype=torch.float64)
    flags = torch.rand((rows, LOG_WIDTH + 1)) < 0.5
    start = time.perf_counter()
    store = _Store(rows, n_generations, NAMES, filled=prepare == "nan-filled")
    if prepare == "fault-in":
        store.fault_in()
    table = torch.from_numpy(store.table)
    collapsed = torch.from_numpy(store.arrays["collapsed"])
    for columns in windows(n_generations):
        width = columns.stop - columns.start
        table[:, :, columns].copy_(values[:, :, :width])
        collapsed[:, columns].copy_(flags[:, :width])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--generations", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows, gens = args.runs, args.generations
    megabytes = rows * (gens + 1) * (8 * (len(NAMES) - 1) + 1) / 1e6
    print(f"{rows} runs, generations 0…{gens}, metrics {', '.join(NAMES)}: {megabytes:.0f} MB "
          f"in {len(windows(gens))} windows of ≤ {LOG_WIDTH + 1} generations; torch copies "
          f"on {torch.get_num_threads()} threads; medians of {args.repeat}\n")
    ways = ("cold", "fault-in", "nan-filled")
    times = {way: [] for way in ways}
    for _ in range(args.repeat):
        for way in ways:  # interleaved, so that no way gets the memory another just freed
            times[way].append(host_leg(rows, gens, way))
    median = {way: float(np.median(t)) for way, t in times.items()}
    print(f"{'host leg':12} {'ms':>8} {'× fault-in':>11}")
    for way in ways:
        print(f"{way:12} {median[way] * 1e3:8.1f} {median[way] / median['fault-in']:11.2f}")


if __name__ == "__main__":
    main()
