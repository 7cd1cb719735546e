"""The recursive loop for GPT-style models (paper §4.1, Fig. 5), checkpointed per generation.

p(0) is trained on the real text. Generation 0's data ("real data" of eq. 5, t = 0) is, as in
the paper, text sampled from p(0), the ground truth of the experiment (``real="p0"``); with
``real="text"`` it is the real training text itself. Model m ≥ 1 trains on n_t^(m) tokens of
each generation t < m, as ``scenario.counts(m)`` says (eq. 5; the slices are planned by
:mod:`modelcollapse.lm.plan` as the loop reaches each model). Every model has the same
architecture and training settings. Every input is checked, and the run sized against the
machine, before anything is written (:mod:`modelcollapse.lm.checks`).

Each generation is saved as soon as it is done (see :mod:`modelcollapse.lm.result` for the
files); each file records a *recipe*, a hash of everything that produced it, so that a rerun
in the same directory resumes where it stopped, refuses a directory made with different
settings, and can take finished generations from other runs (``reuse_from``: in Fig. 5 the
three scenarios share p(0), its text and p(1)). Every random draw is keyed by (seed, purpose,
generation), so a resumed run computes what the uninterrupted run would have.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .._files import remove_stale_temps
from ..corpus import Corpus
from ..scenarios import Scenario
from . import _seeds
from .checkpoint import (
    copy_file,
    file_record,
    load_array,
    load_weights,
    read_json,
    recipe_hash,
    save_array,
    save_weights,
    stage_finished,
    write_json,
)
from .checks import check_run
from .generate import Sampling, sample_streams
from .metrics import context_probs, diversity, unigram
from .plan import (
    LM_SCENARIOS,
    REAL_SOURCES,
    DataPlan,
    Segment,
    data_plan,
    make_lm_scenario,
    stream_unit,
)
from .plots import plot_run, write_samples
from .presets import Preset
from .result import RunResult, gen_dir, load_run
from .train import Engine, WindowSampler, validation_windows

__all__ = [
    "LM_SCENARIOS",
    "REAL_SOURCES",
    "DataPlan",
    "RunDirectoryMismatch",
    "Segment",
    "data_plan",
    "make_lm_scenario",
    "run",
]


class RunDirectoryMismatch(ValueError):
    """The output directory holds checkpoints made with other settings."""


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("modelcollapse")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def run(scenario: str | Scenario = "fully-synthetic", *, out: str | Path,
        n_generations: int = 10, preset: str | Preset = "paper", seed: int | None = 0,
        device: str = "cpu", corpus: str | Path | Corpus | None = None, download: bool = False,
        real: str = "p0", synthetic_fraction: float | None = None, K: int | None = None,
        sampling: Sampling | None = None, reuse_from: Sequence[str | Path] = (),
        engine: Engine | None = None, progress: bool | None = False,
        on_event: Callable[[str, int], None] | None = None) -> RunResult:
    """Train p(0) on real text, then models 1 … ``n_generations`` as ``scenario`` says.

    Writes every generation into ``out`` and resumes from it; returns the run's
    :class:`~modelcollapse.lm.result.RunResult`. ``on_event(stage, m)`` is called after
    stage "model" and "corpus" of generation m are saved. ``engine`` lets several runs of one
    preset share a (compiled) model. Every input is checked first
    (:func:`~modelcollapse.lm.checks.check_run`: types, ranges, the corpus, the output folder,
    and memory and disk against this machine); nothing is written when one is refused.
    """
    req = check_run(scenario, out=out, n_generations=n_generations, preset=preset, seed=seed,
                    device=str(engine.device) if engine is not None else device,
                    corpus=corpus, download=download, real=real,
                    synthetic_fraction=synthetic_fraction, K=K, sampling=sampling)
    if engine is None:
        engine = Engine(req.preset, req.corpus.vocab_size, device=req.device)
    elif engine.preset != req.preset or engine.config.vocab_size != req.corpus.vocab_size:
        raise ValueError("The 'engine' parameter of lm.run was built for another preset or "
                         "vocabulary.")
    loop = _Loop(req.out, req.scenario, req.n_generations, req.preset, req.corpus, req.real,
                 req.sampling, req.entropy, engine, [Path(p) for p in reuse_from], on_event)
    return loop.execute(progress)


class _Loop:
    """State of one run: its plan, recipes, loaded corpora and the engine's current model."""

    def __init__(self, out: Path, scenario: Scenario, n_generations: int, preset: Preset,
                 corpus: Corpus, real: str, sampling: Sampling, entropy: int, engine: Engine,
                 reuse_from: list[Path], on_event):
        self.out, self.scenario, self.M = out, scenario, n_generations
        self.preset, self.corpus, self.real, self.sampling = preset, corpus, real, sampling
        self.entropy, self.engine, self.reuse_from, self.on_event = (entropy, engine,
                                                                      reuse_from, on_event)
        self.L = preset.window_stream_length
        # Lazy: a model's row of eq. 5 is read when the loop reaches it (see lm.plan).
        self.plan = data_plan(scenario, n_generations, unit=stream_unit(real, self.L))
        if real == "text" and self.plan.demand[0] > len(corpus.train):
            raise ValueError(f"Scenario {scenario.describe()} needs {self.plan.demand[0]} real "
                             f"tokens; the training text has {len(corpus.train)}.")
        # What every checkpoint of the run depends on (the data slices come on top).
        self.base = {"preset": preset.to_dict(), "entropy": entropy, "text": corpus.sha256,
                     "train_tokens": len(corpus.train), "device": engine.device.type}
        self._model_recipes: list[str] = []
        self.corpora: dict[int, np.ndarray] = {}
        self.loaded: str | None = None  # recipe of the weights the engine holds
        self.contexts: np.ndarray | None = None
        dev = engine.device
        self.val_windows = torch.from_numpy(validation_windows(
            corpus.val, preset.block_size, preset.eval_tokens).astype(np.int64)).to(dev)

    # --- recipes: what produced each checkpoint ---
    def _source_recipe(self, t: int) -> str:
        return "text" if (t == 0 and self.real == "text") else self.corpus_recipe(t)

    def model_recipe(self, m: int) -> str:
        # A chain of hashes: fill it in order (iteratively, however far a resume starts).
        for k in range(len(self._model_recipes), m + 1):
            sources = [] if k == 0 else [(s.generation, s.start, s.stop,
                                          self._source_recipe(s.generation))
                                         for s in self.plan.segments[k]]
            self._model_recipes.append(recipe_hash({"base": self.base, "model": k,
                                                    "sources": sources}))
        return self._model_recipes[m]

    def corpus_recipe(self, t: int) -> str:
        return recipe_hash({"model": self.model_recipe(t), "tokens": self.plan.demand[t],
                            "stream_length": self.L, "sampling": vars(self.sampling)})

    def settings(self) -> dict:
        return {"scenario": self.scenario.describe(), "scenario_name": self.scenario.name,
                "n_generations": self.M, "preset": self.preset.to_dict(),
                "seed_entropy": self.entropy, "real": self.real,
                "sampling": vars(self.sampling), "device": str(self.engine.device),
                "stream_length": self.L, "text_sha256": self.corpus.sha256,
                "vocab_size": self.corpus.vocab_size,
                "versions": {"modelcollapse": _package_version(), "torch": torch.__version__,
                             "numpy": np.__version__}}

    # --- checks before anything is written ---
    def _existing_generations(self) -> list[int]:
        """Generations 0 … M that have a folder in ``out`` (one listing, not one look-up per
        generation asked for)."""
        if not self.out.is_dir():
            return []
        names = {entry.name for entry in os.scandir(self.out) if entry.is_dir()}
        found = []
        for name in names:
            head, _, digits = name.partition("_")
            if head == "gen" and digits.isdigit() and int(digits) <= self.M and \
                    gen_dir(self.out, int(digits)).name == name:
                found.append(int(digits))
        return sorted(found)

    def _check_existing(self) -> None:
        for m in self._existing_generations():
            for name, recipe in (("model", self.model_recipe(m)),
                                 ("corpus", self.corpus_recipe(m))):
                path = gen_dir(self.out, m) / f"{name}.json"
                try:
                    made_with = read_json(path).get("recipe") if path.exists() else recipe
                except (OSError, ValueError, AttributeError):
                    continue  # a damaged record: that stage is simply done again
                if made_with != recipe:
                    raise RunDirectoryMismatch(
                        f"{self.out} holds a different run: {path} was made with other "
                        f"settings. Choose another output directory.")

    def execute(self, progress: bool | None) -> RunResult:
        self._check_existing()
        remove_stale_temps(self.out)  # what a killed save left of files not written again
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(self.out / "run.json", self.settings())
        total = (self.M + 1) * self.preset.max_iters
        with tqdm(total=total, unit="it", file=sys.stderr, dynamic_ncols=True,
                  disable=None if progress is None else not progress) as bar:
            for m in range(self.M + 1):
                bar.set_description(f"gen {m}/{self.M} train")
                self._model_stage(m, bar)
                self._event("model", m)
                bar.set_description(f"gen {m}/{self.M} sample")
                self._corpus_stage(m)
                self._event("corpus", m)
                self._free_memory(m)
        result = load_run(self.out, self.M)
        write_json(self.out / "result.json", result.summary())
        plot_run(result, self.out / "run.png")
        write_samples(result, self.corpus.tokenizer, self.out / "samples.txt")
        return result

    def _event(self, stage: str, m: int) -> None:
        if self.on_event is not None:
            self.on_event(stage, m)

    # --- data ---
    def _corpus(self, t: int) -> np.ndarray:
        if t not in self.corpora:
            self.corpora[t] = load_array(gen_dir(self.out, t) / "corpus.npy")
        return self.corpora[t]

    def _sources(self, m: int) -> tuple[list[np.ndarray], list[float]]:
        if m == 0:
            return [self.corpus.train[None]], [float(len(self.corpus.train))]
        arrays = []
        for s in self.plan.segments[m]:
            if s.generation == 0 and self.real == "text":
                arrays.append(self.corpus.train[None, s.start: s.stop])
            else:
                arrays.append(self._corpus(s.generation)[s.start // self.L: s.stop // self.L])
        return arrays, [float(s.tokens) for s in self.plan.segments[m]]

    def _reuse(self, m: int, name: str, recipe: str, files: Sequence[str]) -> bool:
        """Copy generation m's ``files`` (then ``name``.json) from a run that made them with
        the same recipe."""
        for other in self.reuse_from:
            src = gen_dir(other, m)
            meta = src / f"{name}.json"
            if stage_finished(meta, [src / f for f in files]) and \
                    read_json(meta).get("recipe") == recipe:
                for f in files:
                    copy_file(src / f, gen_dir(self.out, m) / f)
                copy_file(meta, gen_dir(self.out, m) / f"{name}.json")
                return True
        return False

    def _contexts(self) -> np.ndarray:
        if self.contexts is None:
            self.contexts = load_array(gen_dir(self.out, 0) / "contexts.npy")
        return self.contexts

    # --- stages ---
    def _model_stage(self, m: int, bar) -> None:
        d = gen_dir(self.out, m)
        recipe = self.model_recipe(m)
        files = ["model.pt", "probs.npy"] + (["contexts.npy"] if m == 0 else [])
        if stage_finished(d / "model.json", [d / f for f in files]) or \
                self._reuse(m, "model", recipe, files):
            bar.update(self.preset.max_iters)
            return
        eng, p = self.engine, self.preset
        sources, weights = self._sources(m)
        sampler = WindowSampler(sources, weights, p.block_size, eng.device)
        record = eng.train(sampler, entropy=self.entropy, generation=m,
                           val_windows=self.val_windows, progress=bar.update)
        del sampler
        start_probs = unigram(sources, weights, self.corpus.vocab_size)
        amp = eng.autocast if eng.use_autocast else None
        if m == 0:
            # The contexts of the L1 metric: sampled once from p(0), reused for every m.
            self.contexts = sample_streams(
                eng.model, p.n_contexts, p.block_size, start_probs=start_probs,
                seed=_seeds.torch_seed(self.entropy, _seeds.CONTEXTS, 0),
                batch=p.gen_batch, autocast=amp).tokens
            save_array(d / "contexts.npy", self.contexts)
        probs = context_probs(eng.model, self._contexts(), autocast=amp)
        save_weights(d / "model.pt", eng.state_dict())
        save_array(d / "probs.npy", probs)
        self.loaded = recipe
        sources_meta = [{"generation": 0, "start": 0, "stop": len(self.corpus.train),
                         "kind": "text"}] if m == 0 else [
            {"generation": s.generation, "start": s.start, "stop": s.stop,
             "kind": "text" if (s.generation == 0 and self.real == "text") else "samples"}
            for s in self.plan.segments[m]]
        write_json(d / "model.json", {
            "recipe": recipe, "generation": m, "sources": sources_meta,
            "files": file_record([d / f for f in files]),
            "iters": record.iters, "val_loss": record.val_loss, "train_loss": record.train_loss,
            "train_seconds": record.seconds, "eval_seconds": record.eval_seconds,
            "tokens_per_second": record.tokens_per_second,
            "start_probs": start_probs.tolist()})

    def _corpus_stage(self, t: int) -> None:
        need = self.plan.demand[t]
        if need == 0 or (t == 0 and self.real == "text"):
            return
        d = gen_dir(self.out, t)
        recipe = self.corpus_recipe(t)
        if stage_finished(d / "corpus.json", [d / "corpus.npy"]) or \
                self._reuse(t, "corpus", recipe, ["corpus.npy"]):
            return
        eng = self.engine
        if self.loaded != self.model_recipe(t):
            eng.load_state_dict(load_weights(d / "model.pt"))
            self.loaded = self.model_recipe(t)
        start_probs = np.asarray(read_json(d / "model.json")["start_probs"])
        t0 = time.perf_counter()
        sample = sample_streams(
            eng.model, need // self.L, self.L, start_probs=start_probs,
            seed=_seeds.torch_seed(self.entropy, _seeds.GENERATE, t), sampling=self.sampling,
            batch=self.preset.gen_batch, autocast=eng.autocast if eng.use_autocast else None)
        seconds = time.perf_counter() - t0
        self.corpora[t] = sample.tokens
        save_array(d / "corpus.npy", sample.tokens)
        write_json(d / "corpus.json", {
            "recipe": recipe, "files": file_record([d / "corpus.npy"]),
            "tokens": int(sample.tokens.size),
            "streams": int(sample.tokens.shape[0]), "stream_length": self.L,
            "nll": sample.nll, "seconds": seconds,
            "tokens_per_second": sample.tokens.size / seconds,
            "diversity": diversity(sample.tokens, self.corpus.vocab_size,
                                   max_tokens=self.preset.diversity_tokens)})

    def _free_memory(self, m: int) -> None:
        """Drop corpora no later model may read, the plan's rows of trained models, and
        cached device memory."""
        for t in [t for t in self.corpora if self.plan.last_reader(t) <= m]:
            del self.corpora[t]
        self.plan.forget(m)
        if self.engine.device.type == "cuda":
            torch.cuda.empty_cache()
