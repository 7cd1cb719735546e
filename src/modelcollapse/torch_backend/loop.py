"""The recursive loop (paper §2.2, eq. 5) on torch tensors, on the CPU or a CUDA device.

The same loop as :mod:`modelcollapse.loop` — same scenarios, metrics, stopping rule and
Result — with every generation kept on the device: metrics are reduced there to the
recorder's per-generation sums (:mod:`.recording`), and the host looks at the device only at
check generations (every ``CHECK_EVERY`` generations), to drop absorbed runs (on CUDA's fused
route, one span late: see ``LAGGED_CHECKS``). A run absorbed between checks keeps being
simulated as the Dirac mass it is, which is exact: its metrics are those of the Dirac mass,
and its outcomes were recorded when it was absorbed. The sums, outcomes and last metrics of
a chunk reach the host once, when the chunk is done.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .._validation import check_choice, check_int
from ..loop import REPRESENTATIONS, _absorbed, _disable, _live_support
from ..metrics import distribution_metrics
from ..recorder import Recorder, metric_shift
from ..results import Result, build_result
from ..rng import RUN_BLOCK
from ..sampling import rows_per_block
from ..scenarios import Scenario
from .fused import fused_steps, generation_seed, use_fused
from .history import CountHistory, TokenHistory, TorchModel, counts_ready, training_set
from .metrics import CountScratch, Truth, dense_metrics
from .recording import ChunkRecorder
from .streams import TorchRowStreams

__all__ = ["REPRESENTATIONS", "resolve_device", "run_loop_torch"]

#: Generations between looks at the device (drop absorbed runs, stop when all are).
CHECK_EVERY = {"cpu": 8, "cuda": 8}
#: Whether the fused route reads each check one span late, per device type. The runs settled
#: at a check are copied to the host behind the span that settled them, and the next span is
#: queued before the host reads them: the device computes while the host decides which runs
#: to drop, and it drops them at the next check. As the fused draws follow the global row,
#: when runs are dropped changes no result. On a CPU the device is the host: there is nothing
#: to overlap, and the lag would only simulate absorbed runs for one span more.
LAGGED_CHECKS = {"cpu": False, "cuda": True}
#: "auto" holds models as counts once a draw exceeds this many times the number of
#: binomials a tree draw costs (k − 1, k padded to a power of two), per device type.
COUNTS_RATIO = {"cpu": 8.0, "cuda": 8.0}
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


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:<index>"`` as a torch device that exists here."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"The 'device' parameter of simulate must be 'cpu', 'cuda' or "
                         f"'cuda:<index>'. Got {device!r} instead.") from None
    check_choice(dev.type, "device", ("cpu", "cuda"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"The 'device' parameter of simulate is {device!r}, but no CUDA "
                         f"device is available to torch {torch.__version__}.")
    return dev


def run_loop_torch(p0: np.ndarray, scenario: Scenario, *, n_runs: int, n_generations: int,
                   entropy: int, names: Sequence[str], chunk_runs: int | None = None,
                   progress: bool | None = None, device: str | torch.device = "cpu",
                   spec: dict | None = None, stop_when_absorbed: bool = True,
                   representation: str = "auto", fused: bool | None = None,
                   kept_runs: int = 0, sink=None, timings: dict | None = None) -> Result:
    """The loop of :func:`modelcollapse.loop.run_loop` with ``backend="torch"``.

    ``p0`` is validated, (contexts, vocab); ``names`` resolved metric names; ``entropy`` the
    seed entropy. Runs go in chunks of ``chunk_runs`` (a multiple of the run block; default
    all at once); results do not depend on it, so a chunk that does not fit in device memory
    is run again as chunks of half as many runs, with a RuntimeWarning. ``representation``
    picks how a model is held (see :data:`REPRESENTATIONS`); both are exact, and each is
    reproducible on its own. ``fused`` picks the span kernel of :mod:`.fused` for the fully
    and partially synthetic loops (None: wherever it applies on CUDA with Triton; True:
    insist; False: the generic route). ``timings``, if given, receives the seconds spent in
    the generation loops (``loop_s``) and in assembling the Result (``assemble_s``), for
    benchmarks.
    """
    dev = resolve_device(device)
    check_choice(representation, "representation", REPRESENTATIONS)
    n_contexts = p0.shape[0]
    chunk = n_runs if chunk_runs is None else check_int(chunk_runs, "chunk_runs", low=1)
    if chunk % RUN_BLOCK and chunk < n_runs:
        raise ValueError(f"The 'chunk_runs' parameter of simulate must be a multiple of "
                         f"{RUN_BLOCK} (the run block). Got {chunk} instead.")
    p_live, token_ids = _live_support(p0)
    use_counts = _use_counts(representation, scenario, p_live.shape[1], n_generations, dev)
    fused_route = use_fused(fused, scenario, names, use_counts, dev)
    recorder = Recorder(n_runs * n_contexts, n_contexts, n_generations, names,
                        metric_shift(p_live, names), kept_runs * n_contexts, sink)
    bar = tqdm(total=n_runs * n_generations, unit="run-gen", disable=_disable(progress),
               desc=scenario.name, leave=False)
    start = time.perf_counter()
    # Triton launches on the current CUDA device, whatever device its tensors are on.
    with torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext():
        try:
            _run_chunks(p_live, scenario, n_runs, chunk, n_generations, entropy, names,
                        use_counts, fused_route, dev, recorder, bar, stop_when_absorbed)
        finally:
            bar.close()
    looped = time.perf_counter()
    result = build_result(recorder, p0, token_ids, n_runs, n_contexts, names,
                          scenario=scenario, entropy=entropy, spec=spec)
    result.data.attrs.update(backend="torch", device=str(dev),
                             representation="counts" if use_counts else "tokens",
                             route="fused" if fused_route else "generic")
    if timings is not None:
        timings.update(loop_s=looped - start, assemble_s=time.perf_counter() - looped)
    return result


def _run_chunks(p_live, scenario, n_runs, chunk, n_generations, entropy, names, use_counts,
                fused_route, dev, recorder, bar, stop_when_absorbed) -> None:
    """All runs into the recorder, ``chunk`` runs at a time, fewer where the device runs out
    of memory: the same runs again, in smaller chunks (a chunk reaches the recorder only once
    it is done, and results do not depend on the chunking)."""
    first_run = 0
    while first_run < n_runs:
        runs = min(chunk, n_runs - first_run)
        done = bar.n
        if _run_chunk(p_live, scenario, first_run, runs, n_generations, entropy, names,
                      use_counts, fused_route, dev, recorder, bar, stop_when_absorbed):
            first_run += runs
            continue
        chunk = max(RUN_BLOCK, runs // 2 // RUN_BLOCK * RUN_BLOCK)
        bar.n = done
        torch.cuda.empty_cache()  # the failed chunk's tensors are unreachable by now
        warnings.warn(f"{runs} runs at a time did not fit in the memory of {dev}; running "
                      f"{chunk} at a time (the results do not depend on it).",
                      RuntimeWarning, stacklevel=3)


def _run_chunk(p_live, scenario, first_run, runs, n_generations, entropy, names, use_counts,
               fused_route, dev, recorder, bar, stop_when_absorbed) -> bool:
    """Runs first_run … first_run + runs − 1 into the recorder; False when the device ran out
    of memory (and fewer runs at a time might fit)."""
    try:
        _ChunkLoop(p_live, scenario, first_run, runs, n_generations, entropy, names,
                   use_counts, fused_route, dev, recorder, bar).run(stop_when_absorbed)
    except torch.cuda.OutOfMemoryError as exc:
        if runs <= RUN_BLOCK:
            raise torch.cuda.OutOfMemoryError(
                f"Not even {runs} runs at a time (a run block is {RUN_BLOCK}) fit in the memory "
                f"of {dev}: use fewer metrics (l1_to_first keeps a (runs, support) array), a "
                f"smaller support or another device.") from exc
        return False
    return True


def _use_counts(representation: str, scenario: Scenario, k: int, n_generations: int,
                dev: torch.device) -> bool:
    ready = counts_ready(scenario)
    if representation == "counts":
        if not ready:
            raise ValueError(f"The 'representation' parameter of simulate cannot be 'counts' "
                             f"for {scenario.describe()}: it needs the order of the tokens.")
        return True
    if representation == "tokens" or not ready:
        return False
    binomials = (1 << max(0, (k - 1).bit_length())) - 1
    return _typical_draw(scenario, n_generations) >= COUNTS_RATIO[dev.type] * max(binomials, 1)


def _typical_draw(scenario: Scenario, n_generations: int) -> float:
    """The smallest fresh draw a model of the steady state asks for (eq. 5 counts)."""
    m = min(n_generations, max(scenario.lag or 1, 2))
    counts = np.asarray(scenario.counts(m), dtype=np.float64)
    if scenario.real == "corpus":
        counts = counts[1:]
    counts = counts[counts > 0]
    return float(counts.min()) if counts.size else 0.0


class _ChunkLoop:
    """One chunk of runs: the state on the device and the generation loop."""

    def __init__(self, p_live, scenario, first_run, runs, n_generations, entropy, names,
                 use_counts, fused, dev, recorder, bar):
        n_contexts, k = p_live.shape
        self.scenario, self.names, self.recorder, self.bar = scenario, names, recorder, bar
        self.n_contexts, self.n_generations, self.dev = n_contexts, n_generations, dev
        rows = runs * n_contexts
        first_row = first_run * n_contexts
        self.n_alive = rows  # rows still simulated
        # Each row's place in the chunk (in the recorder and the outcomes), also on the host.
        self.local = torch.arange(rows, device=dev)
        self.local_host = np.arange(rows)
        self.rows = slice(first_row, first_row + rows)  # in the recorder
        # The fused route draws by global row id and by generation, both kept on the device.
        self.row_ids = self.local + first_row if fused else None
        self.seeds = (torch.tensor([generation_seed(entropy, m)
                                    for m in range(2, n_generations + 1)], dtype=torch.int64,
                                   device=dev) if fused else None)
        row_context = torch.arange(n_contexts, device=dev).repeat(runs)
        streams = TorchRowStreams(entropy, first_run // RUN_BLOCK,
                                  rows_per_block(runs, n_contexts, first_run), dev)
        p_live_t = torch.as_tensor(p_live, dtype=torch.float64, device=dev)
        kind = CountHistory if use_counts else TokenHistory
        self.history = kind(scenario, p_live_t, row_context, streams, n_generations)
        self.truth = Truth(p_live_t, row_context)
        # Generation 0 is p(0) itself; its metrics are the same on every backend, computed
        # once per context (a (rows, k) copy of p(0) would cost rows · k work and memory).
        # They are recorded with generation 1, which gives l1_to_first its value (p(1)).
        per_context = distribution_metrics(p_live, None, p_live, names)
        self.generation0 = {name: torch.as_tensor(values, device=dev)[row_context]
                            for name, values in per_context.items()}
        dirac_p0 = torch.where(p_live_t.amax(dim=1) >= 1.0, p_live_t.argmax(dim=1), -1)
        self.real_dirac = dirac_p0[row_context]
        lag = scenario.lag
        self.window = torch.full((lag if lag is not None else 1, rows), -2, dtype=torch.int64,
                                 device=dev)
        self.settled = torch.zeros(rows, dtype=torch.bool, device=dev)
        self.collapse_time = torch.full((rows,), float("nan"), dtype=torch.float64, device=dev)
        self.absorption_time = torch.full_like(self.collapse_time, float("nan"))
        self.absorbed_token = torch.full((rows,), -1, dtype=torch.int64, device=dev)
        # Collapse time, absorption time and absorbed token of the rows that stopped, by
        # place in the chunk: the host reads them once, when the chunk is done.
        self.outcomes = torch.full((3, rows), float("nan"), dtype=torch.float64, device=dev)
        self.scratch = None if use_counts else CountScratch(rows, k, dev)
        # p(1) is kept only when a metric needs it (rows, k) float64.
        self.first: torch.Tensor | None = None
        self.first_pending = "l1_to_first" in names
        self.record = ChunkRecorder(recorder, first_row, rows, dev)
        self.check_every = CHECK_EVERY[dev.type]
        # The fused route may read each check one span late (see LAGGED_CHECKS): the rows
        # settled at the check before, read while the span since ran.
        self.lagged = fused and LAGGED_CHECKS[dev.type]
        self.pending: _Snapshot | None = None

    # --- the generation loop ------------------------------------------------------------------
    def run(self, stop_when_absorbed: bool) -> None:
        m = 1
        while m <= self.n_generations:
            if self.row_ids is not None and m >= 2:
                last = self._span_end(m, stop_when_absorbed)
                self._fused_span(m, last)
            else:
                last = m
                model = training_set(self.scenario, m, self.history)
                self.history.store(m, model)
                if self.first_pending:
                    self._record_first(model)
                if m == 1:
                    self.record.write(0, {name: value[:, None]
                                          for name, value in self.generation0.items()})
                values, dirac = self._metrics(model)
                self.record.write(m, {name: value[:, None] for name, value in values.items()})
                self._advance(m, values["collapsed"], dirac)
            self.bar.update((last - m + 1) * self.n_alive // max(self.n_contexts, 1))
            final = last == self.n_generations
            if stop_when_absorbed and not final and last % self.check_every == 0:
                if self._check(last):
                    break
            m = last + 1
        else:
            self._record_outcomes(torch.arange(self.n_alive, device=self.dev))
        self.record.finish()
        self._write_outcomes()

    def _span_end(self, m: int, stop_when_absorbed: bool) -> int:
        """The last generation of the span that starts at m: the next check generation, the
        next multiple of :data:`SPAN_GENERATIONS` or the last generation, whichever comes
        first."""
        last = min(self.n_generations, -(-m // SPAN_GENERATIONS) * SPAN_GENERATIONS)
        if stop_when_absorbed:
            last = min(last, -(-m // self.check_every) * self.check_every)
        return last

    def _record_first(self, model: TorchModel) -> None:
        """p(1), and ‖p(0) − p(1)‖₁ as the generation-0 value of l1_to_first."""
        self.first_pending = False
        self.first = model.probabilities()
        self.generation0["l1_to_first"] = (self.truth.rows - self.first).abs().sum(dim=1)

    def _fused_span(self, m: int, last: int) -> None:
        """Models m … last of the fully or partially synthetic loop and their metrics, in one
        kernel (see .fused), with their collapse and absorption."""
        self.scratch = None  # the kernel counts in registers: no (rows, k) array to carry
        previous = self.history.stored(m - 1)
        real = self.scenario.real == "corpus"
        span = fused_steps(previous.tokens, self.row_ids, self.seeds[m - 2:last - 1],
                           self.names, self.first, self.truth.rows,
                           corpus=self.history.corpus() if real else None,
                           draws=self.scenario.n)
        self.history.store(last, TorchModel(span.tokens, span.tokens.shape[1],
                                            previous.n_live))
        self.record.write(m, span.metrics)
        newly = (span.onset >= 0) & torch.isnan(self.collapse_time)
        onset = span.onset.to(torch.float64) + m
        self.collapse_time = torch.where(newly, onset, self.collapse_time)
        self.window[-1] = span.dirac
        if real:
            # The corpus feeds every model: only runs whose p(0) is a Dirac mass settle, and
            # they did so at generation 1 (see _absorbed).
            return
        # Proposition 1: a fully synthetic run is absorbed the generation it collapses, into
        # that Dirac mass, which every later generation of the span reproduced.
        self.absorption_time = torch.where(newly, onset, self.absorption_time)
        self.absorbed_token = torch.where(newly, span.dirac, self.absorbed_token)
        self.settled |= newly

    def _metrics(self, model: TorchModel):
        if model.tokens is not None and not model.counted:
            return self.scratch.token_metrics(model.tokens, self.first, self.truth, self.names)
        return dense_metrics(model.counts, model.size, self.first, self.truth, self.names)

    def _advance(self, m: int, collapsed: torch.Tensor, dirac: torch.Tensor) -> None:
        """Collapse times, the window of recent Dirac tokens, absorption (Proposition 1)."""
        newly = collapsed & torch.isnan(self.collapse_time)
        self.collapse_time.masked_fill_(newly, float(m))
        if self.window.shape[0] > 1:
            self.window = torch.roll(self.window, -1, dims=0)
        self.window[-1] = dirac
        lag = self.scenario.lag
        absorbed = _absorbed(self.window, dirac, self.real_dirac, self.scenario, m)
        absorbed &= ~self.settled
        start = m - (lag - 1 if lag is not None else m - 1)
        self.absorption_time.masked_fill_(absorbed, float(start))
        self.absorbed_token = torch.where(absorbed, dirac, self.absorbed_token)
        self.settled |= absorbed

    # --- host side: drop absorbed runs, write results -----------------------------------------
    def _check(self, m: int) -> bool:
        """Drop absorbed runs at check generation m; True when none is left. Lagged (see
        :data:`LAGGED_CHECKS`): the runs settled at the check before, whose copy to the host
        the next span was queued behind; else those settled now, which waits for the device."""
        if not self.lagged:
            return self._drop_absorbed(self.settled.cpu().numpy(), m)
        pending, self.pending = self.pending, None
        if pending is not None and self._drop_absorbed(pending.read(), m):
            return True
        self.pending = _Snapshot(self.settled)  # of the rows kept, in their new order
        return False

    def _drop_absorbed(self, settled: np.ndarray, m: int) -> bool:
        """Drop the rows ``settled`` marks, runs absorbed by generation m (on the fused route
        once they are :data:`FUSED_DROP_SHARE` of the runs); their metrics of generation m,
        those of their Dirac mass, hold for every later generation (the recorder repeats the
        values it was given rather than computing the Dirac mass's apart: that keeps a stopped
        run's metrics constant to the last bit, and the fused route's results the same
        whenever runs stop, its kernel rounding as it computes). True when none is left. Rows
        go by index tensors: a boolean mask on a CUDA device would make the host wait for the
        device (to learn how many rows it selects)."""
        count = int(settled.sum())
        share = FUSED_DROP_SHARE if self.row_ids is not None else 0.0
        if count < max(1, share * settled.size) and count < settled.size:
            return False
        gone = _indices(settled, self.dev)
        keep = _indices(~settled, self.dev)
        local_kept = self.local[keep]
        local_kept_host = self.local_host[~settled]
        self.record.settle(self.local[gone], self.local_host[settled], local_kept,
                           local_kept_host, m)
        self._record_outcomes(gone)
        self.bar.update((self.n_generations - m) * count // max(self.n_contexts, 1))
        self.n_alive -= count
        if not self.n_alive:
            return True
        self.history.keep(keep, ~settled)
        self.truth.keep(keep)
        self.local, self.local_host = local_kept, local_kept_host
        for name in ("real_dirac", "settled", "collapse_time", "absorption_time",
                     "absorbed_token", "first", "row_ids"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[keep])
        self.window = self.window[:, keep]
        if self.scratch is not None:
            self.scratch.keep(keep)
        return False

    def _record_outcomes(self, rows: torch.Tensor) -> None:
        """Put the outcomes of ``rows`` (indices among the rows still simulated) in their
        places in the chunk's outcomes, on the device."""
        self.outcomes[:, self.local[rows]] = torch.stack(
            [self.collapse_time, self.absorption_time, self.absorbed_token.double()])[:, rows]

    def _write_outcomes(self) -> None:
        """Every row's outcomes to the recorder, in one copy (token ids are exact in float64)."""
        table = self.outcomes.cpu().numpy()
        rows = self.rows
        out = self.recorder.outcomes
        out["collapse_time"][rows] = table[0]
        out["absorption_time"][rows] = table[1]
        out["absorbed_token"][rows] = table[2].astype(np.int64)


def _indices(mask: np.ndarray, dev: torch.device) -> torch.Tensor:
    """Where ``mask`` holds, as an index tensor on ``dev``, copied from page-locked memory
    without waiting for the device (from pageable memory the copy waits for it)."""
    where = torch.from_numpy(np.flatnonzero(mask))
    if dev.type != "cuda":
        return where
    return where.pin_memory().to(dev, non_blocking=True)


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
