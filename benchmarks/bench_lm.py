"""Throughput of the transformer loop: training tokens/s (and MFU on CUDA), and generation
tokens/s of the cached sampler against a nanoGPT-style sampler with the same semantics.

    python benchmarks/bench_lm.py                      # CPU, cpu preset
    python benchmarks/bench_lm.py --device cuda        # CUDA, paper preset
    python benchmarks/bench_lm.py --json out.json

The nanoGPT-style sampler re-runs the whole window (up to block_size tokens) for every new
token, as nanoGPT's ``generate`` does; both samplers draw every token from the same
conditional distribution, so their ratio is the speed-up at equal semantics.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from modelcollapse.lm import get_preset
from modelcollapse.lm.generate import Sampling, draw_categorical, sample_streams, transform_logits
from modelcollapse.lm.gpt import GPT
from modelcollapse.lm.train import Engine, WindowSampler

#: Dense bf16 peak FLOP/s by device name (for MFU); H200 has the H100's compute.
PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12, "L4": 121e12,
             "A10": 125e12, "4090": 165.2e12}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_training(engine: Engine, vocab: int, iters: int) -> dict:
    """Steady-state training tokens/s over ``iters`` iterations (after a compile warm-up)."""
    p, dev = engine.preset, engine.device
    rng = np.random.default_rng(0)
    text = rng.integers(0, vocab, size=(1, 2_000_000), dtype=np.uint8)
    sampler = WindowSampler([text], [1.0], p.block_size, dev)
    warm = engine.warmup(sampler)
    opt = engine.optimizer()
    gen = torch.Generator(device=dev).manual_seed(0)
    params = list(engine.model.parameters())
    engine.model.train()

    def step():
        x, y = sampler.sample(p.batch_size, gen)
        with engine.autocast():
            _, loss = engine.compiled(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, p.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(5):
        step()
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    sync(dev)
    seconds = time.perf_counter() - t0
    tokens = iters * p.batch_size * p.block_size
    out = {"iters": iters, "ms_per_iter": 1e3 * seconds / iters, "tokens_per_second":
           tokens / seconds, "compile_warmup_seconds": warm,
           "flops_per_token": engine.model.flops_per_token()}
    peak = peak_flops(dev)
    if peak:
        out["mfu"] = out["tokens_per_second"] * out["flops_per_token"] / peak
    return out


@torch.no_grad()
def nanogpt_style_sample(model: GPT, batch: int, length: int, generator: torch.Generator,
                         autocast) -> np.ndarray:
    """Reference sampler: every token re-runs its whole (≤ block_size) window."""
    dev = next(model.parameters()).device
    block = model.config.block_size
    idx = torch.randint(0, model.config.vocab_size, (batch, 1), device=dev, generator=generator)
    for _ in range(length - 1):
        with autocast():
            logits = model.next_token_logits(idx[:, -block:])
        nxt = draw_categorical(transform_logits(logits, Sampling()), generator)
        idx = torch.cat([idx, nxt[:, None]], dim=1)
    return idx.cpu().numpy()


def bench_generation(engine: Engine, batch: int, length: int, *, reference: bool) -> dict:
    """Tokens/s of one batch of ``batch`` streams of ``length`` tokens."""
    model, dev = engine.model, engine.device
    amp = engine.autocast if engine.use_autocast else None
    start = np.ones(model.config.vocab_size)
    sample_streams(model, min(batch, 64), length, start_probs=start, seed=1, autocast=amp)
    sync(dev)
    t0 = time.perf_counter()
    sample_streams(model, batch, length, start_probs=start, seed=0, batch=batch, autocast=amp)
    sync(dev)
    fast = batch * length / (time.perf_counter() - t0)
    out = {"batch": batch, "stream_length": length, "tokens_per_second": fast}
    if reference:
        gen = torch.Generator(device=dev).manual_seed(0)
        ctx = engine.autocast
        nanogpt_style_sample(model, min(batch, 64), 4, gen, ctx)
        sync(dev)
        t0 = time.perf_counter()
        nanogpt_style_sample(model, batch, length, gen, ctx)
        sync(dev)
        ref = batch * length / (time.perf_counter() - t0)
        out["nanogpt_style_tokens_per_second"] = ref
        out["speedup"] = fast / ref
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--preset", default=None, help="default: paper on CUDA, cpu on CPU")
    ap.add_argument("--iters", type=int, default=None, help="timed training iterations")
    ap.add_argument("--gen-batch", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    preset = get_preset(args.preset or ("paper" if cuda else "cpu"))
    vocab = 65
    engine = Engine(preset, vocab, device=dev)
    results = {"device": torch.cuda.get_device_name(dev) if cuda else "cpu",
               "torch_threads": torch.get_num_threads(), "preset": preset.name,
               "torch": torch.__version__}
    results["training"] = bench_training(engine, vocab, args.iters or (200 if cuda else 30))
    batch = args.gen_batch or (8192 if cuda else 1000)
    window = preset.block_size + 1
    results["generation_window_streams"] = bench_generation(engine, batch, window,
                                                            reference=True)
    long_batch = 2048 if cuda else 200
    results["generation_long_streams"] = bench_generation(engine, long_batch, 4 * window,
                                                          reference=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
