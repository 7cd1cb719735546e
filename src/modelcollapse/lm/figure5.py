"""Fig. 5 of the paper: fully synthetic vs 50 % and 20 % synthetic mixtures, GPT-style models.

Runs the three scenarios with one seed (or several) and writes into ``out``:

* ``fig5.png``: left, ‖p(m) − p(1)‖₁ averaged over the contexts sampled from p(0), with a
  band of ± 2 standard errors; then one panel per scenario with the validation loss on the
  real text along training (log-x), one curve per generation;
* ``fig5.json``: the numbers behind it, the fully-synthetic minus mixture gaps at the last
  generation (paired over contexts), and where the time went;
* ``seed_S/<scenario>/``: the three resumable run directories.

The scenarios share p(0), the text sampled from it, and p(1) (same seed, same data), which
are computed once and copied; that saves four of the 33 trainings.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .._validation import check_int
from ..corpus import Corpus
from .checkpoint import read_json, write_json
from .checks import check_run, request_footprint
from .footprint import check_footprints
from .loop import run
from .metrics import mean_band
from .plots import plot_figure5
from .presets import Preset
from .result import RunResult, gen_dir, load_run
from .train import Engine

__all__ = ["FIG5_SCENARIOS", "Figure5Request", "Figure5Result", "check_figure5",
           "plot_figure5", "run_figure5"]

#: (label, directory, scenario name, synthetic fraction); labels are the paper's legend.
FIG5_SCENARIOS: tuple[tuple[str, str, str, float | None], ...] = (
    ("synthetic", "fully-synthetic", "fully-synthetic", None),
    ("synthetic 50% - real 50%", "synthetic-50", "partially-synthetic", 0.5),
    ("synthetic 20% - real 80%", "synthetic-20", "partially-synthetic", 0.2),
)
@dataclass
class Figure5Result:
    """Paths written and the numbers of ``fig5.json``."""

    out: Path
    figure: Path
    numbers: Path
    summary: dict
    runs: dict[str, list[RunResult]]


@dataclass(frozen=True)
class Figure5Request:
    """Checked settings of :func:`run_figure5`."""

    preset: Preset
    corpus: Corpus
    device: str
    seeds: tuple[int, ...]
    workers: int


def check_figure5(out: str | Path, *, preset: str | Preset = "cpu", device: str = "cpu",
                  seeds: Sequence[int] = (0,), n_generations: int = 10,
                  corpus: str | Path | Corpus | None = None, download: bool = False,
                  real: str = "p0", workers: int | None = None,
                  where: str = "run_figure5") -> Figure5Request:
    """Check every input of :func:`run_figure5` before any work: each of its runs as
    :func:`~modelcollapse.lm.checks.check_run` does, then their memory (the runs that share
    the machine at once) and disk (all of them) against this machine."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or not seeds:
        raise ValueError(f"The 'seeds' parameter of {where} must name at least one seed. "
                         f"Got {seeds!r} instead.")
    seeds = tuple(check_int(s, "seeds", low=0, where=where) for s in seeds)
    requests = []
    for seed in seeds:
        for _, slug, name, fraction in FIG5_SCENARIOS:
            req = check_run(name, out=Path(out) / f"seed_{seed}" / slug,
                            n_generations=n_generations, preset=preset, seed=seed,
                            device=device, corpus=corpus, download=download, real=real,
                            synthetic_fraction=fraction, check_size=False, where=where)
            preset, corpus, device = req.preset, req.corpus, req.device
            requests.append(req)
    cuda = device.startswith("cuda")
    if workers is None:
        workers = 1 if cuda else min(len(requests), 8)
    workers = check_int(workers, "workers", low=1, where=where)
    check_footprints([request_footprint(r) for r in requests], out=out, device=device,
                     concurrent=1 if cuda else min(workers, len(requests)), where=where)
    return Figure5Request(preset, corpus, device, seeds, workers)


