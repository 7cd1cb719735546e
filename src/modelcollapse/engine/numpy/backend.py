"""What the generation loop (:mod:`modelcollapse.engine.loop`) asks of the numpy backend: the
history, metrics and records of one chunk of runs, and the array operations of its state."""

from __future__ import annotations

import contextlib

import numpy as np

from ...rng import RUN_BLOCK
from ...scenarios import Scenario
from ..plan import Plan
from ..recorder import Recorder
from . import fixed_corpus
from .counts import CountHistory
from .history import TokenHistory
from .meter import ModelMeter
from .sampling import RowStreams, keep_rows, rows_of, rows_per_block

__all__ = ["NumpyBackend"]


class _Ops:
    """The array operations of the loop's per-row state, on numpy arrays (the host's)."""

    #: Whether the state is on the host (asking it costs nothing).
    on_host = True
    where = staticmethod(np.where)
    isnan = staticmethod(np.isnan)

    @staticmethod
    def full(shape, value, dtype: str) -> np.ndarray:
        return np.full(shape, value, dtype=dtype)

    @staticmethod
    def roll_up(window: np.ndarray) -> np.ndarray:
        return np.roll(window, -1, axis=0)

    @staticmethod
    def rows(mask: np.ndarray) -> np.ndarray:
        """The rows ``mask`` selects, as the state's arrays take them."""
        return mask


class NumpyBackend:
    """Chunks of runs on numpy arrays, on the CPU."""

    #: No chunk is retried smaller: numpy's per-run state is bounded by the plan's chunk.
    OutOfMemory: tuple = ()

    def __init__(self, plan: Plan, p_live: np.ndarray, at_p0: dict[str, np.ndarray],
                 scenario: Scenario):
        """``at_p0``: the metrics of each context's p(0) (name → one value per context)."""
        self.plan, self.p_live, self.at_p0, self.scenario = plan, p_live, at_p0, scenario

    def context(self):
        return contextlib.nullcontext()

    def release(self) -> None:
        """Nothing is cached between chunks."""

    def chunk(self, recorder: Recorder, first_run: int, runs: int) -> NumpyChunk:
        return NumpyChunk(self, recorder, first_run, runs)


class NumpyChunk:
    """Runs ``first_run`` … ``first_run + runs − 1``: their history, metrics and records.

    Rows still simulated are ``local`` (chunk positions, ascending); they write to the
    recorder's global rows ``where``, a slice until some run stops.
    """

    ops = _Ops
    drop_share = 0.0  # drop absorbed runs as soon as the loop looks

    def __init__(self, backend: NumpyBackend, recorder: Recorder, first_run: int, runs: int):
        plan, p_live = backend.plan, backend.p_live
        self.plan, self.scenario, self.recorder = plan, backend.scenario, recorder
        self.at_p0 = backend.at_p0
        n_contexts = plan.n_contexts
        rows = runs * n_contexts
        self.first_row = first_run * n_contexts
        self.where: slice | np.ndarray = slice(self.first_row, self.first_row + rows)
        recorder.begin_chunk(self.where)
        self.local = np.arange(rows)
        self.n_alive = rows
        row_context = np.tile(np.arange(n_contexts), runs)
        streams = RowStreams(plan.entropy, first_run // RUN_BLOCK,
                             rows_per_block(runs, n_contexts, first_run))
        if plan.representation == "counts":
            # The compiled route draws counts with samplers of its own, the numpy route with
            # Generator.multinomial: both exact, each reproducible on its own.
            self.history = CountHistory(self.scenario, p_live, row_context, streams,
                                        plan.n_generations, compiled=plan.route != "numpy")
        else:
            self.history = TokenHistory(self.scenario, p_live, row_context, streams,
                                        plan.n_generations)
        self.true = rows_of(p_live, row_context)
        self.real_dirac = np.where(self.true.max(axis=1) >= 1.0, self.true.argmax(axis=1), -1)
        self.meter = ModelMeter(self.true, plan.metrics, compiled=plan.route != "numpy")
        self.last_values: dict[str, np.ndarray] = {}

    # --- a generation ------------------------------------------------------------------------
    def measure(self, m: int, model) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The metrics of ``model`` per row and its Dirac token (−1 where it is not one). With
        p(1) (m = 1) known, generation 0's metrics are recorded too."""
        values, dirac = self.meter(model)
        if m == 1:
            self.recorder.record(0, self.where, self._generation0())
        return values, dirac

    def _generation0(self) -> dict[str, np.ndarray]:
        """The metrics of p(0) per row: those of each context's p(0), and ‖p(0) − p(1)‖₁
        (taken at m = 1, before any row stops)."""
        row_context = self.history.row_context
        values = {name: value[row_context] for name, value in self.at_p0.items()}
        if "l1_to_first" in self.plan.metrics:
            values["l1_to_first"] = np.abs(self.true - self.meter.first).sum(axis=1)
        return values

    def record(self, m: int, values: dict[str, np.ndarray]) -> None:
        self.recorder.record(m, self.where, values)
        self.last_values = values

    def snapshot(self, m: int, model) -> None:
        self.recorder.snapshot(m, self.where, model.counts / model.size)

    def span_end(self, m: int) -> int | None:
        """The fixed-corpus route runs generations 2 … G in compiled code: real data feeds
        every generation, so no run stops after p(1) (those with a Dirac p(0) have)."""
        if m == 2 and self.plan.route == "fixed-corpus":
            return self.plan.n_generations
        return None

    def span(self, loop, m: int, last: int) -> None:
        fixed_corpus.run_generations(self.history, self.meter, self.true, self.where,
                                     loop.collapse_time, m, last, self.recorder, loop.bar,
                                     self.plan.threads, self.plan.n_contexts)

    # --- runs that stop ----------------------------------------------------------------------
    def check(self, loop, m: int) -> bool:
        """Drop the runs absorbed by generation m; True when none is left."""
        return loop.drop(loop.settled, m)

    def settle(self, settled: np.ndarray, gone: np.ndarray, keep: np.ndarray, m: int) -> None:
        """Rows ``gone`` stop after generation m; the rest (``keep``) go on. Their metrics of
        generation m, those of their Dirac mass, hold from then on."""
        self.recorder.settle(self.first_row + self.local[gone], m,
                             {name: value[gone] for name, value in self.last_values.items()})
        self.n_alive -= int(settled.sum())
        if not self.n_alive:
            return
        self.history.keep(keep, keep)
        self.meter.keep(keep)
        self.true = keep_rows(self.true, keep)
        self.local = self.local[keep]
        self.where = self.first_row + self.local

    def write_outcomes(self, rows, collapse_time, absorption_time, absorbed_token) -> None:
        """The outcomes of ``rows`` (among those still simulated; None: all of them)."""
        rows = slice(None) if rows is None else rows
        at = self.first_row + self.local[rows]
        out = self.recorder.outcomes
        out["collapse_time"][at] = collapse_time[rows]
        out["absorption_time"][at] = absorption_time[rows]
        out["absorbed_token"][at] = absorbed_token[rows]

    def finish(self) -> None:
        self.recorder.end_chunk()
