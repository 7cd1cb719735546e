"""The fully synthetic generation step (§2.2) as one Triton kernel, for CUDA.

From m = 2 on, model m − 1 of the fully synthetic loop is the empirical distribution of its
n training tokens x (eq. 2), so model m's tokens are x'_j = x_{I_j} with I_j uniform on
{0, …, n − 1}, and its metrics follow from the multiplicities g_j = #{i : x'_i = x'_j}
(the sparse route of :mod:`modelcollapse.torch_backend.metrics`). The generic route does
this in some thirty tensor operations, each a pass over rows × n values in device memory;
here one program per row draws x', counts by comparing all pairs (n ≤ :data:`MAX_N`, so at
most 65,536 comparisons, in registers) and writes x', the metrics and the Dirac token.

Random numbers: Philox4x32-10 (Triton's ``randint4x``) with key = the 64-bit seed of
``SeedSequence(entropy, spawn_key=(1, m))`` and counter = global row · 256 + j; two of its
32-bit words make w, and I_j = w mod n (bias below n / 2^64). A draw depends only on
(entropy, m, run, context, j): not on chunking, nor on which runs have stopped. This is the
torch backend's CUDA stream for the steps it covers; the CPU and the generic route draw
from per-block generators (:mod:`.streams`) and agree with it in distribution.

Without Triton (or on a CPU) the generic route runs. Triton's interpreter
(``TRITON_INTERPRET=1``) runs the kernel on CPU tensors, which is how the tests check it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from ..scenarios import FullySynthetic, Scenario

try:  # Triton ships with CUDA builds of PyTorch; CPU builds run the generic route.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the environment
    triton = None

__all__ = ["MAX_N", "METRICS", "available", "fused_step", "generation_seed", "use_fused"]

#: Largest n the kernel takes: its pairwise count holds next_pow2(n)² comparisons.
MAX_N = 256
#: Metrics the kernel computes, in the order of its output rows.
METRICS = ("sigma", "sup", "l1_to_first", "l1_to_true", "entropy", "support")
#: Columns of the pairwise count compared at once (BLOCK × CHUNK int32 in registers).
_CHUNK = 32
#: Spawn-key stream of the per-generation Philox keys (stream 0 is the run blocks').
_KEY_STREAM = 1
#: Counter stride per row: draw j < MAX_N of a row has counter row · ROW_STRIDE + j.
ROW_STRIDE = 256


def interpreted() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (set before Triton is imported)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def available(device: torch.device) -> bool:
    """Whether the kernel can run on ``device``: Triton present, and CUDA (or the
    interpreter, for CPU tensors)."""
    if triton is None:
        return False
    return device.type == "cuda" or (device.type == "cpu" and interpreted())


def use_fused(fused: bool | None, scenario: Scenario, names: Sequence[str], use_counts: bool,
              device: torch.device) -> bool:
    """Resolve the ``fused`` argument of the torch loop: None picks the kernel wherever it
    applies and runs natively (CUDA); True insists on it; False never uses it."""
    applies = (type(scenario) is FullySynthetic and not use_counts
               and scenario.n <= MAX_N and set(names) <= {*METRICS, "collapsed"})
    if fused is None:
        return applies and device.type == "cuda" and available(device)
    if not fused:
        return False
    if not applies:
        raise ValueError(f"The 'fused' parameter is True, but the fused kernel covers the fully "
                         f"synthetic loop with n ≤ {MAX_N} in the tokens representation only; "
                         f"got {scenario.describe()}"
                         + (" as counts." if use_counts else "."))
    if not available(device):
        raise ValueError(f"The 'fused' parameter is True, but the fused kernel needs Triton and "
                         f"a CUDA device (or TRITON_INTERPRET=1 on a CPU); device is "
                         f"{device.type!r}, Triton {'absent' if triton is None else 'present'}.")
    return True


def generation_seed(entropy: int, m: int) -> int:
    """The Philox key of generation m (63 bits, so Triton passes it as a signed integer)."""
    seq = np.random.SeedSequence(entropy, spawn_key=(_KEY_STREAM, m))
    return int(seq.generate_state(1, np.uint64)[0]) >> 1


def fused_step(tokens: torch.Tensor, row_ids: torch.Tensor, seed: int, names: Sequence[str],
               first: torch.Tensor | None, truth_rows: torch.Tensor
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """One generation of the fully synthetic loop for every row.

    ``tokens`` (rows, n) int64 are model m − 1's training tokens; ``row_ids`` (rows,) int64
    the global row of each; ``first`` (rows, k) float64 p(1) (needed for l1_to_first);
    ``truth_rows`` p(0) as :class:`.metrics.Truth` holds it, float64 (1, k) shared by every
    row or (rows, k). Returns model m's tokens (rows, n), its metrics (float64 per row,
    with ``collapsed``) and the Dirac token of collapsed rows (−1 elsewhere): the values
    :func:`.metrics.sparse_metrics` gives for those tokens.
    """
    rows, n = tokens.shape
    if n > MAX_N:
        raise ValueError(f"The fused kernel takes n ≤ {MAX_N} tokens per model; got {n}.")
    tokens = tokens.contiguous()
    out_tokens = torch.empty_like(tokens)
    values = torch.empty((len(METRICS), rows), dtype=torch.float64, device=tokens.device)
    dirac = torch.empty(rows, dtype=torch.int64, device=tokens.device)
    want = {name: name in names for name in METRICS}
    if want["l1_to_first"] and first is None:
        raise ValueError("l1_to_first needs p(1).")
    first_t = first if first is not None else truth_rows  # any float64 tensor when unused
    block = max(16, 1 << (n - 1).bit_length())
    if rows:
        _step_kernel[(rows,)](
            tokens, out_tokens, row_ids, first_t, truth_rows, values, dirac,
            seed, n, rows, tokens.stride(0), first_t.stride(0),
            truth_rows.stride(0) if truth_rows.shape[0] > 1 else 0,
            SIGMA=want["sigma"], SUP=want["sup"], L1_FIRST=want["l1_to_first"],
            L1_TRUE=want["l1_to_true"], ENTROPY=want["entropy"], SUPPORT=want["support"],
            ROW_STRIDE=ROW_STRIDE, BLOCK=block, CHUNK=min(block, _CHUNK), num_warps=4)
    metrics = {name: values[i] for i, name in enumerate(METRICS) if want[name]}
    metrics["collapsed"] = dirac >= 0
    return out_tokens, metrics, dirac


if triton is not None:

    @triton.jit
    def _l1_terms(p, q, weight, mask):
        """(|p_j − q_j| − q_j) / g_j where the lane is live, else 0 (see metrics.py)."""
        return tl.where(mask, (tl.abs(p - q) - q) * weight, 0.0)

    @triton.jit
    def _draw(prev_ptr, row, row_id, seed, n, token_stride, j, live,
              ROW_STRIDE: tl.constexpr):
        """Tokens x'_j = x_{I_j} of one row: I_j = w mod n, w from two Philox words of
        counter (global row, j). The same j always gives the same token."""
        r0, r1, _r2, _r3 = tl.randint4x(seed, row_id * ROW_STRIDE + j)
        word = (r0.to(tl.uint64) << 32) | r1.to(tl.uint64)
        position = (word % n.to(tl.uint64)).to(tl.int64)
        return tl.load(prev_ptr + row * token_stride + position, mask=live, other=-1)

    # Sizes and the seed change between calls: no recompiling for their values.
    @triton.jit(do_not_specialize=["seed", "n", "rows", "token_stride", "first_stride",
                                   "truth_stride"])
    def _step_kernel(prev_ptr, next_ptr, row_id_ptr, first_ptr, truth_ptr,
                     values_ptr, dirac_ptr, seed, n, rows, token_stride, first_stride,
                     truth_stride,
                     SIGMA: tl.constexpr, SUP: tl.constexpr, L1_FIRST: tl.constexpr,
                     L1_TRUE: tl.constexpr, ENTROPY: tl.constexpr, SUPPORT: tl.constexpr,
                     ROW_STRIDE: tl.constexpr, BLOCK: tl.constexpr, CHUNK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        row_id = tl.load(row_id_ptr + row)
        j = tl.arange(0, BLOCK)
        live = j < n
        x = _draw(prev_ptr, row, row_id, seed, n, token_stride, j, live, ROW_STRIDE)
        tl.store(next_ptr + row * token_stride + j, x, mask=live)
        # g_j: how many of the n new tokens equal token j, compared CHUNK columns at a time
        # (the whole BLOCK × BLOCK table would not fit in registers); a chunk's tokens are
        # drawn again, identically, rather than moved between threads.
        x32 = x.to(tl.int32)
        g = tl.zeros([BLOCK], dtype=tl.int32)
        for c in tl.static_range(0, BLOCK, CHUNK):
            jc = c + tl.arange(0, CHUNK)
            live_c = jc < n
            xc = _draw(prev_ptr, row, row_id, seed, n, token_stride, jc, live_c,
                       ROW_STRIDE).to(tl.int32)
            same = (x32[:, None] == xc[None, :]) & live_c[None, :]
            g += tl.sum(same.to(tl.int32), axis=1)
        g = tl.where(live, g, 1)
        top = tl.max(tl.where(live, g, 0), axis=0)
        first_token = tl.sum(tl.where(j == 0, x, 0), axis=0)
        tl.store(dirac_ptr + row, tl.where(top == n, first_token, -1))
        nf = n.to(tl.float64)
        out = values_ptr + row
        if SIGMA:
            g_sum = tl.sum(tl.where(live, g, 0).to(tl.int64), axis=0)
            tl.store(out, g_sum.to(tl.float64) / (nf * nf))
        if SUP:
            tl.store(out + rows, top.to(tl.float64) / nf)
        gf = g.to(tl.float64)
        weight = 1.0 / gf
        p = gf / nf
        if L1_FIRST:
            q1 = tl.load(first_ptr + row * first_stride + x, mask=live, other=0.0)
            l1 = tl.sum(_l1_terms(p, q1, weight, live), axis=0) + 1.0
            tl.store(out + 2 * rows, tl.maximum(l1, 0.0))
        if L1_TRUE:
            q0 = tl.load(truth_ptr + row * truth_stride + x, mask=live, other=0.0)
            l1 = tl.sum(_l1_terms(p, q0, weight, live), axis=0) + 1.0
            tl.store(out + 3 * rows, tl.maximum(l1, 0.0))
        if ENTROPY:
            log_g = tl.sum(tl.where(live, tl.log(gf), 0.0), axis=0)
            tl.store(out + 4 * rows, tl.log(nf) - log_g / nf)
        if SUPPORT:
            support = tl.sum(tl.where(live, weight, 0.0), axis=0)
            tl.store(out + 5 * rows, tl.floor(support + 0.5))
