"""The recursive train-generate loop of the statistical model (paper §2.2, eq. 5), numpy backend.

State: for every row (= one run × one context) each stored model is kept as its training
tokens (eq. 2: the fitted model is their empirical distribution) plus their counts over the
live support. A generation asks the scenario for the training set of model m, counts it,
and records the metrics. Every run and context advances in one vectorised step.

Two facts keep it fast: drawing from a model is an index draw and a gather (see sampling.py),
and a run that is *absorbed* — its last ``scenario.lag`` models are the same Dirac mass and no
real data feeds it — can never change again, so it leaves the batch and its constant metrics
enter the recorder's per-generation sums once (recorder.py).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import _kernels, fixed_corpus
from ._system import loop_threads
from ._validation import check_choice, check_int, check_probabilities
from .meter import ModelMeter
from .metrics import absorbed_values, distribution_metrics, resolve_metrics
from .recorder import TRAJECTORY_MEMORY_MB, Recorder, kept_runs, metric_shift, run_bytes
from .results import Result, StreamedStore, build_result
from .rng import RUN_BLOCK, resolve_entropy
from .sampling import (
    TOKEN_DTYPE,
    InverseCDF,
    RowStreams,
    count_tokens,
    draw_from_p0,
    draw_tokens,
    gather_rows,
    keep_rows,
    rows_of,
    rows_per_block,
)
from .scenarios import Scenario
from .trajectories import ZarrTrajectories

__all__ = ["History", "Model", "run_loop"]

#: How the torch backend holds a model: "tokens" (index draw + gather), "counts" (conditional
#: binomials), "auto" (counts when the draws per model are many times the live support); the
#: numpy backend holds tokens and takes "auto" alone.
REPRESENTATIONS = ("auto", "tokens", "counts")
#: Runs per chunk unless asked otherwise: bounds the engine's per-run state (a model's tokens
#: and counts, p(1)); results do not depend on it.
CHUNK_RUNS = 100_000


class Model:
    """A fitted model per row (eq. 2): its training tokens (rows, n^(m)), their counts (rows, k).

    A model trained on a *base* model's data plus new draws (the partially synthetic loop:
    the fixed corpus plus n samples) keeps the two parts apart: drawing from it picks an index
    in either part, and its metrics can be updated from the new draws alone (DeltaMetrics).
    The concatenated tokens and the full counts are only built when something asks for them.
    """

    def __init__(self, n_live: int, tokens: np.ndarray, base: Model | None = None):
        self.n_live = n_live
        self.base = base
        self.extra = tokens if base is not None else None
        self._tokens = tokens if base is None else None
        self._counts: np.ndarray | None = None
        self.size = tokens.shape[1] + (base.size if base is not None else 0)

    @property
    def tokens(self) -> np.ndarray:
        if self._tokens is None:
            self._tokens = np.concatenate([self.base.tokens, self.extra], axis=1)
        return self._tokens

    @property
    def counts(self) -> np.ndarray:
        if self._counts is None:
            if self.base is None:
                self._counts = count_tokens(self._tokens, self.n_live)
            else:
                self._counts = self.base.counts + count_tokens(self.extra, self.n_live)
        return self._counts

    def draw(self, size: int, streams: RowStreams) -> np.ndarray:
        """``size`` draws per row: an index into the training tokens, then a gather."""
        if self._tokens is not None:
            return draw_tokens(self._tokens, size, streams)
        index = streams.integers(self.size, size)
        from_base = gather_rows(self.base.tokens, np.minimum(index, self.base.size - 1))
        from_extra = gather_rows(self.extra, np.maximum(index - self.base.size, 0))
        return np.where(index < self.base.size, from_base, from_extra)

    def keep(self, mask: np.ndarray) -> Model:
        if self.base is None:
            kept = Model(self.n_live, self._tokens[mask])
        else:
            kept = Model(self.n_live, self.extra[mask], base=self.base.keep(mask))
        if self._counts is not None:
            kept._counts = self._counts[mask]
        return kept


class History:
    """What a scenario may draw on when it builds model m (see scenarios.py)."""

    def __init__(self, scenario: Scenario, p_live: np.ndarray, row_context: np.ndarray,
                 streams: RowStreams, n_generations: int):
        self.scenario = scenario
        self.n_live = p_live.shape[1]
        self.row_context = row_context
        self.streams = streams
        self._p0 = InverseCDF(p_live)
        self._models: dict[int, Model] = {}
        self._corpus: Model | None = None
        self._published: np.ndarray | None = None
        self._pool: np.ndarray | None = None
        self._capacity = n_generations + 1

    # --- what scenarios call -------------------------------------------------------------
    def draw(self, t: int, size: int) -> np.ndarray:
        """``size`` fresh draws per row from model t (t = 0: from p(0) itself)."""
        if t == 0:
            return draw_from_p0(self._p0, self.row_context, size, self.streams)
        return self._models[t].draw(size, self.streams)

    def corpus(self) -> np.ndarray:
        """The fixed real corpus, (rows, N): drawn from p(0) once, reused every generation."""
        return self.corpus_model().tokens

    def corpus_model(self) -> Model:
        if self._corpus is None:
            size = self.scenario.corpus_size()
            self._corpus = self.model(self.draw(0, size))
        return self._corpus

    def model(self, tokens: np.ndarray, base: Model | None = None) -> Model:
        """Fit a model on ``tokens`` (eq. 2), after the training tokens of ``base`` if given."""
        return Model(self.n_live, tokens.astype(TOKEN_DTYPE, copy=False), base=base)

    def stored(self, t: int) -> Model:
        return self._models[t]

    def concat(self, parts: list[np.ndarray]) -> np.ndarray:
        """Join draws into one training set (tokens side by side)."""
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def draw_pooled(self, m: int, size: int) -> np.ndarray:
        """Draws for the random pool (§4.2): each sample's source generation is uniform on
        0 … m−1; generation 0 is p(0), generation t ≥ 1 the model p(t)."""
        source = self.streams.integers(m, size)
        real = self.draw(0, size)
        if m == 1:
            return real
        index = self.streams.integers(self._pool.shape[2], size)
        rows = np.arange(source.shape[0])[:, None]
        synthetic = self._pool[np.maximum(source, 1), rows, index]
        return np.where(source == 0, real, synthetic)

    def publish(self, t: int, tokens: np.ndarray) -> None:
        """Keep the data model t generated (accumulate scenarios); the corpus comes first."""
        if self._published is None:
            self._published = self.corpus()
        self._published = np.concatenate([self._published, tokens.astype(TOKEN_DTYPE)], axis=1)

    def subsample_published(self, size: int) -> np.ndarray:
        """``size`` samples per row drawn without replacement from all published data."""
        pool = self._published
        if size >= pool.shape[1]:
            return pool.copy()
        keys = self.streams.random(pool.shape[1])
        chosen = np.argpartition(keys, size - 1, axis=1)[:, :size]
        return gather_rows(pool, chosen)

    # --- what the loop calls ----------------------------------------------------------------
    def store(self, m: int, model: Model) -> None:
        self._models[m] = model
        lag = self.scenario.lag
        if lag is not None:
            self._models.pop(m - lag, None)
        elif self.scenario.pooled:
            # The pool draws from every earlier model: one preallocated array, tokens only.
            del self._models[m]
            if self._pool is None:
                shape = (self._capacity, model.tokens.shape[0], model.size)
                self._pool = np.zeros(shape, dtype=TOKEN_DTYPE)
            self._pool[m] = model.tokens

    def keep(self, mask: np.ndarray) -> None:
        """Drop rows (runs that stopped) everywhere."""
        self.row_context = self.row_context[mask]
        self.streams.keep(mask)
        self._models = {t: model.keep(mask) for t, model in self._models.items()}
        if self._corpus is not None:
            self._corpus = self._corpus.keep(mask)
        if self._published is not None:
            self._published = self._published[mask]
        if self._pool is not None:
            self._pool = self._pool[:, mask]


def _live_support(p0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map each context's support to live coordinates 0 … k−1 (k = largest support).

    Returns ``p_live`` (contexts, k), zero-padded, and ``token_ids`` (contexts, k): the
    vocabulary id of each live coordinate (−1 for padding).
    """
    k = int(np.count_nonzero(p0 > 0, axis=1).max())
    p_live = np.zeros((p0.shape[0], k))
    token_ids = np.full((p0.shape[0], k), -1, dtype=np.int64)
    for c, row in enumerate(p0):
        ids = np.flatnonzero(row > 0)
        p_live[c, : ids.size] = row[ids]
        token_ids[c, : ids.size] = ids
    return p_live, token_ids


