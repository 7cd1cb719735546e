"""Spans of the fully and partially synthetic loops (§2.2), several generations per Triton
kernel, for CUDA.

From m = 2 on, model m − 1 is the empirical distribution of its training tokens x (eq. 2),
|x| = s. In the fully synthetic loop model m trains on n draws from it, x'_j = x_{I_j} with
I_j uniform on {0, …, s − 1}; in the partially synthetic loop on the same fixed real corpus
of N tokens plus n such draws (s = N at m = 2, N + n after). Model m's metrics follow from
the multiplicities g_j = #{i : x'_i = x'_j} over its n + N tokens (the sparse route of
:mod:`modelcollapse.torch_backend.metrics`). The generic route does each generation in some
thirty tensor operations, each a pass over rows × n values in device memory, launched from
the host. Here one program per row runs a whole span of generations: each draws the n
tokens, writes them and the corpus after them (held in registers for the span), counts by
comparing all pairs (n + N ≤ :data:`MAX_N`, so at most 65,536 comparisons, CHUNK columns at
a time, the columns read back from the tokens just written) and writes the metrics; the next
generation draws from those tokens. A row's generations depend on nothing else, so the host
sees the device once per span, not once per generation.

Random numbers: Philox4x32-10 (Triton's ``randint4x``) with key = the 64-bit seed of
``SeedSequence(entropy, spawn_key=(1, m))`` for generation m and counter = global row · 256
+ ⌊j / 2⌋; two of its four 32-bit words make the 64-bit w of draw j, and I_j = ⌊w · s / 2^64⌋
(a multiply and shifts rather than a 64-bit division; bias below s / 2^64). A draw depends
only on (entropy, m, run, context, j): not on chunking, on the spans, nor on which runs have
stopped.
This is the torch backend's CUDA stream for the generations it covers; the CPU and the
generic route draw from per-block generators (:mod:`.streams`) and agree with it in
distribution.

Without Triton (or on a CPU) the generic route runs. Triton's interpreter
(``TRITON_INTERPRET=1``) runs the kernel on CPU tensors, which is how the tests check it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from ...scenarios import Scenario

try:  # Triton ships with CUDA builds of PyTorch; CPU builds run the generic route.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the environment
    triton = None

__all__ = ["MAX_N", "METRICS", "Span", "available", "fused_steps", "generation_seed",
           "model_size", "use_fused"]

#: Largest model (n + N tokens) the kernel takes: its pairwise count holds next_pow2(n + N)²
#: comparisons.
MAX_N = 256
#: Metrics the kernel computes, in the order of its output rows.
METRICS = ("sigma", "sup", "l1_to_first", "l1_to_true", "entropy", "support")
#: Columns of the pairwise count compared per pass of its loop (BLOCK × CHUNK int32 in
#: registers); the loop stops at the first multiple of CHUNK past n.
_CHUNK = 8
#: Warps per program (one program per row). One warp issues the fewest instructions per row
#: (each thread holds BLOCK / 32 tokens, and each column read serves all of them).
NUM_WARPS = 1
#: Spawn-key stream of the per-generation Philox keys (stream 0 is the run blocks').
_KEY_STREAM = 1
#: Counter stride per row: the pair of draws 2i, 2i + 1 of a row has counter row · ROW_STRIDE
#: + i, i < MAX_N / 2.
ROW_STRIDE = 256


class Span(NamedTuple):
    """What :func:`fused_steps` returns for rows × steps generations."""

    tokens: torch.Tensor                # (rows, n) int64: the model of the last step
    metrics: dict[str, torch.Tensor]    # name → (rows, steps); float64, "collapsed" bool
    dirac: torch.Tensor                 # (rows,) int64: the last step's Dirac token, else −1
    onset: torch.Tensor                 # (rows,) int32: the first step that collapsed, else −1


def interpreted() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (set before Triton is imported)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def available(device: torch.device) -> bool:
    """Whether the kernel can run on ``device``: Triton present, and CUDA (or the
    interpreter, for CPU tensors)."""
    if triton is None:
        return False
    return device.type == "cuda" or (device.type == "cpu" and interpreted())


def model_size(scenario: Scenario) -> int | None:
    """Tokens per model the kernel would hold for ``scenario`` (n, or n + N), None when it
    does not run that scenario (its models are not a fixed corpus plus fresh draws of the
    model before: see :class:`modelcollapse.scenarios.FixedStep`)."""
    step = scenario.fixed_step
    return None if step is None else step.draws + step.corpus


def use_fused(fused: bool | None, scenario: Scenario, names: Sequence[str], use_counts: bool,
              device: torch.device) -> bool:
    """Resolve the ``fused`` argument of the torch loop: None picks the kernel wherever it
    applies and runs natively (CUDA); True insists on it; False never uses it."""
    size = model_size(scenario)
    applies = (size is not None and size <= MAX_N and not use_counts
               and set(names) <= {*METRICS, "collapsed"})
    if fused is None:
        return applies and device.type == "cuda" and available(device)
    if not fused:
        return False
    if not applies:
        raise ValueError(f"The 'fused' parameter is True, but the fused kernel covers the fully "
                         f"and partially synthetic loops with models of at most {MAX_N} "
                         f"tokens (n, or n + N), in the tokens representation; got "
                         f"{scenario.describe()}" + (" as counts." if use_counts else "."))
    if not available(device):
        raise ValueError(f"The 'fused' parameter is True, but the fused kernel needs Triton and "
                         f"a CUDA device (or TRITON_INTERPRET=1 on a CPU); device is "
                         f"{device.type!r}, Triton {'absent' if triton is None else 'present'}.")
    return True


def generation_seed(entropy: int, m: int) -> int:
    """The Philox key of generation m (63 bits, so Triton passes it as a signed integer)."""
    seq = np.random.SeedSequence(entropy, spawn_key=(_KEY_STREAM, m))
    return int(seq.generate_state(1, np.uint64)[0]) >> 1


def fused_steps(tokens: torch.Tensor, row_ids: torch.Tensor,
                seeds: Sequence[int] | torch.Tensor, names: Sequence[str],
                first: torch.Tensor | None, truth_rows: torch.Tensor, *,
                corpus: torch.Tensor | None = None, draws: int | None = None,
                num_warps: int = NUM_WARPS) -> Span:
    """``len(seeds)`` generations for every row, in one launch: each model trains on
    ``draws`` tokens of the one before (all of ``tokens``' width when not given), after the
    fixed ``corpus`` (rows, N) int64 when given (the partially synthetic loop).

    ``tokens`` (rows, s) int64 are the training tokens of the model before the span;
    ``row_ids`` (rows,) int64 the global row of each; ``seeds`` the Philox key of each
    generation (:func:`generation_seed`), best as an int64 tensor on the device already (a
    list is copied there, which waits for the device); ``first`` (rows, k) float64 p(1) (needed for
    l1_to_first); ``truth_rows`` p(0) as :class:`.metrics.Truth` holds it, float64 (1, k)
    shared by every row or (rows, k). Each step's metrics are the values
    :func:`.metrics.sparse_metrics` gives for that step's tokens, the last step's tokens the
    draws followed by the corpus.
    """
    rows, previous = tokens.shape
    draws = previous if draws is None else draws
    real = 0 if corpus is None else corpus.shape[1]
    size = draws + real
    if max(size, previous) > MAX_N:
        raise ValueError(f"The fused kernel takes models of at most {MAX_N} tokens; got "
                         f"{draws} draws + {real} real tokens from a model of {previous}.")
    if draws < 1 or previous < 1:
        raise ValueError(f"A model needs at least one draw from a model of at least one "
                         f"token; got {draws} draws from {previous}.")
    if len(seeds) == 0:
        raise ValueError("A span needs at least one generation (one seed).")
    want = {name: name in names for name in METRICS}
    if want["l1_to_first"] and first is None:
        raise ValueError("l1_to_first needs p(1).")
    dev, steps = tokens.device, len(seeds)
    block = max(16, 1 << (max(size, previous) - 1).bit_length())
    # Step s reads buffer s % 2 of the pair and writes the other, BLOCK int32 lanes per row
    # (the draws, the corpus, then −1 in the lanes past them), so that the count reads whole
    # aligned chunks.
    pair = torch.empty((2, rows, block), dtype=torch.int32, device=dev)
    pair[0, :, :previous].copy_(tokens)
    values = torch.empty((len(METRICS), rows, steps), dtype=torch.float64, device=dev)
    collapsed = torch.empty((rows, steps), dtype=torch.uint8, device=dev)
    dirac = torch.empty(rows, dtype=torch.int64, device=dev)
    onset = torch.empty(rows, dtype=torch.int32, device=dev)
    seeds_t = torch.as_tensor(seeds, dtype=torch.int64, device=dev)
    first_t = first if first is not None else truth_rows  # any float64 tensor when unused
    corpus_t = corpus if corpus is not None else tokens  # any int64 tensor when unused
    if rows:
        _span_kernel[(rows,)](
            pair, row_ids, seeds_t, corpus_t, first_t, truth_rows, values, collapsed, dirac,
            onset, draws, size, previous, rows, steps, corpus_t.stride(0), first_t.stride(0),
            truth_rows.stride(0) if truth_rows.shape[0] > 1 else 0,
            SIGMA=want["sigma"], SUP=want["sup"], L1_FIRST=want["l1_to_first"],
            L1_TRUE=want["l1_to_true"], ENTROPY=want["entropy"], SUPPORT=want["support"],
            ROW_STRIDE=ROW_STRIDE, BLOCK=block, CHUNK=min(block, _CHUNK),
            num_warps=num_warps)
    metrics = {name: values[i] for i, name in enumerate(METRICS) if want[name]}
    metrics["collapsed"] = collapsed.view(torch.bool)
    return Span(pair[steps % 2, :, :size].to(torch.int64), metrics, dirac, onset)


if triton is not None:

    @triton.jit
    def _l1_terms(p, q, weight, mask):
        """(|p_j − q_j| − q_j) / g_j where the lane is live, else 0 (see metrics.py)."""
        return tl.where(mask, (tl.abs(p - q) - q) * weight, 0.0)

    @triton.jit
    def _scale(hi, lo, n64):
        """⌊w · n / 2^64⌋ for w = hi · 2^32 + lo: exactly (hi · n + ⌊lo · n / 2^32⌋) ≫ 32, as
        n < 2^32."""
        return ((hi.to(tl.uint64) * n64 + ((lo.to(tl.uint64) * n64) >> 32)) >> 32).to(tl.int32)

    @triton.jit
    def _positions(seed, row_id, n, ROW_STRIDE: tl.constexpr, BLOCK: tl.constexpr):
        """I_j uniform on {0, …, n − 1} for j < BLOCK: one Philox call per pair of draws,
        counter (global row, j // 2); its words 0 and 1 make draw 2i, words 2 and 3 draw
        2i + 1."""
        i = tl.arange(0, BLOCK // 2)
        r0, r1, r2, r3 = tl.randint4x(seed, row_id * ROW_STRIDE + i)
        n64 = n.to(tl.uint64)
        pairs = tl.join(_scale(r0, r1, n64), _scale(r2, r3, n64))
        return tl.reshape(pairs, [BLOCK])

    # Sizes change between calls: no recompiling for their values.
    @triton.jit(do_not_specialize=["draws", "size", "previous", "rows", "steps",
                                   "corpus_stride", "first_stride", "truth_stride"])
    def _span_kernel(pair_ptr, row_id_ptr, seeds_ptr, corpus_ptr, first_ptr, truth_ptr,
                     values_ptr, collapsed_ptr, dirac_ptr, onset_ptr, draws, size, previous,
                     rows, steps, corpus_stride, first_stride, truth_stride,
                     SIGMA: tl.constexpr, SUP: tl.constexpr, L1_FIRST: tl.constexpr,
                     L1_TRUE: tl.constexpr, ENTROPY: tl.constexpr, SUPPORT: tl.constexpr,
                     ROW_STRIDE: tl.constexpr, BLOCK: tl.constexpr, CHUNK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        row_id = tl.load(row_id_ptr + row)
        j = tl.arange(0, BLOCK)
        drawn = j < draws
        live = j < size
        # Lanes draws … size − 1 hold the fixed corpus in every model; −1 past size.
        real = tl.load(corpus_ptr + row * corpus_stride + (j - draws), mask=live & ~drawn,
                       other=-1).to(tl.int32)
        nf = size.to(tl.float64)
        inv_n = 1.0 / nf
        half = rows.to(tl.int64) * BLOCK  # elements per buffer of the pair
        out = values_ptr + row * steps
        plane = rows.to(tl.int64) * steps  # elements per metric in the values
        onset = tl.full([], -1, tl.int32)
        source_size = previous
        for s in range(steps):
            src = pair_ptr + (s % 2) * half + row * BLOCK
            dst = pair_ptr + ((s + 1) % 2) * half + row * BLOCK
            seed = tl.load(seeds_ptr + s)
            x = tl.load(src + _positions(seed, row_id, source_size, ROW_STRIDE, BLOCK),
                        mask=drawn, other=-1)
            x = tl.where(drawn, x, real)
            tl.store(dst + j, x)
            source_size = size
            # The chunks below read back what every thread of the program just wrote; the
            # barrier also orders this step's reads of src before the next step writes it.
            tl.debug_barrier()
            # g_j, CHUNK columns at a time up to size; a lane past size holds −1 and matches
            # no token (the lanes past size get g = 1 below, whatever they matched).
            g = tl.zeros([BLOCK], dtype=tl.int32)
            for c in range(0, size, CHUNK):
                xc = tl.load(dst + c + tl.arange(0, CHUNK))
                g += tl.sum((xc[:, None] == x[None, :]).to(tl.int32), axis=0)
            g = tl.where(live, g, 1)
            top = tl.max(tl.where(live, g, 0), axis=0)
            first_token = tl.sum(tl.where(j == 0, x, 0), axis=0)
            is_dirac = top == size
            tl.store(dirac_ptr + row, tl.where(is_dirac, first_token, -1))
            tl.store(collapsed_ptr + row * steps + s, is_dirac.to(tl.uint8))
            onset = tl.where(is_dirac & (onset < 0), s, onset)
            if SIGMA:
                g_sum = tl.sum(tl.where(live, g, 0).to(tl.int64), axis=0)
                tl.store(out + s, g_sum.to(tl.float64) / (nf * nf))
            if SUP:
                tl.store(out + plane + s, top.to(tl.float64) / nf)
            gf = g.to(tl.float64)
            weight = 1.0 / gf
            p = gf * inv_n
            if L1_FIRST:
                q1 = tl.load(first_ptr + row * first_stride + x, mask=live, other=0.0)
                l1 = tl.sum(_l1_terms(p, q1, weight, live), axis=0) + 1.0
                tl.store(out + 2 * plane + s, tl.maximum(l1, 0.0))
            if L1_TRUE:
                q0 = tl.load(truth_ptr + row * truth_stride + x, mask=live, other=0.0)
                l1 = tl.sum(_l1_terms(p, q0, weight, live), axis=0) + 1.0
                tl.store(out + 3 * plane + s, tl.maximum(l1, 0.0))
            if ENTROPY:
                log_g = tl.sum(tl.where(live, tl.log(gf), 0.0), axis=0)
                tl.store(out + 4 * plane + s, tl.log(nf) - log_g / nf)
            if SUPPORT:
                support = tl.sum(tl.where(live, weight, 0.0), axis=0)
                tl.store(out + 5 * plane + s, tl.floor(support + 0.5))
        tl.store(onset_ptr + row, onset)
