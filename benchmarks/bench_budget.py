"""The synthetic-data budget search (``modelcollapse budget``) against the plain search.

    python benchmarks/bench_budget.py            # vocab 50,000, N = 10^6 (about a minute)
    python benchmarks/bench_budget.py --quick    # vocab 5,000, N = 10^5

Case: p(0) uniform over the whole vocabulary, ε = 0.1, every generation (m → ∞), no
simulation. Ours: ``theory.budget.largest_safe_n`` (the corpus-count table built once per
search, exact chains batched over corpus counts, an interpolating search). Baseline: doubling
then halving on n, calling the public ``theory.expected_l1_to_first`` at every step (which
rebuilds the table and runs one chain per corpus count each time), as the search did before.
Both must land on the same n; the ratio is baseline time over ours. Target: the whole
``budget`` command at vocab 50,000, N = 10^6 under 10 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import time

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from modelcollapse.distributions import uniform_distribution  # noqa: E402
from modelcollapse.theory import expected_l1_to_first  # noqa: E402
from modelcollapse.theory.budget import N_SEARCH_MAX, largest_safe_n  # noqa: E402


def plain_search(p: np.ndarray, N: int, epsilon: float) -> int:
    """Doubling then halving, one public prediction per step."""
    def value(n: int) -> float:
        return expected_l1_to_first(p, n=n, N=N, m=None).value

    lo, hi = 0, 1
    while value(hi) <= epsilon and hi < N_SEARCH_MAX:
        lo, hi = hi, min(hi * 2, N_SEARCH_MAX)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if value(mid) <= epsilon else (lo, mid)
    return lo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    vocab, N = (5_000, 10**5) if args.quick else (50_000, 10**6)
    p = uniform_distribution(vocab, support=vocab)
    started = time.perf_counter()
    ours = largest_safe_n(p, N, 0.1)[0]
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    theirs = plain_search(p, N, 0.1)
    theirs_s = time.perf_counter() - started
    print(f"budget search, uniform p(0) over {vocab:,} tokens, N = {N:,}, ε = 0.1, m → ∞")
    print(f"  ours   n = {ours:,}  {ours_s:7.2f} s")
    print(f"  plain  n = {theirs:,}  {theirs_s:7.2f} s")
    print(f"  ratio  {theirs_s / ours_s:.1f}× faster, same n: {ours == theirs}")


if __name__ == "__main__":
    main()
