"""Speed of sampling text from an n-gram table: the numba kernel against the numpy engine.

    python benchmarks/bench_ngram_generate.py            # about 5 s on 2 CPU cores
    python benchmarks/bench_ngram_generate.py --quick    # fewer rounds

The model is the order-3 character table of tiny Shakespeare's training split (the path in
--corpus); 2 × 10^4 streams start at k-token slices of the training text at random positions
and are written to each length of --lengths. Tokens/s counts the tokens generated,
streams × (length − k), over the wall time of one ``generate`` call (table layout, uniforms
and sampling included); the numba kernel runs on numba's threads (every core unless
--threads), the numpy engine on one. Each time is the best of --repeat rounds, each round
timing both engines, so the ratio compares them under the same machine load. Target: ≥ 2 ×
10^7 tokens/s for numba on 2 cores. Compile time is measured apart, on a fresh copy of the
kernel without the on-disk cache (the first call of a process normally loads that cache).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from modelcollapse._system import available_cores
from modelcollapse.corpus import load_corpus
from modelcollapse.ngram import sampler
from modelcollapse.ngram.sampler import NUMBA_AVAILABLE, generate
from modelcollapse.ngram.table import NgramTable

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
TARGET = 2e7


def compile_seconds(table: NgramTable, starts: np.ndarray) -> tuple[float, float]:
    """(cold compile of a fresh kernel without cache, first call of the module's kernel)."""
    import numba

    start = time.perf_counter()
    generate(table, starts[:8], table.order + 2, np.random.default_rng(0), engine="numba")
    first = time.perf_counter() - start
    fresh = numba.njit(parallel=True, cache=False)(sampler._numba_body)
    saved = sampler._numba_kernel
    sampler._numba_kernel = fresh
    try:
        start = time.perf_counter()
        generate(table, starts[:8], table.order + 2, np.random.default_rng(0), engine="numba")
        cold = time.perf_counter() - start
    finally:
        sampler._numba_kernel = saved
    return cold, first


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--streams", type=int, default=20_000)
    parser.add_argument("--lengths", type=lambda s: [int(x) for x in s.split(",")],
                        default=[50, 100])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="numba threads (default all)")
    parser.add_argument("--quick", action="store_true", help="2 rounds")
    args = parser.parse_args(argv)
    repeat = 2 if args.quick else args.repeat

    corpus = load_corpus(args.corpus)
    k = args.order
    table = NgramTable.count(corpus.train, k, corpus.vocab_size)
    rng = np.random.default_rng(0)
    positions = rng.integers(0, corpus.train.size - k, args.streams)
    starts = corpus.train[positions[:, None] + np.arange(k)]  # (streams, k)

    engines = ["numba", "numpy"] if NUMBA_AVAILABLE else ["numpy"]
    threads = "-"
    if NUMBA_AVAILABLE:
        import numba

        if args.threads:
            numba.set_num_threads(args.threads)
        cold, first = compile_seconds(table, starts)
        threads = f"{numba.get_num_threads()} ({numba.threading_layer()})"
        print(f"numba kernel: compile {cold:.2f} s cold, first call in this process {first:.2f} s "
              f"(on-disk cache)")
    else:
        print("numba is not installed: numpy engine only")
    print(f"order-{k} character model of {args.corpus.name}: {table.n_contexts} contexts, "
          f"{table.n_entries} entries, V = {table.vocab_size}; {args.streams} streams; "
          f"numba threads {threads}, numpy 1 thread, {available_cores()} cores; best of "
          f"{repeat}\n")
    header = f"{'length':>6} {'tokens':>10} " + "".join(f"{e + ' tok/s':>16}" for e in engines)
    header += f"{'numba/numpy':>13}" if len(engines) == 2 else ""
    print(header)
    print("-" * len(header))
    worst = np.inf
    for length in args.lengths:
        best = dict.fromkeys(engines, np.inf)
        outs = {}
        for _ in range(repeat):
            for engine in engines:
                start = time.perf_counter()
                outs[engine] = generate(table, starts, length, np.random.default_rng(1),
                                        engine=engine)
                best[engine] = min(best[engine], time.perf_counter() - start)
        if len(engines) == 2 and not np.array_equal(outs["numba"], outs["numpy"]):
            raise SystemExit(f"length {length}: the engines' streams differ")
        tokens = args.streams * (length - k)
        rates = {e: tokens / best[e] for e in engines}
        line = f"{length:>6} {tokens:>10} " + "".join(f"{rates[e]:>16.3g}" for e in engines)
        if len(engines) == 2:
            line += f"{rates['numba'] / rates['numpy']:>12.1f}×"
        print(line)
        worst = min(worst, rates[engines[0]])
    if not NUMBA_AVAILABLE:
        print(f"\nthe target (≥ {TARGET:.0e} tokens/s) is numba's: not measured")
        return
    verdict = "met" if worst >= TARGET else "NOT met"
    print(f"\nnumba: at least {worst:.3g} tokens/s; target ≥ {TARGET:.0e} {verdict} "
          f"(both engines wrote identical streams)")


if __name__ == "__main__":
    main()
