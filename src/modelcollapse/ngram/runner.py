"""``ngram.run``: the corpus, p(0), either loop, metrics per generation, checkpoints.

A run with an ``out`` folder writes ``spec.json`` first and, after every generation,
``state.npz`` (everything later generations need, and the statistics so far) atomically, so a
killed run started again with the same folder and spec resumes after its last whole
generation and ends with the numbers an unbroken run gives: every generation draws from its
own stream, keyed by (seed, generation).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .._files import atomic_write, atomic_write_text, check_output_folder, remove_stale_temps
from .._validation import InputError
from ..corpus import load_text
from ..engine.footprint import check_fits
from .fixed import ContextHistory, base_sizes, run_blocks
from .generative import TextHistory, generation_rng, real_starts
from .metrics import (
    METRICS,
    DenseProbe,
    RowProbe,
    Validation,
    model_metrics,
    sample_contexts,
)
from .prediction import LARGEST_SIZE, fixed_contexts_prediction
from .result import NgramResult, build_result
from .sampler import generate
from .spec import NgramSpec
from .table import NgramTable
from .text_metrics import TEXT_METRICS, text_metrics
from .tokenize import build_tokenizer

__all__ = ["Prepared", "prepare", "run"]

#: Share of the text held out for validation (the transformer loop's split).
VAL_FRACTION = 0.1
#: Text each measured model writes for the diversity metrics and the samples: streams × length.
EVAL_STREAMS, EVAL_LENGTH = 100, 1000
#: Runs of the fixed-contexts loop whose models write text for the diversity metrics.
TEXT_RUNS = 10


@dataclass(frozen=True)
class Prepared:
    """The corpus as the loops use it."""

    tokenizer: object
    train: np.ndarray
    val: np.ndarray
    p0: NgramTable
    validation: Validation
    sampled: np.ndarray     # context keys for the L1 metrics


def prepare(spec: NgramSpec, text: str | None = None) -> Prepared:
    """Read and tokenise the corpus, count p(0), draw the contexts the L1 metrics use."""
    if text is None:
        text = load_text(spec.corpus, download=spec.download)
    cut = int(len(text) * (1 - VAL_FRACTION))
    if cut <= spec.order + 1 or len(text) - cut <= spec.order + 1:
        raise InputError(f"The 'corpus' parameter of ngram must hold more than "
                         f"{spec.order + 1} tokens in both splits. Got {len(text)} characters.")
    tokenizer = build_tokenizer(spec.tokenizer, text, text[:cut], vocab_size=spec.vocab_size)
    train, val = tokenizer.encode(text[:cut]), tokenizer.encode(text[cut:])
    p0 = NgramTable.count(train, spec.order, tokenizer.vocab_size)
    if spec.loop == "fixed" and spec.resolved_min_count > 1:
        p0 = _keep_contexts(p0, p0.totals >= spec.resolved_min_count)
    rng = generation_rng(spec.seed, 0, part=1)
    return Prepared(tokenizer, train, val, p0, Validation.of(val, spec.order, p0.vocab_size),
                    sample_contexts(p0, spec.contexts, rng))


def check_memory(spec: NgramSpec, prepared: Prepared) -> None:
    """Refuse, before any generation, a run whose arrays exceed the memory here: the fixed
    loop holds per run a few (entries,) arrays (the models a scenario keeps, the corpus,
    draws and metrics in flight); the generative loop holds corpora as int64 n-gram keys,
    several times over while counting, and dense (contexts sampled × vocab) distributions."""
    p0 = prepared.p0
    if spec.loop == "fixed":
        kept = spec.generations + 1 if spec.scenario == "random-pool" else (spec.K or 1) + 2
        arrays = kept + 6
        need = 8 * arrays * spec.n_runs * p0.n_entries
        detail = f"{spec.n_runs} runs × {p0.n_entries:,} n-gram entries × {arrays} arrays"
        way_out = "fewer runs, a lower order or a smaller vocabulary"
    else:
        unit = spec.resolved_tokens
        sources = spec.generations + 1 if spec.scenario in ("accumulate", "random-pool",
                                                            "accumulate-subsample") else 3
        dense = 4 * prepared.sampled.size * p0.vocab_size * 8
        need = 40 * unit * sources + 6 * 24 * p0.n_entries + dense
        detail = f"corpora of {unit:,} tokens × {sources} at 40 bytes a token"
        way_out = "fewer tokens or fewer generations"
    check_fits(need, what="n-gram models", detail=detail, way_out=way_out, where="ngram")


def _keep_contexts(table: NgramTable, keep: np.ndarray) -> NgramTable:
    entries = keep[table.row_of_entry]
    if not keep.any():
        raise InputError("The 'min_count' parameter of ngram leaves no context.")
    return NgramTable.from_grams(table.grams[entries], table.counts[entries], table.order,
                                 table.vocab_size)


class _Moments:
    """Per metric and generation: runs measured, sum, sum of squares (for mean and se)."""

    def __init__(self, names: tuple[str, ...], generations: int):
        self.names = names
        self.count = np.zeros((len(names), generations + 1))
        self.total = np.zeros((len(names), generations + 1))
        self.squares = np.zeros((len(names), generations + 1))

    def add(self, m: int, values: dict[str, np.ndarray]) -> None:
        for i, name in enumerate(self.names):
            if name in values:
                v = np.asarray(values[name], dtype=np.float64)
                self.count[i, m] += v.size
                self.total[i, m] += v.sum()
                self.squares[i, m] += (v * v).sum()

    def arrays(self) -> dict[str, np.ndarray]:
        return {"count": self.count, "total": self.total, "squares": self.squares}

    def restore(self, state: dict[str, np.ndarray]) -> None:
        self.count, self.total, self.squares = (state["moments_count"], state["moments_total"],
                                                state["moments_squares"])


def run(spec: NgramSpec | None = None, *, out: str | Path | None = None, text: str | None = None,
        progress: bool | None = None, **fields) -> NgramResult:
    """Run the n-gram loop of ``spec`` (or of ``fields``, as :class:`NgramSpec` takes them).

    With ``out``, the run checkpoints there every generation and resumes from it; the
    result (``result.nc``), the decoded samples (``samples.txt``) and a summary are written
    there when it ends.
    """
    spec = spec if spec is not None else NgramSpec(**fields)
    folder = _open_folder(out, spec) if out is not None else None
    started = time.perf_counter()
    prepared = prepare(spec, text)
    check_memory(spec, prepared)
    names = METRICS + TEXT_METRICS
    moments = _Moments(names, spec.generations)
    per_context = np.zeros((spec.generations + 1, prepared.sampled.size))
    samples: dict[int, list[str]] = {}
    loop = _FixedLoop if spec.loop == "fixed" else _GenerativeLoop
    engine = loop(spec, prepared, moments, per_context, samples, folder)
    engine.run(progress)
    prediction = None
    if spec.loop == "fixed" and spec.scenario == "fully-synthetic" and \
            engine.sizes.max() <= LARGEST_SIZE:
        prediction = fixed_contexts_prediction(prepared.p0, engine.sizes, spec.generations)
    result = build_result(spec, prepared, moments, per_context, samples, prediction,
                          seconds=time.perf_counter() - started)
    if folder is not None:
        result.save(folder)
    return result


def _open_folder(out: str | Path, spec: NgramSpec) -> Path:
    folder = check_output_folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(folder)
    settings = spec.model_dump_json(indent=1)
    existing = folder / "spec.json"
    if existing.exists():
        if json.loads(existing.read_text()) != json.loads(settings):
            raise InputError(f"The 'out' parameter of ngram names {str(folder)!r}, which holds a "
                             f"run with other settings: choose another folder.")
    else:
        atomic_write_text(existing, settings)
    return folder


class _Loop:
    """What both loops share: generation 0, the generations of each unit of runs (a block of
    runs of the fixed loop, one run of the generative loop), checkpoints and resuming."""

    def __init__(self, spec: NgramSpec, prepared: Prepared, moments: _Moments,
                 per_context: np.ndarray, samples: dict[int, list[str]], folder: Path | None):
        self.spec, self.prepared, self.moments = spec, prepared, moments
        self.per_context, self.samples, self.folder = per_context, samples, folder
        self.scenario = spec.build_scenario()
        p0 = prepared.p0
        self.probe = (RowProbe(p0, prepared.sampled) if spec.loop == "fixed"
                      else DenseProbe(prepared.sampled))
        self.true = self.probe.distributions(p0, p0.counts[None])
        self.sizes = base_sizes(p0.totals, spec.resolved_ratio)
        self.first: np.ndarray | None = None   # p(1) at the sampled contexts, per unit

    # --- what each loop supplies ----------------------------------------------------------

    context_weights: np.ndarray | None = None

    def units(self) -> int:
        raise NotImplementedError

    def history(self, unit: int):
        raise NotImplementedError

    def measure_model(self, m: int, model) -> None:
        raise NotImplementedError

    # --- the loop ---------------------------------------------------------------------

    def run(self, progress: bool | None) -> None:
        p0, G = self.prepared.p0, self.spec.generations
        self.record(0, self.measure_p0(), None, [p0])
        start_unit, done, state = self.resume()
        with tqdm(total=self.units() * G, initial=start_unit * G + done, unit="gen",
                  desc=f"ngram {self.spec.loop}", leave=False,
                  disable=None if progress is None else not progress) as bar:
            for unit in range(start_unit, self.units()):
                history = self.history(unit)
                if unit == start_unit and done:
                    history.restore(state)
                first_generation = done + 1 if unit == start_unit else 1
                for m in range(first_generation, G + 1):
                    history.begin(m)
                    model = self.scenario.training_set(m, history)
                    history.store(m, model)
                    self.measure_model(m, model)
                    self.checkpoint(unit, m, history.state())
                    bar.update(1)

    def record(self, m: int, values: dict[str, np.ndarray], l1_runs: np.ndarray | None,
               text_tables: list[NgramTable]) -> None:
        self.moments.add(m, values)
        if l1_runs is not None:
            self.per_context[m] += l1_runs
        if text_tables:
            rng = generation_rng(self.spec.seed, m, part=2)
            texts = [self.write_text(t, rng) for t in text_tables]
            measured = [text_metrics(x) for x in texts]
            self.moments.add(m, {name: np.array([v[name] for v in measured])
                                 for name in TEXT_METRICS})
            if self.spec.samples and m not in self.samples:
                decode = self.prepared.tokenizer.decode
                self.samples[m] = [decode(s) for s in texts[0][: self.spec.samples]]

    def write_text(self, table: NgramTable, rng: np.random.Generator) -> np.ndarray:
        starts = real_starts(self.prepared.train, EVAL_STREAMS, table.order, rng)
        return generate(table, starts, EVAL_LENGTH, rng)

    def measure_p0(self) -> dict[str, np.ndarray]:
        p0 = self.prepared.p0
        values, _, _ = model_metrics(p0, p0.counts[None], probe=self.probe, first=None,
                                     true=self.true, validation=self.prepared.validation,
                                     context_weights=self.context_weights)
        return values

    def measure(self, m: int, table: NgramTable, counts: np.ndarray,
                text_tables: list[NgramTable]) -> None:
        """Metrics of model m (p(1) kept from m = 1 for the L1 to it)."""
        if m == 1:
            self.first = self.probe.distributions(table, counts)
        values, _, l1 = model_metrics(table, counts, probe=self.probe, first=self.first,
                                      true=self.true, validation=self.prepared.validation,
                                      context_weights=self.context_weights)
        self.record(m, values, l1.sum(axis=0), text_tables)

    # --- checkpoints ----------------------------------------------------------------------

    def checkpoint(self, unit: int, m: int, state: dict[str, np.ndarray]) -> None:
        """Everything needed to go on after generation m of ``unit``, in one atomic file."""
        if self.folder is None:
            return
        arrays = {f"history_{k}": v for k, v in state.items()}
        arrays.update({f"moments_{k}": v for k, v in self.moments.arrays().items()})
        arrays["per_context"] = self.per_context
        arrays["position"] = np.array([unit, m])
        arrays["first"] = self.first
        arrays["samples"] = np.array(json.dumps({str(k): v for k, v in self.samples.items()}))
        atomic_write(self.folder / "state.npz", lambda fh: np.savez(fh, **arrays))

    def resume(self) -> tuple[int, int, dict[str, np.ndarray]]:
        """Where the last checkpoint stopped: (unit, generation, history state); (0, 0, {})
        without one. The statistics so far and p(1) are restored here."""
        path = self.folder / "state.npz" if self.folder is not None else None
        if path is None or not path.exists():
            return 0, 0, {}
        with np.load(path, allow_pickle=False) as saved:
            state = {k: saved[k] for k in saved.files}
        self.moments.restore(state)
        self.per_context[:] = state["per_context"]
        self.first = state["first"]
        self.samples.update({int(k): v for k, v in json.loads(str(state["samples"])).items()})
        unit, m = (int(x) for x in state["position"])
        what = "block of runs" if self.spec.loop == "fixed" else "run"
        print(f"ngram: resuming after generation {m} of {what} {unit} in {self.folder}",
              file=sys.stderr)
        history = {k[len("history_"):]: v for k, v in state.items() if k.startswith("history_")}
        return unit, m, history


class _FixedLoop(_Loop):
    """Every context of p(0) resampled with its own S_j (fixed.py), in blocks of runs."""

    def __init__(self, *args):
        super().__init__(*args)
        p0 = self.prepared.p0
        self.context_weights = p0.totals   # π(c): p(0)'s context frequencies
        self.blocks = run_blocks(self.spec.n_runs)

    def units(self) -> int:
        return len(self.blocks)

    def history(self, unit: int) -> ContextHistory:
        return ContextHistory(self.prepared.p0, self.sizes, self.scenario, self.blocks[unit][1],
                              self.spec.seed, unit)

    def measure_model(self, m: int, model: np.ndarray) -> None:
        p0 = self.prepared.p0
        tables = [_run_table(p0, model[r]) for r in range(min(TEXT_RUNS, model.shape[0]))]
        self.measure(m, p0, model, tables)


class _GenerativeLoop(_Loop):
    """Model m writes a corpus; model m + 1 is counted from it (generative.py); run by run."""

    def units(self) -> int:
        return self.spec.n_runs

    def history(self, unit: int) -> TextHistory:
        return TextHistory(self.prepared.p0, self.prepared.train, self.scenario,
                           streams=self.spec.resolved_streams, entropy=self.spec.seed, run=unit)

    def measure_model(self, m: int, model: NgramTable) -> None:
        self.measure(m, model, model.counts[None], [model])


def _run_table(p0: NgramTable, counts: np.ndarray) -> NgramTable:
    """One run's model of the fixed-contexts loop as a table of its own (zero counts out)."""
    keep = counts > 0
    return NgramTable.from_grams(p0.grams[keep], counts[keep], p0.order, p0.vocab_size)

