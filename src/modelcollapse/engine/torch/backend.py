"""What the generation loop (:mod:`modelcollapse.engine.loop`) asks of the torch backend, on
the CPU or a CUDA device: the history, metrics and records of one chunk of runs, and the array
operations of its state.

Every generation stays on the device: metrics are reduced there to the recorder's
per-generation sums (:mod:`.recording`), and the host looks at the device only at the plan's
check generations, to drop absorbed runs (on CUDA's fused route one span late: see
``LAGGED_CHECKS``). A run absorbed between checks keeps being simulated as the Dirac mass it
is, which is exact: its metrics are those of the Dirac mass, and its outcomes were recorded
when it was absorbed. The sums, outcomes and last metrics of a chunk reach the host once,
when the chunk is done.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from ...rng import RUN_BLOCK
from ...scenarios import Scenario
from ..numpy.sampling import rows_per_block
from ..plan import Plan
from ..recorder import Recorder
from .fused import fused_steps, generation_seed
from .history import CountHistory, TokenHistory, TorchModel
from .metrics import CountScratch, Truth, dense_metrics
from .recording import ChunkRecorder
from .streams import TorchRowStreams

__all__ = ["TorchBackend"]

#: Whether the fused route reads each check one span late, per device type. The runs settled
#: at a check are copied to the host behind the span that settled them, and the next span is
#: queued before the host reads them: the device computes while the host decides which runs
#: to drop, and it drops them at the next check. As the fused draws follow the global row,
#: when runs are dropped changes no result. On a CPU the device is the host: there is nothing
#: to overlap, and the lag would only simulate absorbed runs for one span more.
LAGGED_CHECKS = {"cpu": False, "cuda": True}
#: Most generations in one span of the fused route: a span's metrics are (rows, steps)
#: tensors on the device until they are reduced.
SPAN_GENERATIONS = 32
#: On the fused route a check drops the absorbed runs (compacting every per-row array) once
#: they are at least this share of the runs still simulated; fewer go on as the Dirac masses
#: they are, which is exact, and as the fused draws follow the global row, the results do
#: not change. A drop costs a few milliseconds of host work and a pass over p(1) (rows × k
#: float64); a generation of the fused kernel costs ~2 ns per row (H100). The generic route
#: drops at every check: its draws come from per-block streams, so when runs stop must not
#: depend on the chunk.
FUSED_DROP_SHARE = 1 / 16


class _Ops:
    """The array operations of the loop's per-row state, on tensors of one device."""

    #: Whether the state is on the host (asking it costs nothing).
    on_host = False
    where = staticmethod(torch.where)
    isnan = staticmethod(torch.isnan)

    def __init__(self, dev: torch.device):
        self.dev = dev

    def full(self, shape, value, dtype: str) -> torch.Tensor:
        return torch.full(shape, value, dtype=getattr(torch, dtype), device=self.dev)

    @staticmethod
    def roll_up(window: torch.Tensor) -> torch.Tensor:
        return torch.roll(window, -1, dims=0)

    def rows(self, mask: np.ndarray) -> torch.Tensor:
        """Where the host's ``mask`` holds, as an index tensor on the device, copied from
        page-locked memory without waiting for the device (from pageable memory the copy
        waits for it). (A boolean mask on a CUDA device would make the host wait to learn
        how many rows it selects.)"""
        where = torch.from_numpy(np.flatnonzero(mask))
        if self.dev.type != "cuda":
            return where
        return where.pin_memory().to(self.dev, non_blocking=True)


class TorchBackend:
    """Chunks of runs as tensors on one device; a chunk that does not fit in the device's
    memory is run again as smaller chunks (see the loop)."""

    OutOfMemory = torch.cuda.OutOfMemoryError

    def __init__(self, plan: Plan, p_live: np.ndarray, at_p0: dict[str, np.ndarray],
                 scenario: Scenario):
        """``at_p0``: the metrics of each context's p(0) (name → one value per context)."""
        self.plan, self.p_live, self.at_p0, self.scenario = plan, p_live, at_p0, scenario
        self.dev = torch.device(plan.device)
        self.ops = _Ops(self.dev)

    def context(self):
        # Triton launches on the current CUDA device, whatever device its tensors are on.
        return torch.cuda.device(self.dev) if self.dev.type == "cuda" \
            else contextlib.nullcontext()

    def release(self) -> None:
        """Free the failed chunk's cached memory (its tensors are unreachable by now)."""
        torch.cuda.empty_cache()

    def chunk(self, recorder: Recorder, first_run: int, runs: int) -> TorchChunk:
        return TorchChunk(self, recorder, first_run, runs)


