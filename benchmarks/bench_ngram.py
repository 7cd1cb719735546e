"""n-gram models of real text: ``reproduce fig5-ngram`` end to end, and the BPE scale case.

    python benchmarks/bench_ngram.py            # fig5-ngram as the issue states it, and BPE
    python benchmarks/bench_ngram.py --quick    # fig5-ngram at 10^5 tokens, 4 generations

fig5-ngram: tiny Shakespeare's characters, orders 1, 2, 3, fully synthetic, 50 % and 20 %
synthetic, 10 generations, corpora of 10^6 tokens (the generative loop). Target: under 60 s on
2 CPU cores, the fully synthetic ‖p(10) − p(1)‖₁ above both mixtures with z > 10 (paired over
the 300 contexts). Printed: the wall time, its share of the target, and the z of every order.
BPE (full run only): a 2,000-token byte-level BPE, order 2, both loops, 10 generations; target:
within 10 minutes and 4 GB (peak RSS of this process after it, from getrusage).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

from modelcollapse import ngram

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"
TARGET_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args()
    if not args.corpus.is_file():
        sys.exit(f"bench_ngram: no corpus at {args.corpus} (pass --corpus)")
    sizes = {"generations": 4, "tokens": 100_000} if args.quick else {}
    started = time.perf_counter()
    figure = ngram.run_figure5(corpus=args.corpus, progress=False, **sizes)
    seconds = time.perf_counter() - started
    print(f"fig5-ngram{' (quick)' if args.quick else ''}: {seconds:.1f} s "
          f"({seconds / TARGET_S:.2f} of the {TARGET_S:.0f} s target)")
    for k, row in figure.numbers["orders"].items():
        full = row["l1_at_last"]["fully synthetic"]
        zs = ", ".join(f"{label} z = {d['z']:.1f}" for label, d in row["fully_minus"].items())
        print(f"  k = {k}: fully synthetic ‖p(G) − p(1)‖₁ = {full['mean']:.3f}; minus {zs}")
    if args.quick:
        return
    for loop in ("generative", "fixed"):
        started = time.perf_counter()
        result = ngram.run(corpus=str(args.corpus), tokenizer="bpe", vocab_size=2000, order=2,
                           loop=loop, generations=10, progress=False)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        corpus = result.summary()["corpus"]
        print(f"BPE 2,000, order 2, {loop}: {seconds:.1f} s (target 600 s), peak RSS so far "
              f"{peak:.2f} GB (target 4 GB); p(0) {corpus['contexts']:,} contexts, "
              f"{corpus['types']:,} types")


if __name__ == "__main__":
    main()