def run_loop(p0: np.ndarray, scenario: Scenario, *, n_runs: int, n_generations: int,
             seed: int | np.random.SeedSequence | None = None,
             metrics: Sequence[str] | None = None, stop_when_absorbed: bool = True,
             chunk_runs: int | None = None, progress: bool | None = None,
             backend: str = "numpy", device: str = "cpu", representation: str = "auto",
             compiled: bool | None = None, threads: int | None = None,
             trajectories: str | int = "auto",
             trajectory_memory_mb: float = TRAJECTORY_MEMORY_MB,
             store: str | Path | None = None, spec: dict | None = None) -> Result:
    """Run the recursive loop for ``n_runs`` independent runs of ``n_generations`` generations.

    ``p0`` is (vocab,) or (contexts, vocab): one next-token distribution per context, each
    context an independent chain (eq. 2 fits every context separately). Runs are processed in
    chunks of ``chunk_runs`` (a multiple of the run block; default: at most
    :data:`CHUNK_RUNS`); results do not depend on it. Returns a
    :class:`~modelcollapse.results.Result`: per-generation means and standard errors of every
    metric (generation 0 = p(0)), per-run outcomes and last metrics, and the trajectories
    (run, context, generation) of the runs ``trajectories`` asks for (see
    :func:`~modelcollapse.recorder.kept_runs`: ``"auto"``, ``"all"``, ``"none"`` or a number
    of runs, within ``trajectory_memory_mb``). With a ``store`` (a Zarr path) the result is
    saved there; kept trajectories larger than ``trajectory_memory_mb`` then stream to it
    window by window as the loop runs, and the result returned reads them lazily.

    ``backend="torch"`` runs the same loop with PyTorch on ``device`` ("cpu" or "cuda");
    each backend is reproducible on its own, and the two agree in distribution. Its
    ``representation`` of a model ("tokens", "counts" or "auto", see docs/backends.md) is
    exact either way; the numpy backend takes only "auto".
    ``compiled`` chooses the numpy backend's metric route: numba kernels (default when numba
    is installed) or numpy passes. The draws are the same; float metrics agree to rounding.
    ``threads`` caps the threads of the compiled partially synthetic route (default:
    ``$MODELCOLLAPSE_THREADS``, else every available core); results do not depend on it.
    """
    p0 = check_probabilities(p0, "p0")
    p0 = p0[None, :] if p0.ndim == 1 else p0
    n_runs = check_int(n_runs, "runs", low=1)
    n_generations = check_int(n_generations, "generations", low=1)
    names = resolve_metrics(metrics)
    entropy = resolve_entropy(seed)
    n_contexts = p0.shape[0]
    kept, note = kept_runs(trajectories, n_runs=n_runs, n_contexts=n_contexts,
                           n_generations=n_generations, n_metrics=len(names),
                           memory_mb=trajectory_memory_mb, streamed=store is not None)
    if note:
        print(note, file=sys.stderr)
    streamed = (store is not None and kept * run_bytes(len(names), n_contexts, n_generations)
                > trajectory_memory_mb * 1e6)
    chunk = (min(n_runs, CHUNK_RUNS) if chunk_runs is None
             else check_int(chunk_runs, "chunk_runs", low=1))
    threads = loop_threads(None if threads is None else check_int(threads, "threads", low=1))
    if chunk % RUN_BLOCK and chunk < n_runs:
        raise ValueError(f"The 'chunk_runs' parameter of simulate must be a multiple of "
                         f"{RUN_BLOCK} (the run block). Got {chunk} instead.")

    check_choice(backend, "backend", ("numpy", "torch"))
    check_choice(representation, "representation", REPRESENTATIONS)
    if backend == "numpy" and representation != "auto":
        raise ValueError(f"The 'representation' parameter of simulate is {representation!r}, "
                         f"which needs backend 'torch'; the numpy backend takes 'auto'.")
    staging = StreamedStore(store) if streamed else None
    sink = (ZarrTrajectories(staging.store, names, kept, n_contexts, n_generations,
                             trajectory_memory_mb * 1e6) if streamed else None)
    try:
        if backend == "torch":
            from .torch_backend import run_loop_torch

            result = run_loop_torch(p0, scenario, n_runs=n_runs, n_generations=n_generations,
                                    entropy=entropy, names=names, chunk_runs=chunk_runs,
                                    progress=progress, device=device, spec=spec,
                                    stop_when_absorbed=stop_when_absorbed,
                                    representation=representation, kept_runs=kept, sink=sink)
        else:
            result = _run_numpy(p0, scenario, n_runs, n_generations, entropy, names, chunk,
                                stop_when_absorbed, progress, compiled, threads, kept, sink,
                                spec)
    except BaseException:
        if staging is not None:
            staging.discard()
        raise
    if staging is not None:
        return staging.finish(result)
    if store is not None:
        result.save(store)
    return result