def run_figure5(out: str | Path, *, preset: str | Preset = "cpu", device: str = "cpu",
                seeds: Sequence[int] = (0,), n_generations: int = 10,
                corpus: str | Path | Corpus | None = None, download: bool = False,
                real: str = "p0", workers: int | None = None,
                progress: bool | None = False) -> Figure5Result:
    """Run (or resume) the three scenarios of Fig. 5 and write its figure and numbers.

    On CUDA the runs go one after another through one compiled model. On a CPU they run in
    ``workers`` processes (default: one per run) with one intra-op thread each: these models
    are too small for two threads to help one another, and separate processes keep both
    cores busy (and do not stall when other programs share the cores). Each seed's p(0),
    text of p(0) and p(1) are computed first, once, then shared. Every input is checked
    first (:func:`check_figure5`); nothing is written when one is refused.
    """
    out = Path(out)
    checked = check_figure5(out, preset=preset, device=device, seeds=seeds,
                            n_generations=n_generations, corpus=corpus, download=download,
                            real=real, workers=workers)
    preset, corpus, device = checked.preset, checked.corpus, checked.device
    seeds, workers = checked.seeds, checked.workers
    start = time.perf_counter()
    common = {"n_generations": n_generations, "preset": preset, "corpus": corpus,
              "real": real, "device": device}
    prefix, jobs = [], []
    for seed in seeds:
        base = out / f"seed_{seed}"
        first = base / FIG5_SCENARIOS[0][1]
        prefix.append({**common, "scenario": "fully-synthetic", "out": first, "seed": seed,
                       "n_generations": 1})
        for label, slug, name, fraction in FIG5_SCENARIOS:
            jobs.append((label, {**common, "scenario": name, "synthetic_fraction": fraction,
                                 "out": base / slug, "seed": seed,
                                 "reuse_from": [] if base / slug == first else [first]}))
    wall: dict[str, float] = {}
    cpu: dict[str, list[float]] = {"prefix": [], "runs": []}
    if workers <= 1:
        engine = Engine(preset, corpus.vocab_size, device=device)
        for _, kwargs in jobs:
            t0 = time.perf_counter()
            run(**kwargs, engine=engine, progress=progress)
            wall[str(kwargs["out"].relative_to(out))] = time.perf_counter() - t0
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        context = multiprocessing.get_context("forkserver")
        # Import torch once in the fork server rather than once per worker (seconds each).
        context.set_forkserver_preload(["torch", "torch._dynamo", "modelcollapse.lm.loop"])
        with ProcessPoolExecutor(workers, mp_context=context) as pool, \
                tqdm(total=len(prefix) + len(jobs), unit="run", file=sys.stderr,
                     disable=None if progress is None else not progress) as bar:
            for name, phase in (("prefix", prefix), ("runs", [kw for _, kw in jobs])):
                for kwargs, (seconds, cpu_seconds) in zip(
                        phase, pool.map(_run_in_worker, phase, [threads] * len(phase)),
                        strict=True):
                    key = str(kwargs["out"].relative_to(out))
                    wall[key] = wall.get(key, 0.0) + seconds
                    cpu[name].append(cpu_seconds)
                    bar.update()
    runs: dict[str, list[RunResult]] = {label: [] for label, *_ in FIG5_SCENARIOS}
    for label, kwargs in jobs:
        runs[label].append(load_run(kwargs["out"], n_generations))
    summary = _numbers(runs, preset, n_generations, list(seeds))
    summary["seconds"] = {"wall": time.perf_counter() - start, "per_run": wall,
                          **_time_breakdown(runs, n_generations)}
    if cpu["runs"]:
        # What the wall time would be with the cores to ourselves: the prefixes, then the
        # runs spread over the cores (each worker is single-threaded).
        cores = min(workers, os.cpu_count() or 1)
        summary["seconds"]["cpu_per_worker_run"] = cpu
        summary["seconds"]["unshared_cores_estimate"] = (
            max(cpu["prefix"]) * -(-len(cpu["prefix"]) // cores)
            + max(max(cpu["runs"]), sum(cpu["runs"]) / cores))
    summary["device"] = str(device)
    summary["workers"] = workers
    numbers = write_json(out / "fig5.json", summary)
    figure = plot_figure5(runs, out / "fig5.png")
    return Figure5Result(out, figure, numbers, summary, runs)


def _run_in_worker(kwargs: dict, threads: int) -> tuple[float, float]:
    """One run in a worker process with ``threads`` intra-op threads; returns its wall and
    CPU seconds."""
    import torch

    torch.set_num_threads(threads)
    t0, c0 = time.perf_counter(), time.process_time()
    run(**kwargs)
    return time.perf_counter() - t0, time.process_time() - c0


def _numbers(runs: dict[str, list[RunResult]], preset: Preset, n_generations: int,
             seeds: list[int]) -> dict:
    scenarios = {}
    for label, results in runs.items():
        l1_first = np.stack([r.l1_to_first for r in results])  # (seeds, M + 1, contexts)
        l1_true = np.stack([r.l1_to_true for r in results])
        val = np.array([[g.final_val_loss for g in r.generations] for r in results])
        bands = [mean_band(l1_first[:, m]) for m in range(1, n_generations + 1)]
        true_bands = [mean_band(l1_true[:, m]) for m in range(n_generations + 1)]
        published = [g for g in results[0].generations if g.corpus is not None]
        scenarios[label] = {
            "scenario": results[0].settings["scenario"],
            "l1_to_first": {"generation": list(range(1, n_generations + 1)),
                            **{k: [b[k] for b in bands] for k in ("mean", "se", "lo", "hi")},
                            "se_over": bands[0]["se_over"]},
            "l1_to_true": {"generation": list(range(n_generations + 1)),
                           **{k: [b[k] for b in true_bands] for k in ("mean", "se")}},
            "final_val_loss": {"generation": list(range(n_generations + 1)),
                               "mean": val.mean(axis=0).tolist(), "per_seed": val.tolist()},
            "corpus_seed0": [{"generation": g.generation, "tokens": g.corpus["tokens"],
                              "nll": g.corpus["nll"], **g.corpus["diversity"]}
                             for g in published],
            "val_curves_seed0": [{"generation": g.generation, "iters": g.iters,
                                  "val_loss": g.val_loss} for g in results[0].generations],
        }
    labels = [label for label, *_ in FIG5_SCENARIOS]
    full = np.stack([r.l1_to_first[-1] for r in runs[labels[0]]])  # (seeds, contexts)
    gaps = {}
    for label in labels[1:]:
        mix = np.stack([r.l1_to_first[-1] for r in runs[label]])
        band = mean_band(full - mix)  # paired: same contexts, same seeds
        band["z"] = band["mean"] / band["se"] if band["se"] > 0 else float("inf")
        gaps[label] = band
    return {"preset": preset.to_dict(), "seeds": seeds, "n_generations": n_generations,
            "band": "mean ± 2 standard errors (over contexts with one seed, else over seeds)",
            "scenarios": scenarios,
            "gap_at_last_generation": {"generation": n_generations,
                                       "fully_synthetic_minus": gaps}}


def _time_breakdown(runs: dict[str, list[RunResult]], n_generations: int) -> dict:
    """Seconds spent training, validating and sampling, each checkpoint counted once
    (generations shared between scenarios are copied, not recomputed), summed over the
    worker processes (which share the cores, so the sum can exceed the wall time)."""
    seen: set[str] = set()
    totals = {"train": 0.0, "validation": 0.0, "sample": 0.0, "trainings": 0, "samplings": 0}
    for results in runs.values():
        for r in results:
            for m in range(n_generations + 1):
                d = gen_dir(r.out, m)
                model = read_json(d / "model.json")
                if model["recipe"] not in seen:
                    seen.add(model["recipe"])
                    totals["train"] += model["train_seconds"]
                    totals["validation"] += model["eval_seconds"]
                    totals["trainings"] += 1
                if (d / "corpus.json").exists():
                    corpus = read_json(d / "corpus.json")
                    if corpus["recipe"] not in seen:
                        seen.add(corpus["recipe"])
                        totals["sample"] += corpus["seconds"]
                        totals["samplings"] += 1
    return totals