class TorchChunk:
    """Runs ``first_run`` … ``first_run + runs − 1`` on the device."""

    def __init__(self, backend: TorchBackend, recorder: Recorder, first_run: int, runs: int):
        plan, p_live, dev = backend.plan, backend.p_live, backend.dev
        self.plan, self.scenario, self.recorder, self.dev = plan, backend.scenario, recorder, dev
        self.ops = backend.ops
        names, n_contexts, n_generations = plan.metrics, plan.n_contexts, plan.n_generations
        fused = plan.route == "fused"
        rows = runs * n_contexts
        first_row = first_run * n_contexts
        self.n_alive = rows  # rows still simulated
        # Each row's place in the chunk (in the recorder and the outcomes), also on the host.
        self.local = torch.arange(rows, device=dev)
        self.local_host = np.arange(rows)
        self.rows = slice(first_row, first_row + rows)  # in the recorder
        # The fused route draws by global row id and by generation, both kept on the device.
        self.row_ids = self.local + first_row if fused else None
        self.seeds = (torch.tensor([generation_seed(plan.entropy, m)
                                    for m in range(2, n_generations + 1)], dtype=torch.int64,
                                   device=dev) if fused else None)
        row_context = torch.arange(n_contexts, device=dev).repeat(runs)
        streams = TorchRowStreams(plan.entropy, first_run // RUN_BLOCK,
                                  rows_per_block(runs, n_contexts, first_run), dev)
        p_live_t = torch.as_tensor(p_live, dtype=torch.float64, device=dev)
        counts = plan.representation == "counts"
        kind = CountHistory if counts else TokenHistory
        self.history = kind(self.scenario, p_live_t, row_context, streams, n_generations)
        self.truth = Truth(p_live_t, row_context)
        # Generation 0 is p(0) itself; its metrics are the same on every backend, computed
        # once per context (a (rows, k) copy of p(0) would cost rows · k work and memory).
        # They are recorded with generation 1, which gives l1_to_first its value (p(1)).
        self.generation0 = {name: torch.as_tensor(values, device=dev)[row_context]
                            for name, values in backend.at_p0.items()}
        dirac_p0 = torch.where(p_live_t.amax(dim=1) >= 1.0, p_live_t.argmax(dim=1), -1)
        self.real_dirac = dirac_p0[row_context]
        # Collapse time, absorption time and absorbed token of the rows that stopped, by
        # place in the chunk: the host reads them once, when the chunk is done.
        self.outcomes = torch.full((3, rows), float("nan"), dtype=torch.float64, device=dev)
        self.scratch = None if counts else CountScratch(rows, p_live.shape[1], dev)
        # p(1) is kept only when a metric needs it (rows, k) float64.
        self.first: torch.Tensor | None = None
        self.first_pending = "l1_to_first" in names
        self.record_on_device = ChunkRecorder(recorder, first_row, rows, dev)
        self.drop_share = FUSED_DROP_SHARE if fused else 0.0
        # The fused route may read each check one span late (see LAGGED_CHECKS): the rows
        # settled at the check before, read while the span since ran.
        self.lagged = fused and LAGGED_CHECKS[dev.type]
        self.pending: _Snapshot | None = None

    # --- a generation ------------------------------------------------------------------------
    def measure(self, m: int, model: TorchModel):
        """The metrics of ``model`` per row and its Dirac token (−1 where it is not one). With
        p(1) (m = 1) known, generation 0's metrics are recorded too."""
        if self.first_pending:
            # p(1), and ‖p(0) − p(1)‖₁ as the generation-0 value of l1_to_first.
            self.first_pending = False
            self.first = model.probabilities()
            self.generation0["l1_to_first"] = (self.truth.rows - self.first).abs().sum(dim=1)
        if m == 1:
            self.record(0, self.generation0)
        if model.tokens is not None and not model.counted:
            names = self.plan.metrics
            return self.scratch.token_metrics(model.tokens, self.first, self.truth, names)
        return dense_metrics(model.counts, model.size, self.first, self.truth, self.plan.metrics)

    def record(self, m: int, values: dict[str, torch.Tensor]) -> None:
        self.record_on_device.write(m, {name: value[:, None] for name, value in values.items()})

    def snapshot(self, m: int, model: TorchModel) -> None:
        where = self.rows.start + self.local_host
        self.recorder.snapshot(m, where, model.probabilities().cpu().numpy())

    def span_end(self, m: int) -> int | None:
        """On the fused route, the last generation of the span that starts at m ≥ 2: the next
        check generation, the next multiple of :data:`SPAN_GENERATIONS` or the last
        generation, whichever comes first."""
        if self.row_ids is None or m < 2:
            return None
        last = min(self.plan.n_generations, -(-m // SPAN_GENERATIONS) * SPAN_GENERATIONS)
        if self.plan.stop_when_absorbed:
            last = min(last, -(-m // self.plan.check_every) * self.plan.check_every)
        return last

    def span(self, loop, m: int, last: int) -> None:
        """Models m … last of a fixed-step scenario and their metrics, in one kernel (see
        .fused), with their collapse and absorption."""
        self.scratch = None  # the kernel counts in registers: no (rows, k) array to carry
        previous = self.history.stored(m - 1)
        step = self.scenario.fixed_step
        span = fused_steps(previous.tokens, self.row_ids, self.seeds[m - 2:last - 1],
                           self.plan.metrics, self.first, self.truth.rows,
                           corpus=self.history.corpus() if step.corpus else None,
                           draws=step.draws)
        self.history.store(last, TorchModel(span.tokens, span.tokens.shape[1],
                                            previous.n_live))
        self.record_on_device.write(m, span.metrics)
        newly = (span.onset >= 0) & torch.isnan(loop.collapse_time)
        onset = span.onset.to(torch.float64) + m
        loop.collapse_time = torch.where(newly, onset, loop.collapse_time)
        loop.window[-1] = span.dirac
        loop.bar.update((last - m + 1) * self.n_alive // max(self.plan.n_contexts, 1))
        if self.scenario.uses_real:
            # The corpus feeds every model: only runs whose p(0) is a Dirac mass settle, and
            # they did so at generation 1 (see absorbed_rows).
            return
        # Proposition 1: a run with no real data is absorbed the generation it collapses (a
        # fixed step draws from model m − 1 alone), into that Dirac mass, which every later
        # generation of the span reproduced.
        loop.absorption_time = torch.where(newly, onset, loop.absorption_time)
        loop.absorbed_token = torch.where(newly, span.dirac, loop.absorbed_token)
        loop.settled |= newly

    # --- runs that stop ----------------------------------------------------------------------
    def check(self, loop, m: int) -> bool:
        """Drop absorbed runs at check generation m; True when none is left. Lagged (see
        :data:`LAGGED_CHECKS`): the runs settled at the check before, whose copy to the host
        the next span was queued behind; else those settled now, which waits for the device."""
        if not self.lagged:
            return loop.drop(loop.settled.cpu().numpy(), m)
        pending, self.pending = self.pending, None
        if pending is not None and loop.drop(pending.read(), m):
            return True
        self.pending = _Snapshot(loop.settled)  # of the rows kept, in their new order
        return False

    def settle(self, settled: np.ndarray, gone: torch.Tensor, keep: torch.Tensor,
               m: int) -> None:
        """Rows ``gone`` stop after generation m; the rest (``keep``) go on. Their metrics of
        generation m, those of their Dirac mass, hold from then on (the recorder repeats the
        values it was given rather than computing the Dirac mass's apart: that keeps a
        stopped run's metrics constant to the last bit, and the fused route's results the
        same whenever runs stop, its kernel rounding as it computes)."""
        local_kept = self.local[keep]
        local_kept_host = self.local_host[~settled]
        self.record_on_device.settle(self.local[gone], self.local_host[settled], local_kept,
                                     local_kept_host, m)
        self.n_alive -= int(settled.sum())
        if not self.n_alive:
            return
        self.history.keep(keep, ~settled)
        self.truth.keep(keep)
        self.local, self.local_host = local_kept, local_kept_host
        for name in ("first", "row_ids"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[keep])
        if self.scratch is not None:
            self.scratch.keep(keep)

    def write_outcomes(self, rows, collapse_time, absorption_time, absorbed_token) -> None:
        """Put the outcomes of ``rows`` (indices among the rows still simulated; None: all)
        in their places in the chunk's outcomes, on the device."""
        if rows is None:
            rows = torch.arange(self.n_alive, device=self.dev)
        self.outcomes[:, self.local[rows]] = torch.stack(
            [collapse_time, absorption_time, absorbed_token.double()])[:, rows]

    def finish(self) -> None:
        """Every row's records and outcomes to the host recorder, in one copy each (token ids
        are exact in float64)."""
        self.record_on_device.finish()
        table = self.outcomes.cpu().numpy()
        out = self.recorder.outcomes
        out["collapse_time"][self.rows] = table[0]
        out["absorption_time"][self.rows] = table[1]
        out["absorbed_token"][self.rows] = table[2].astype(np.int64)


class _Snapshot:
    """A copy on the host of a device's bool vector, queued behind the work that wrote it:
    :meth:`read` waits for that work alone, not for what was queued after it."""

    def __init__(self, values: torch.Tensor):
        if values.device.type == "cuda":
            self.host = torch.empty(values.shape, dtype=torch.bool, pin_memory=True)
            self.host.copy_(values, non_blocking=True)
            self.ready = torch.cuda.Event()
            self.ready.record()
        else:
            self.host, self.ready = values.clone(), None

    def read(self) -> np.ndarray:
        if self.ready is not None:
            self.ready.synchronize()
        return self.host.numpy()