def _run_numpy(p0, scenario, n_runs, n_generations, entropy, names, chunk, stop_when_absorbed,
               progress, compiled, threads, kept, sink, spec) -> Result:
    n_contexts = p0.shape[0]
    p_live, token_ids = _live_support(p0)
    recorder = Recorder(n_runs * n_contexts, n_contexts, n_generations, names,
                        metric_shift(p_live, names), kept * n_contexts, sink)
    bar = tqdm(total=n_runs * n_generations, unit="run-gen", disable=_disable(progress),
               desc=scenario.name, leave=False)
    for first_run in range(0, n_runs, chunk):
        runs = min(chunk, n_runs - first_run)
        rows = slice(first_run * n_contexts, (first_run + runs) * n_contexts)
        recorder.begin_chunk(rows)
        _run_chunk(p_live, scenario, first_run, runs, n_generations, entropy, names,
                   stop_when_absorbed, recorder, rows, bar,
                   _kernels.AVAILABLE if compiled is None else compiled, threads)
        recorder.end_chunk()
    bar.close()
    return build_result(recorder, p0, token_ids, n_runs, n_contexts, names,
                        scenario=scenario, entropy=entropy, spec=spec)


def _disable(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


def _run_chunk(p_live, scenario, first_run, runs, n_generations, entropy, names,
               stop_when_absorbed, recorder, rows, bar, compiled, threads) -> None:
    n_contexts = p_live.shape[0]
    row_context = np.tile(np.arange(n_contexts), runs)
    streams = RowStreams(entropy, first_run // RUN_BLOCK,
                         rows_per_block(runs, n_contexts, first_run))
    history = History(scenario, p_live, row_context, streams, n_generations)
    true = rows_of(p_live, row_context)
    alive = np.arange(rows.start, rows.stop)  # global row ids still simulated
    collapse_time = recorder.outcomes["collapse_time"]

    real_dirac = np.where(true.max(axis=1) >= 1.0, true.argmax(axis=1), -1)
    lag = scenario.lag
    window = np.full((lag if lag is not None else 1, alive.size), -2, dtype=np.int64)
    settled = np.zeros(alive.size, dtype=bool)
    meter = ModelMeter(true, names, compiled=compiled)
    where = rows  # alive rows: a slice until some runs stop
    any_dirac_in_window = False

    for m in range(1, n_generations + 1):
        if m == 2 and fixed_corpus.applies(scenario, compiled):
            # Real data feeds every generation: no run stops from here on (those with a Dirac
            # p(0) settled at m = 1), so the rest runs row by row in compiled code.
            fixed_corpus.run_generations(history, meter, true, alive, m, n_generations,
                                         recorder, n_contexts, bar, threads)
            break
        model = scenario.training_set(m, history)
        history.store(m, model)
        values, dirac = meter(model)
        if m == 1:
            recorder.record(0, where, _generation0(p_live, row_context, true, meter, names))
        recorder.record(m, where, values)
        bar.update(alive.size // n_contexts if n_contexts else 0)
        dirac_now = bool(values["collapsed"].any())
        if not (dirac_now or any_dirac_in_window):
            continue  # no Dirac model in reach anywhere: nothing to record or absorb
        newly = values["collapsed"] & np.isnan(collapse_time[where])
        collapse_time[alive[newly]] = m

        window = np.roll(window, -1, axis=0)
        window[-1] = dirac
        any_dirac_in_window = bool((window >= 0).any())
        absorbed = _absorbed(window, dirac, real_dirac, scenario, m) & ~settled
        if np.any(absorbed):
            start = m - (lag - 1 if lag is not None else m - 1)
            recorder.outcomes["absorption_time"][alive[absorbed]] = start
            recorder.outcomes["absorbed_token"][alive[absorbed]] = dirac[absorbed]
            if stop_when_absorbed and m < n_generations:
                recorder.settle(alive[absorbed], m,
                                absorbed_values(dirac[absorbed], meter.first_of(absorbed),
                                                true[absorbed], names))
                keep = ~absorbed
                history.keep(keep)
                meter.keep(keep)
                alive, true = alive[keep], keep_rows(true, keep)
                where = alive
                real_dirac, window, settled = real_dirac[keep], window[:, keep], settled[keep]
                bar.update((n_generations - m) * int(absorbed.sum()) // max(n_contexts, 1))
                if alive.size == 0:
                    break
            else:
                settled |= absorbed


def _generation0(p_live, row_context, true, meter, names) -> dict[str, np.ndarray]:
    """The metrics of p(0) per row: those of each context's p(0), and ‖p(0) − p(1)‖₁, known
    once p(1) is."""
    at_p0 = distribution_metrics(p_live, None, p_live, names)
    values = {name: value[row_context] for name, value in at_p0.items()}
    if "l1_to_first" in names:
        values["l1_to_first"] = np.abs(true - meter.first).sum(axis=1)
    return values


def _absorbed(window: np.ndarray, dirac: np.ndarray, real_dirac: np.ndarray,
              scenario: Scenario, m: int) -> np.ndarray:
    """Rows whose every possible source of future samples is the same Dirac mass."""
    lag = scenario.lag
    same = (window == dirac).all(axis=0) & (dirac >= 0)
    if lag is None or scenario.uses_real or m < lag:
        # Real data (or p(0) inside the window) keeps feeding the run: only a Dirac p(0) with
        # the same token lets it settle.
        return same & (real_dirac == dirac)
    return same
