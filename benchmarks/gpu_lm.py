"""One short GPU check of the transformer loop at the paper's settings (~5–6 min on an H100).

Measures, on one CUDA device:

1. compile warm-up, then p(0) at the ``paper`` preset (Table 1, 2000 iterations) on tiny
   Shakespeare: final validation loss, seconds, training tokens/s and MFU;
2. its text (the 1,003,854-token corpus of generation 0, streams of 129 tokens, batch
   8192): sampling tokens/s; then p(1) trained on it — one full generation of the Fig. 5
   loop, from which the 3 × 10 total is extrapolated (29 trainings, 28 corpora);
3. p(0)'s training again under each of ``--compile-modes`` (default: reduce-overhead, which
   replays CUDA graphs): ms per iteration, tokens/s, MFU, final validation loss;
4. generation tokens/s of the cached sampler against a nanoGPT-style sampler (the whole
   window re-run for every token) at batch 2048, with the same semantics; and the cached
   sampler alone at batch 16384.

    python benchmarks/gpu_lm.py --out DIR      # or with $OUT set; needs the lm extra

The corpus is looked up in --corpus, $MODELCOLLAPSE_CORPUS, ./shared/data/,
../shared/data/ and the download cache. Results go to DIR/gpu_lm.json and stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from modelcollapse import lm
from modelcollapse.lm.data import default_cache_dir
from modelcollapse.lm.train import validation_windows

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lm import bench_generation, peak_flops

#: The reference figures of the issue (nanoGPT at Table 1 settings, one H100).
REFERENCE = {"train_tokens_per_second": 1.35e6, "train_ms_per_iter": 24.0,
             "p0_val_loss": 1.46, "generate_tokens_per_second": 58e3}


def find_corpus(given: str | None) -> Path:
    candidates = [given, os.environ.get("MODELCOLLAPSE_CORPUS"),
                  "shared/data/tinyshakespeare.txt", "../shared/data/tinyshakespeare.txt",
                  str(default_cache_dir() / "tinyshakespeare.txt")]
    for c in candidates:
        if c and Path(c).exists():
            return Path(c)
    raise SystemExit("tiny Shakespeare not found: pass --corpus PATH (the machine has no "
                     "network, so it must travel with the working tree).")


def time_training(mode: str, preset, corpus, dev: torch.device, peak: float | None,
                  flops: float) -> dict:
    """Train p(0) once with torch.compile ``mode``: compile seconds, ms per iteration,
    tokens/s, MFU and the final validation loss."""
    engine = lm.Engine(preset, corpus.vocab_size, device=dev, compile_mode=mode)
    sampler = lm.WindowSampler([corpus.train[None]], [1.0], preset.block_size, dev)
    val = torch.from_numpy(validation_windows(corpus.val, preset.block_size, preset.eval_tokens)
                           .astype("int64")).to(dev)
    warmup = engine.warmup(sampler)
    rec = engine.train(sampler, entropy=0, generation=0, val_windows=val)
    del engine, sampler
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return {"compile_warmup_seconds": warmup,
            "train_ms_per_iter": 1e3 * rec.seconds / preset.max_iters,
            "train_tokens_per_second": rec.tokens_per_second,
            "mfu": rec.tokens_per_second * flops / peak if peak else None,
            "p0_final_val_loss": rec.val_loss[-1],
            "speedup_vs_reference": rec.tokens_per_second
            / REFERENCE["train_tokens_per_second"]}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT"))
    ap.add_argument("--corpus", default=None)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--preset", default="paper", help="paper (default); tiny for a smoke test")
    ap.add_argument("--ref-batch", type=int, default=2048, help="batch of the sampler race")
    ap.add_argument("--big-batch", type=int, default=16384, help="largest sampling batch")
    ap.add_argument("--compile-modes", default="reduce-overhead",
                    help="other torch.compile modes to time p(0)'s training with, comma-"
                         "separated ('' for none)")
    args = ap.parse_args(argv)
    if not args.out:
        raise SystemExit("give --out DIR or set $OUT")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(args.device)
    t_start = time.perf_counter()
    corpus = lm.load_corpus(find_corpus(args.corpus))
    preset = lm.get_preset(args.preset)
    cuda = dev.type == "cuda"
    results: dict = {"device": torch.cuda.get_device_name(dev) if cuda else "cpu",
                     "torch": torch.__version__,
                     "preset": preset.to_dict(), "reference_h100_nanogpt": REFERENCE}

    def save() -> None:
        results["script_seconds"] = time.perf_counter() - t_start
        (out / "gpu_lm.json").write_text(json.dumps(results, indent=2) + "\n")

    engine = lm.Engine(preset, corpus.vocab_size, device=dev)
    sampler = lm.WindowSampler([corpus.train[None]], [1.0], preset.block_size, dev)
    results["compile_warmup_seconds"] = engine.warmup(sampler)
    del sampler
    save()

    # p(0), its corpus and p(1): generations 0 and 1 of the Fig. 5 loop, through lm.run.
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = lm.run("fully-synthetic", out=tmp, n_generations=1, preset=preset, seed=0,
                     device=str(dev), corpus=corpus, engine=engine)
        loop_seconds = time.perf_counter() - t0
    g0, g1 = res.generations
    flops = engine.model.flops_per_token()
    peak = peak_flops(dev)
    train = {
        "p0_final_val_loss": g0.final_val_loss,
        "p0_train_seconds": g0.train_seconds,
        "p0_validation_seconds": g0.eval_seconds,
        "train_tokens_per_second": g0.tokens_per_second,
        "train_ms_per_iter": 1e3 * g0.train_seconds / preset.max_iters,
        "flops_per_token": flops,
        "mfu": g0.tokens_per_second * flops / peak if peak else None,
        "p1_final_val_loss": g1.final_val_loss,
        "p1_train_seconds": g1.train_seconds,
        "speedup_vs_reference": g0.tokens_per_second / REFERENCE["train_tokens_per_second"],
        "goal_val_loss_at_most_1.48": g0.final_val_loss <= 1.48,
    }
    corpus0 = g0.corpus
    results["training"] = train
    results["corpus_sampling"] = {k: corpus0[k] for k in ("tokens", "streams", "stream_length",
                                                          "seconds", "tokens_per_second",
                                                          "nll")}
    # One generation = training + validation + its corpus; the rest of the loop (context
    # probabilities, checkpoint files) is in loop_seconds − the parts.
    other = loop_seconds - sum(g.train_seconds + g.eval_seconds for g in res.generations) \
        - corpus0["seconds"]
    one_generation = g1.train_seconds + g1.eval_seconds + corpus0["seconds"] + other / 2
    results["fig5_extrapolation"] = {
        "loop_seconds_generations_0_and_1": loop_seconds,
        "one_generation_seconds": one_generation,
        "trainings": 29, "corpora": 28,
        "estimated_fig5_seconds": (results["compile_warmup_seconds"] + 29 * (
            g1.train_seconds + g1.eval_seconds + other / 2) + 28 * corpus0["seconds"]),
        "note": "3 scenarios x 10 generations share p(0), its corpus and p(1): 29 trainings",
    }
    save()

    # p(0) again under the other torch.compile modes (CUDA graphs cut launch overhead).
    results["training_modes"] = {"default": {k: train[k] for k in (
        "train_ms_per_iter", "train_tokens_per_second", "mfu", "p0_final_val_loss")}}
    for mode in filter(None, args.compile_modes.split(",")):
        results["training_modes"][mode] = time_training(mode, preset, corpus, dev, peak, flops)
        save()

    # Sampler against the nanoGPT-style reference at batch 2048, equal semantics.
    gen = bench_generation(engine, args.ref_batch, preset.block_size + 1, reference=True)
    gen["speedup_vs_reference_58k"] = gen["tokens_per_second"] / \
        REFERENCE["generate_tokens_per_second"]
    results["generation_reference_batch"] = gen
    save()
    big = bench_generation(engine, args.big_batch, preset.block_size + 1, reference=False)
    big["speedup_vs_reference_58k"] = big["tokens_per_second"] / \
        REFERENCE["generate_tokens_per_second"]
    results["generation_big_batch"] = big
    if cuda:
        results["peak_memory_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
    save()
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
