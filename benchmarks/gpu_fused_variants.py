"""Candidate versions of the fused fully synthetic step, timed against the one in use.

    python benchmarks/gpu_fused_variants.py [--out DIR]            # on a CUDA device
    TRITON_INTERPRET=1 python benchmarks/gpu_fused_variants.py --device cpu --rows 6
                                                                   # equality check only

The kernel in ``modelcollapse.torch_backend.fused`` is bound by instruction issue (0.8 ms per
generation at 10^5 rows × n = 100 on an H200, its programs doing ~2,000 instructions per thread),
and about half of those instructions redraw tokens: to compare the n tokens 32 columns at a time
it draws each chunk's tokens again (Philox, a 64-bit modulo, a gather) rather than moving them
between threads. The candidate here takes each chunk out of the registers instead (a reshape and
a masked sum over the chunk axis), with the same random stream, so it must give the same tokens
and the same metrics (to rounding) as the kernel in use; the script checks that before timing.
Each kernel is also timed at several ``num_warps``. Writes DIR/gpu_fused_variants.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import triton
import triton.language as tl

from modelcollapse.torch_backend import fused

ROWS, N, K = 100_000, 100, 600
NAMES = ("sigma", "l1_to_first", "collapsed")


@triton.jit
def _register_chunks_kernel(prev_ptr, next_ptr, row_id_ptr, first_ptr, values_ptr, dirac_ptr,
                            seed, n, rows, token_stride, first_stride,
                            ROW_STRIDE: tl.constexpr, BLOCK: tl.constexpr,
                            CHUNK: tl.constexpr):
    """σ and ‖p − p(1)‖₁ as the kernel in use computes them, chunks taken from registers."""
    row = tl.program_id(0).to(tl.int64)
    row_id = tl.load(row_id_ptr + row)
    j = tl.arange(0, BLOCK)
    live = j < n
    r0, r1, _r2, _r3 = tl.randint4x(seed, row_id * ROW_STRIDE + j)
    word = (r0.to(tl.uint64) << 32) | r1.to(tl.uint64)
    position = (word % n.to(tl.uint64)).to(tl.int64)
    x = tl.load(prev_ptr + row * token_stride + position, mask=live, other=-1)
    tl.store(next_ptr + row * token_stride + j, x, mask=live)
    x32 = x.to(tl.int32)
    # Dead lanes hold −1 and never match a live token; chunk c is row c of this table.
    table = tl.reshape(tl.where(live, x32, -1), [BLOCK // CHUNK, CHUNK])
    chunk_index = tl.arange(0, BLOCK // CHUNK)
    g = tl.zeros([BLOCK], dtype=tl.int32)
    for c in tl.static_range(0, BLOCK // CHUNK):
        xc = tl.sum(tl.where(chunk_index[:, None] == c, table, 0), axis=0)
        same = (x32[:, None] == xc[None, :]) & (xc[None, :] >= 0)
        g += tl.sum(same.to(tl.int32), axis=1)
    g = tl.where(live, g, 1)
    top = tl.max(tl.where(live, g, 0), axis=0)
    first_token = tl.sum(tl.where(j == 0, x, 0), axis=0)
    tl.store(dirac_ptr + row, tl.where(top == n, first_token, -1))
    nf = n.to(tl.float64)
    g_sum = tl.sum(tl.where(live, g, 0).to(tl.int64), axis=0)
    tl.store(values_ptr + row, g_sum.to(tl.float64) / (nf * nf))
    gf = g.to(tl.float64)
    q1 = tl.load(first_ptr + row * first_stride + x, mask=live, other=0.0)
    terms = tl.where(live, (tl.abs(gf / nf - q1) - q1) / gf, 0.0)
    tl.store(values_ptr + 2 * rows + row, tl.maximum(tl.sum(terms, axis=0) + 1.0, 0.0))


def launch_in_use(tokens, row_ids, seed, first, truth, out, values, dirac, num_warps):
    rows, n = tokens.shape
    block = max(16, 1 << (n - 1).bit_length())
    fused._step_kernel[(rows,)](
        tokens, out, row_ids, first, truth, values, dirac, seed, n, rows, tokens.stride(0),
        first.stride(0), 0, SIGMA=True, SUP=False, L1_FIRST=True, L1_TRUE=False,
        ENTROPY=False, SUPPORT=False, ROW_STRIDE=fused.ROW_STRIDE, BLOCK=block,
        CHUNK=min(block, 32), num_warps=num_warps)


def launch_register_chunks(tokens, row_ids, seed, first, truth, out, values, dirac, num_warps):
    rows, n = tokens.shape
    block = max(16, 1 << (n - 1).bit_length())
    _register_chunks_kernel[(rows,)](
        tokens, out, row_ids, first, values, dirac, seed, n, rows, tokens.stride(0),
        first.stride(0), ROW_STRIDE=fused.ROW_STRIDE, BLOCK=block, CHUNK=min(block, 32),
        num_warps=num_warps)


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--rows", type=int, default=ROWS)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    dev = torch.device(args.device)
    out_dir = args.out or Path(os.environ.get("OUT") or ".")
    out_dir.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, K, (args.rows, N), generator=gen).to(dev)
    tokens[: max(1, args.rows // 50)] = 7  # some collapsed rows
    first = torch.rand(args.rows, K, dtype=torch.float64, generator=gen)
    first = (first / first.sum(dim=1, keepdim=True)).to(dev)
    truth = first[:1].clone()
    row_ids = torch.arange(args.rows, device=dev)
    seed = fused.generation_seed(1, 2)
    report: dict = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                    "triton": triton.__version__, "rows": args.rows, "n": N, "k": K,
                    "checks": {}, "ms_per_launch": {}}

    def buffers():
        return (torch.empty_like(tokens),
                torch.zeros((len(fused.METRICS), args.rows), dtype=torch.float64, device=dev),
                torch.empty(args.rows, dtype=torch.int64, device=dev))

    def run(launch, warps):
        out, values, dirac = buffers()
        launch(tokens, row_ids, seed, first, truth, out, values, dirac, warps)
        return out, values, dirac

    ref_tokens, ref_values, ref_dirac = run(launch_in_use, 4)
    for name, launch in (("in use", launch_in_use), ("register chunks", launch_register_chunks)):
        for warps in (1, 2, 4, 8):
            label = f"{name}, num_warps={warps}"
            try:
                got_tokens, got_values, got_dirac = run(launch, warps)
                same = (torch.equal(got_tokens, ref_tokens) and torch.equal(got_dirac, ref_dirac)
                        and torch.allclose(got_values[[0, 2]], ref_values[[0, 2]], rtol=0,
                                           atol=1e-12))
                report["checks"][label] = "equal" if same else "DIFFERENT"
                if dev.type == "cuda" and same:
                    out, values, dirac = buffers()
                    start, stop = (torch.cuda.Event(enable_timing=True) for _ in range(2))
                    start.record()
                    for _ in range(args.repeats):
                        launch(tokens, row_ids, seed, first, truth, out, values, dirac, warps)
                    stop.record()
                    torch.cuda.synchronize()
                    report["ms_per_launch"][label] = start.elapsed_time(stop) / args.repeats
            except Exception as exc:  # a candidate that fails to compile must not stop the rest
                report["checks"][label] = f"FAILED: {type(exc).__name__}: {exc}"[:300]
            print(label, report["checks"][label], report["ms_per_launch"].get(label, ""),
                  flush=True)
    path = out_dir / "gpu_fused_variants.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"{time.perf_counter() - t0:.1f} s")
