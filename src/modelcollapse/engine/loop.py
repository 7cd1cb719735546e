"""The recursive train-generate loop of the statistical model (paper §2.2, eq. 5): the one
generation loop, for every backend and representation.

For every row (= one run × one context) a generation asks the scenario for the training set
of model m (eq. 5) from the chunk's history, fits it (eq. 2), records its metrics, and updates
the row's collapse time and absorption. A backend (:mod:`.numpy.backend`,
:mod:`.torch.backend`) supplies the history, the metrics and the array operations of one chunk
of runs; what happens in a generation, and when a run stops, is decided here.

A run that is *absorbed* — its last ``scenario.lag`` models are the same Dirac mass and no
real data feeds it — can never change again (Proposition 1 generalised), so at the plan's
check generations it leaves the batch and its constant metrics enter the recorder's
per-generation sums once (recorder.py); when every run has, the loop stops.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..metrics import distribution_metrics
from ..results import Result, StreamedStore, build_result
from ..rng import RUN_BLOCK
from ..scenarios import Scenario
from .plan import Plan
from .recorder import Recorder, metric_shift
from .trajectories import ZarrTrajectories

__all__ = ["absorbed_rows", "live_support", "run"]


def run(plan: Plan, p0: np.ndarray, scenario: Scenario, *, store: str | Path | None = None,
        progress: bool | None = None, spec: dict | None = None) -> Result:
    """Run ``plan`` on ``p0`` (contexts, vocab), validated, under ``scenario``.

    With a ``store`` (a Zarr path) the result is saved there; when the plan streams its kept
    trajectories, they go to the store window by window as the loop runs, the store is
    renamed into place only once whole, and the result returned reads them lazily.
    """
    if plan.note:
        print(plan.note, file=sys.stderr)
    staging = StreamedStore(store) if plan.streamed else None
    try:
        result = _run(plan, p0, scenario, staging, progress, spec)
    except BaseException:
        if staging is not None:
            staging.discard()
        raise
    if staging is not None:
        return staging.finish(result)
    if store is not None:
        result.save(store)
    return result


def _run(plan, p0, scenario, staging, progress, spec) -> Result:
    n_contexts, names = plan.n_contexts, plan.metrics
    p_live, token_ids = live_support(p0)
    # The metrics of each context's p(0): generation 0 of every run, and the shift of the
    # recorder's sums.
    at_p0 = distribution_metrics(p_live, None, p_live, names)
    sink = (ZarrTrajectories(staging.store, names, plan.kept_runs, n_contexts,
                             plan.n_generations, plan.trajectory_memory_mb * 1e6)
            if staging is not None else None)
    recorder = Recorder(plan.n_runs * n_contexts, n_contexts, plan.n_generations, names,
                        metric_shift(at_p0, names), plan.kept_runs * n_contexts, sink,
                        snapshots=plan.snapshots)
    backend = _backend(plan, p_live, at_p0, scenario)
    bar = tqdm(total=plan.n_runs * plan.n_generations, unit="run-gen", desc=scenario.name,
               disable=None if progress is None else not progress, leave=False)
    with backend.context(), contextlib.closing(bar):
        chunk_runs, first_run = plan.chunk_runs, 0
        while first_run < plan.n_runs:
            runs = min(chunk_runs, plan.n_runs - first_run)
            done = bar.n
            try:
                chunk = backend.chunk(recorder, first_run, runs)
                _ChunkLoop(plan, scenario, chunk, bar).run()
            except backend.OutOfMemory as exc:
                # A chunk reaches the recorder only once done, and results do not depend on
                # the chunking: the same runs again, fewer at a time.
                if runs <= RUN_BLOCK:
                    raise backend.OutOfMemory(
                        f"Not even {runs} runs at a time (a run block is {RUN_BLOCK}) fit in "
                        f"the memory of {plan.device}: use fewer metrics (l1_to_first keeps a "
                        f"(runs, support) array), a smaller support or another device."
                    ) from exc
                chunk_runs = max(RUN_BLOCK, runs // 2 // RUN_BLOCK * RUN_BLOCK)
                bar.n = done
                backend.release()
                warnings.warn(f"{runs} runs at a time did not fit in the memory of "
                              f"{plan.device}; running {chunk_runs} at a time (the results "
                              f"do not depend on it).", RuntimeWarning, stacklevel=3)
                continue
            first_run += runs
    result = build_result(recorder, p0, token_ids, plan.n_runs, n_contexts, names,
                          scenario=scenario, entropy=plan.entropy, spec=spec)
    result.data.attrs.update(plan.attrs())
    if plan.snapshots:
        result = _with_snapshots(result, recorder, plan, p0, p_live.shape[1], token_ids)
    return result


def _with_snapshots(result: Result, recorder: Recorder, plan: Plan, p0: np.ndarray, k: int,
                    token_ids: np.ndarray) -> Result:
    """The result with ``p_snapshot`` (trajectory_run, context, snapshot, token): the fitted
    distributions of the kept runs at the plan's snapshot generations (0 = p(0) itself), in
    vocabulary coordinates."""
    runs, (contexts, vocab) = plan.kept_runs, p0.shape
    live = recorder.snapshot_array(k).reshape(runs, contexts, -1, k)
    out = np.zeros((runs, contexts, len(plan.snapshots), vocab))
    later = [j for j, m in enumerate(plan.snapshots) if m >= 1]
    for c in range(contexts):
        ids = token_ids[c][token_ids[c] >= 0]
        for i, j in enumerate(later):
            out[:, c, j, ids] = live[:, c, i, : ids.size]
    if plan.snapshots[0] == 0:
        out[:, :, 0] = p0[None]
    data = result.data.assign(p_snapshot=(("trajectory_run", "context", "snapshot", "token"),
                                          out))
    return Result(data.assign_coords(snapshot=list(plan.snapshots),
                                     trajectory_run=np.arange(runs)))


def _backend(plan: Plan, p_live: np.ndarray, at_p0: dict[str, np.ndarray],
             scenario: Scenario):
    if plan.backend == "torch":
        from .torch.backend import TorchBackend

        return TorchBackend(plan, p_live, at_p0, scenario)
    from .numpy.backend import NumpyBackend

    return NumpyBackend(plan, p_live, at_p0, scenario)


def live_support(p0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def absorbed_rows(window, dirac, real_dirac, scenario: Scenario, m: int):
    """Rows whose every possible source of future samples is the same Dirac mass: the last
    ``lag`` models (``window``, their Dirac tokens, −1 where none) are the same Dirac mass
    ``dirac``, and no real data feeds the run — unless p(0) is that same Dirac mass.
    Arrays of either backend."""
    lag = scenario.lag
    same = (window == dirac).all(axis=0) & (dirac >= 0)
    if lag is None or scenario.uses_real or m < lag:
        # Real data (or p(0) inside the window) keeps feeding the run: only a Dirac p(0) with
        # the same token lets it settle.
        return same & (real_dirac == dirac)
    return same


class _ChunkLoop:
    """One chunk of runs through generations 1 … G.

    Per row still simulated it holds, in the backend's arrays: the collapse time, the window
    of the last ``lag`` models' Dirac tokens, whether the row is absorbed (``settled``), when
    and into which token. The chunk (a backend's) holds the history, measures models, records
    their metrics and drops rows.
    """

    def __init__(self, plan: Plan, scenario: Scenario, chunk, bar):
        self.plan, self.scenario, self.chunk, self.bar = plan, scenario, chunk, bar
        ops = chunk.ops
        rows = chunk.n_alive
        lag = scenario.lag
        self.window = ops.full((lag if lag is not None else 1, rows), -2, "int64")
        self.settled = ops.full((rows,), False, "bool")
        self.collapse_time = ops.full((rows,), np.nan, "float64")
        self.absorption_time = ops.full((rows,), np.nan, "float64")
        self.absorbed_token = ops.full((rows,), -1, "int64")
        self.real_dirac = chunk.real_dirac
        # Whether a Dirac model is in some row's window: until one is, nothing can be absorbed
        # (asked only where the state is on the host: a device would make the host wait).
        self.dirac_in_window = False

    def run(self) -> None:
        plan, chunk = self.plan, self.chunk
        G, per_run = plan.n_generations, max(plan.n_contexts, 1)
        m = 1
        while m <= G:
            last = chunk.span_end(m)
            if last is not None:
                chunk.span(self, m, last)  # generations m … last at once, bar included
            else:
                last = m
                model = self.scenario.training_set(m, chunk.history)
                chunk.history.store(m, model)
                values, dirac = chunk.measure(m, model)
                chunk.record(m, values)
                if m in plan.snapshots:
                    chunk.snapshot(m, model)
                self.advance(m, values["collapsed"], dirac)
                self.bar.update(chunk.n_alive // per_run)
            if plan.stop_when_absorbed and last < G and last % plan.check_every == 0:
                if chunk.check(self, last):
                    break
            m = last + 1
        else:
            chunk.write_outcomes(None, self.collapse_time, self.absorption_time,
                                 self.absorbed_token)
        chunk.finish()

    def advance(self, m: int, collapsed, dirac) -> None:
        """Collapse times, the window of recent Dirac tokens, absorption (Proposition 1)."""
        ops = self.chunk.ops
        if ops.on_host and not (collapsed.any() or self.dirac_in_window):
            return  # no Dirac model in reach anywhere: nothing to record or absorb
        newly = collapsed & ops.isnan(self.collapse_time)
        self.collapse_time = ops.where(newly, float(m), self.collapse_time)
        if self.window.shape[0] > 1:
            self.window = ops.roll_up(self.window)
        self.window[-1] = dirac
        if ops.on_host:
            self.dirac_in_window = bool((self.window >= 0).any())
        lag = self.scenario.lag
        absorbed = absorbed_rows(self.window, dirac, self.real_dirac, self.scenario, m)
        absorbed &= ~self.settled
        start = m - (lag - 1 if lag is not None else m - 1)
        self.absorption_time = ops.where(absorbed, float(start), self.absorption_time)
        self.absorbed_token = ops.where(absorbed, dirac, self.absorbed_token)
        self.settled |= absorbed

    def drop(self, settled: np.ndarray, m: int) -> bool:
        """Drop the rows ``settled`` (a host mask over the rows still simulated) marks, runs
        absorbed by generation m, once they are the chunk's ``drop_share`` of them: their
        metrics of generation m, those of their Dirac mass, hold for every later generation.
        (Fewer go on as the Dirac masses they are, which is exact.) True when none is left."""
        chunk = self.chunk
        count = int(settled.sum())
        if count < max(1, chunk.drop_share * settled.size) and count < settled.size:
            return False
        gone, keep = chunk.ops.rows(settled), chunk.ops.rows(~settled)
        chunk.write_outcomes(gone, self.collapse_time, self.absorption_time,
                             self.absorbed_token)
        chunk.settle(settled, gone, keep, m)
        self.bar.update((self.plan.n_generations - m) * count // max(self.plan.n_contexts, 1))
        if not chunk.n_alive:
            return True
        for name in ("real_dirac", "settled", "collapse_time", "absorption_time",
                     "absorbed_token"):
            setattr(self, name, getattr(self, name)[keep])
        self.window = self.window[:, keep]
        return False
