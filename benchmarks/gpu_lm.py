"""One short GPU check of the transformer loop at the paper's settings (~2.5 min on an H200).

Measures, on one CUDA device:

1. compile warm-up (torch.compile mode ``--mode``, default reduce-overhead, which replays
   CUDA graphs), then a torch.profiler pass over 30 training iterations of that engine
   (done exactly as ``Engine.train`` does them, after 5 untimed
   ones): synchronised wall ms per iteration (without the profiler, before and after it, and
   under it), device (kernel) ms per iteration, the share of the wall the device is busy
   (low: the GPU waits for the CPU's launches), kernels per iteration, and the 25 kernels
   with the most self device time (on a CPU: ops and self CPU time); then p(0) at the
   ``paper`` preset (Table 1, 2000 iterations) on tiny Shakespeare: final validation loss,
   seconds, training tokens/s and MFU;
2. its text (the 1,003,854-token corpus of generation 0, streams of 129 tokens, batch
   8192): sampling tokens/s; then p(1) trained on it — one full generation of the Fig. 5
   loop, from which the 3 × 10 total is extrapolated (29 trainings, 28 corpora);
3. p(0)'s training again under each of ``--compile-modes`` (default: the "default" mode,
   which launches every kernel from the host): ms per iteration, tokens/s, MFU, final
   validation loss; the first of these modes also gets the profiler pass of step 1
   (``training_profile_modes``);
4. generation tokens/s of the cached sampler against a nanoGPT-style sampler (the whole
   window re-run for every token) at batch 2048, with the same semantics; and the cached
   sampler alone at batch 16384.

    python benchmarks/gpu_lm.py --out DIR      # or with $OUT set; needs the lm extra

The corpus is looked up in --corpus, $MODELCOLLAPSE_CORPUS, ./shared/data/,
../shared/data/ and the download cache. Results go to DIR/gpu_lm.json (rewritten after every
step) and stdout. The profiler passes and each extra compile mode run in their own guard: a
failure is recorded under "errors" and the rest goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from modelcollapse import lm
from modelcollapse.corpus import default_cache_dir
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


def _train_steps(engine: lm.Engine, sampler, opt, params, gen: torch.Generator,
                 loss_sum: torch.Tensor, first: int, n: int) -> None:
    """Iterations first … first + n − 1, each the step ``Engine.train`` takes (without its
    validation points); the schedule wraps around after max_iters."""
    for it in range(first, first + n):
        loss_sum += engine.train_step(opt, params, sampler, gen, it % engine.preset.max_iters
                                      ).float()


def _busy_us(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of (start, end) intervals (overlapping streams count once)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def profile_training(engine: lm.Engine, sampler, iters: int = 30, warmup: int = 5,
                     top: int = 25) -> dict:
    """Where a training iteration's time goes, on an already compiled and warmed Engine.

    ``warmup`` untimed iterations, then ``iters`` timed ones without the profiler, ``iters``
    under torch.profiler (CPU and, on CUDA, CUDA activities) and ``iters`` more without it
    (a slower last pass means the profiler left overhead behind). On CUDA the kernels carry
    the device time: total and busy (union of kernel intervals) ms per iteration, busy /
    wall, kernels per iteration and the ``top`` kernels by self device time, plus the host
    ops with the most self CPU time; on a CPU the ops by self CPU time. The weights are put
    back afterwards and the caller's RNG state is kept.
    """
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    dev = engine.device
    cuda = dev.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    saved = {k: v.detach().clone() for k, v in engine.model.state_dict().items()}
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    gen = torch.Generator(device=dev).manual_seed(0)
    opt = engine.optimizer()
    params = list(engine.model.parameters())
    loss_sum = torch.zeros((), dtype=torch.float32, device=dev)
    walls = {}
    try:
        with engine._seeded_dropout(0):
            _train_steps(engine, sampler, opt, params, gen, loss_sum, 0, warmup)
            it = warmup
            for name in ("before", "profiled", "after"):
                with profile(activities=activities) if name == "profiled" \
                        else contextlib.nullcontext() as prof_now:
                    sync()
                    start = time.perf_counter()
                    _train_steps(engine, sampler, opt, params, gen, loss_sum, it, iters)
                    sync()
                    walls[name] = (time.perf_counter() - start) / iters
                if name == "profiled":
                    prof = prof_now
                it += iters
        mean_loss = float(loss_sum) / it
    finally:
        del opt
        engine.model.zero_grad(set_to_none=True)
        engine.model.eval()
        with torch.no_grad():
            for k, v in engine.model.state_dict().items():
                v.copy_(saved[k])
        sync()

    t0 = time.perf_counter()
    events = prof.events()
    averages = prof.key_averages()
    wall_ms = 1e3 * walls["before"]
    res = {"iters": iters, "warmup_iters": warmup, "compiled": engine.compiled is not engine.model,
           "cuda_graphs": engine._graph_steps, "batch_size": engine.preset.batch_size,
           "wall_ms_per_iter": wall_ms,
           "wall_ms_per_iter_after_profiler": 1e3 * walls["after"],
           "wall_ms_per_iter_profiled": 1e3 * walls["profiled"],
           "mean_train_loss": mean_loss}
    if cuda:
        device_types = (DeviceType.CUDA,)
        dev_events = [e for e in events if e.device_type in device_types]
        kernels = [e for e in dev_events if not e.name.startswith(("Memcpy", "Memset"))]
        tops = [e for e in averages if e.device_type in device_types]

        def self_us(e):
            return e.self_device_time_total

        busy_ms = _busy_us([(e.time_range.start, e.time_range.end) for e in dev_events]) \
            / 1e3 / iters
        res.update(time_kind="self device time of CUDA kernels (memcpy/memset included)",
                   kernels_per_iter=len(kernels) / iters,
                   device_ops_per_iter=len(dev_events) / iters,
                   device_busy_ms_per_iter=busy_ms,
                   device_busy_over_wall=busy_ms / wall_ms if wall_ms > 0 else None,
                   device_busy_over_wall_profiled=busy_ms / (1e3 * walls["profiled"]),
                   torch_cuda=torch.version.cuda,
                   teardown_cupti_env=os.environ.get("TEARDOWN_CUPTI"))
        if not dev_events:
            res["note"] = "no CUDA events recorded (CUPTI unavailable?)"
    else:
        def self_us(e):
            return e.self_cpu_time_total

        tops = [e for e in averages if e.device_type == DeviceType.CPU]
    tops = sorted((e for e in tops if self_us(e) > 0), key=self_us, reverse=True)
    total_us = sum(self_us(e) for e in tops)
    res["device_ms_per_iter" if cuda else "self_cpu_ms_per_iter"] = total_us / 1e3 / iters
    if not cuda:
        res.update(time_kind="self CPU time of ops (all threads)",
                   ops_per_iter=sum(e.count for e in tops) / iters,
                   self_cpu_over_wall_profiled=total_us / 1e3 / iters
                   / (1e3 * walls["profiled"]))
    res["top"] = [{"name": e.key[:120], "calls_per_iter": e.count / iters,
                   "ms_per_iter": self_us(e) / 1e3 / iters,
                   "share": self_us(e) / total_us if total_us > 0 else None}
                  for e in tops[:top]]
    if cuda:  # what the host spends its time on while the device waits (or not)
        host = sorted((e for e in averages if e.device_type == DeviceType.CPU
                       and e.self_cpu_time_total > 0),
                      key=lambda e: e.self_cpu_time_total, reverse=True)
        res["host_self_cpu_ms_per_iter"] = sum(e.self_cpu_time_total for e in host) / 1e3 \
            / iters
        res["host_top"] = [{"name": e.key[:120], "calls_per_iter": e.count / iters,
                            "self_cpu_ms_per_iter": e.self_cpu_time_total / 1e3 / iters}
                           for e in host[:10]]
    res["analysis_seconds"] = time.perf_counter() - t0
    return res


def _error(exc: BaseException) -> str:
    traceback.print_exc()
    return f"{type(exc).__name__}: {exc}"


def time_training(mode: str, preset, corpus, dev: torch.device, peak: float | None,
                  flops: float, profile: bool = False) -> dict:
    """Train p(0) once with torch.compile ``mode``: compile seconds, ms per iteration,
    tokens/s, MFU and the final validation loss; with ``profile``, then the profiler pass of
    :func:`profile_training` on the same engine ("profile", or "profile_error")."""
    engine = sampler = None
    try:
        engine = lm.Engine(preset, corpus.vocab_size, device=dev, compile_mode=mode)
        sampler = lm.WindowSampler([corpus.train[None]], [1.0], preset.block_size, dev)
        val = torch.from_numpy(validation_windows(corpus.val, preset.block_size,
                                                  preset.eval_tokens).astype("int64")).to(dev)
        warmup = engine.warmup(sampler)
        rec = engine.train(sampler, entropy=0, generation=0, val_windows=val)
        row = {"compile_warmup_seconds": warmup,
               "train_ms_per_iter": 1e3 * rec.seconds / preset.max_iters,
               "train_tokens_per_second": rec.tokens_per_second,
               "mfu": rec.tokens_per_second * flops / peak if peak else None,
               "p0_final_val_loss": rec.val_loss[-1],
               "speedup_vs_reference": rec.tokens_per_second
               / REFERENCE["train_tokens_per_second"]}
        if profile:
            try:
                row["profile"] = profile_training(engine, sampler)
            except Exception as exc:
                row["profile_error"] = _error(exc)
        return row
    finally:
        del engine, sampler
        if dev.type == "cuda":
            torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT"))
    ap.add_argument("--corpus", default=None)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--preset", default="paper", help="paper (default); tiny for a smoke test")
    ap.add_argument("--ref-batch", type=int, default=2048, help="batch of the sampler race")
    ap.add_argument("--big-batch", type=int, default=16384, help="largest sampling batch")
    ap.add_argument("--mode", default="reduce-overhead",
                    help="torch.compile mode of the engine that runs the Fig. 5 generations")
    ap.add_argument("--compile-modes", default="default",
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
                     "preset": preset.to_dict(), "reference_h100_nanogpt": REFERENCE,
                     "errors": {}}

    def save() -> None:
        results["script_seconds"] = time.perf_counter() - t_start
        (out / "gpu_lm.json").write_text(json.dumps(results, indent=2) + "\n")

    engine = lm.Engine(preset, corpus.vocab_size, device=dev, compile_mode=args.mode)
    results["mode"] = args.mode
    sampler = lm.WindowSampler([corpus.train[None]], [1.0], preset.block_size, dev)
    results["compile_warmup_seconds"] = engine.warmup(sampler)
    save()
    # Where an iteration's time goes (mode --mode); the next train reinitialises.
    try:
        results["training_profile"] = profile_training(engine, sampler)
    except Exception as exc:
        results["errors"]["profile_training"] = _error(exc)
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
    results["training_modes"] = {args.mode: {k: train[k] for k in (
        "train_ms_per_iter", "train_tokens_per_second", "mfu", "p0_final_val_loss")}}
    for i, mode in enumerate(filter(None, args.compile_modes.split(","))):
        try:  # the first mode is also profiled, on its engine before time_training drops it
            row = time_training(mode, preset, corpus, dev, peak, flops, profile=i == 0)
        except Exception as exc:
            results["errors"][f"training_mode_{mode}"] = _error(exc)
            if cuda:
                torch.cuda.empty_cache()
        else:
            if "profile" in row:
                results.setdefault("training_profile_modes", {})[mode] = row.pop("profile")
            if "profile_error" in row:
                results["errors"][f"profile_training_{mode}"] = row.pop("profile_error")
            results["training_modes"][mode] = row
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
