"""The recursive loop (paper §2.2, eq. 5) on torch tensors, on the CPU or a CUDA device.

The same loop as :mod:`modelcollapse.loop` — same scenarios, metrics, stopping rule and
Result — with every generation kept on the device: metrics go to a device-side log whose
windows of generations reach the host's result arrays (on CUDA through a worker thread,
while the device runs the next ones), and the host looks at the device only at check
generations (every ``CHECK_EVERY`` generations), to drop absorbed runs (on CUDA's fused
route, one span late: see ``LAGGED_CHECKS``). A run absorbed between checks keeps being
simulated as the Dirac mass it is, which is exact: its metrics are those of the Dirac mass,
and its outcomes were recorded when it was absorbed. The outcomes of the runs that stop stay
on the device until the chunk is done.
"""

from __future__ import annotations

import contextlib
import functools
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch
from tqdm.auto import tqdm

from .._validation import check_choice, check_int
from ..loop import REPRESENTATIONS, _absorbed, _disable, _live_support, _Store
from ..metrics import distribution_metrics
from ..results import Result, build_result
from ..rng import RUN_BLOCK
from ..sampling import rows_per_block
from ..scenarios import Scenario
from .fused import fused_steps, generation_seed, use_fused
from .history import CountHistory, TokenHistory, TorchModel, counts_ready, training_set
from .metrics import CountScratch, Truth, dense_metrics
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
#: Generations per window of the metric log. The host copies a window while the device runs
#: the next, except the last window, which the Result waits for: short windows keep that tail
#: short; a span of the fused route ends at a window's end, so a window holds several checks.
LOG_WIDTH = 32
#: Whether the metric log reaches the host store on a worker thread, per device type: on
#: CUDA the host is otherwise idle while the device computes; on a CPU the device is the host,
#: and a worker would only compete with the generations for the same cores.
BACKGROUND_COPIES = {"cpu": False, "cuda": True}
#: Device memory for the metric log, in float64 values (256 MiB).
_LOG_VALUES = 1 << 25
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
                   timings: dict | None = None) -> Result:
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
    # Every cell is written by the loop (tests/test_torch_store.py), so the store is not
    # filled first; its pages are faulted in by one thread (see _Store.fault_in), on CUDA
    # while the device runs the first generations.
    store = _Store(n_runs * n_contexts, n_generations, names, filled=False)
    bar = tqdm(total=n_runs * n_generations, unit="run-gen", disable=_disable(progress),
               desc=scenario.name, leave=False)
    copier = _HostCopier(dev)
    start = time.perf_counter()
    # Triton launches on the current CUDA device, whatever device its tensors are on.
    with torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext():
        try:
            copier.prepare_store(store.fault_in)
            _run_chunks(p_live, scenario, n_runs, chunk, n_generations, entropy, names,
                        use_counts, fused_route, dev, store, copier, bar, stop_when_absorbed)
        finally:
            copier.close()
            bar.close()
    looped = time.perf_counter()
    result = build_result(store.arrays, store.outcomes, p0, token_ids, n_runs, n_contexts,
                          names, scenario=scenario, entropy=entropy, spec=spec)
    result.data.attrs.update(backend="torch", device=str(dev),
                             representation="counts" if use_counts else "tokens",
                             route="fused" if fused_route else "generic")
    if timings is not None:
        timings.update(loop_s=looped - start, assemble_s=time.perf_counter() - looped)
    return result


def _run_chunks(p_live, scenario, n_runs, chunk, n_generations, entropy, names, use_counts,
                fused_route, dev, store, copier, bar, stop_when_absorbed) -> None:
    """All runs into the store, ``chunk`` runs at a time, fewer where the device runs out of
    memory: the same runs again, in smaller chunks, which rewrite every cell the failed chunk
    wrote, with the same values (results do not depend on the chunking)."""
    first_run = 0
    while first_run < n_runs:
        runs = min(chunk, n_runs - first_run)
        done = bar.n
        if _run_chunk(p_live, scenario, first_run, runs, n_generations, entropy, names,
                      use_counts, fused_route, dev, store, copier, bar, stop_when_absorbed):
            first_run += runs
            continue
        chunk = max(RUN_BLOCK, runs // 2 // RUN_BLOCK * RUN_BLOCK)
        copier.finish()
        bar.n = done
        torch.cuda.empty_cache()  # the failed chunk's tensors are unreachable by now
        warnings.warn(f"{runs} runs at a time did not fit in the memory of {dev}; running "
                      f"{chunk} at a time (the results do not depend on it).",
                      RuntimeWarning, stacklevel=3)
    copier.finish()


def _run_chunk(p_live, scenario, first_run, runs, n_generations, entropy, names, use_counts,
               fused_route, dev, store, copier, bar, stop_when_absorbed) -> bool:
    """Runs first_run … first_run + runs − 1 into the store; False when the device ran out of
    memory (and fewer runs at a time might fit)."""
    try:
        _ChunkLoop(p_live, scenario, first_run, runs, n_generations, entropy, names,
                   use_counts, fused_route, dev, store, copier, bar).run(stop_when_absorbed)
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
                 use_counts, fused, dev, store, copier, bar):
        n_contexts, k = p_live.shape
        self.scenario, self.names, self.store, self.bar = scenario, names, store, bar
        self.n_contexts, self.n_generations, self.dev = n_contexts, n_generations, dev
        rows = runs * n_contexts
        first_row = first_run * n_contexts
        self.n_alive = rows  # rows still simulated
        # Each row's place in the chunk (its row in the metric log and in the outcomes).
        self.local = torch.arange(rows, device=dev)
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
        # They go to the log with generation 1, which gives l1_to_first its value (p(1)).
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
        self.log = _MetricLog(store.float_names, first_row, rows, dev, copier)
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
                    self.log.write(0, {name: value[:, None]
                                       for name, value in self.generation0.items()})
                values, dirac = self._metrics(model)
                self.log.write(m, {name: value[:, None] for name, value in values.items()})
                self._advance(m, values["collapsed"], dirac)
            self.bar.update((last - m + 1) * self.n_alive // max(self.n_contexts, 1))
            final = last == self.n_generations
            if stop_when_absorbed and not final and last % self.check_every == 0:
                if self._check(last):
                    self.log.flush(self.store)
                    self.log.fill_rest(self.store, self.n_generations)
                    break
            if self.log.full or final:
                self.log.flush(self.store)
            m = last + 1
        else:
            self._record_outcomes(torch.arange(self.n_alive, device=self.dev))
        self._write_outcomes()

    def _span_end(self, m: int, stop_when_absorbed: bool) -> int:
        """The last generation of the span that starts at m: the next check generation, the
        end of the log window or the last generation, whichever comes first."""
        last = min(self.n_generations, self.log.last_generation)
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
        self.log.write(m, span.metrics)
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
        once they are :data:`FUSED_DROP_SHARE` of the runs); their later metrics, those of
        their Dirac mass at generation m, stay in the log (see :meth:`_MetricLog.settle`).
        True when none is left. Rows go by index tensors: a boolean mask on a CUDA device
        would make the host wait for the device (to learn how many rows it selects)."""
        count = int(settled.sum())
        share = FUSED_DROP_SHARE if self.row_ids is not None else 0.0
        if count < max(1, share * settled.size) and count < settled.size:
            return False
        gone = _indices(settled, self.dev)
        keep = _indices(~settled, self.dev)
        local_kept = self.local[keep]
        self.log.settle(self.local[gone], local_kept, m)
        self._record_outcomes(gone)
        self.bar.update((self.n_generations - m) * count // max(self.n_contexts, 1))
        self.n_alive -= count
        if not self.n_alive:
            return True
        self.history.keep(keep, ~settled)
        self.truth.keep(keep)
        self.local = local_kept  # the log's rows still written, as the log now holds them
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
        """Every row's outcomes to the store, in one copy (token ids are exact in float64)."""
        table = self.outcomes.cpu().numpy()
        rows = self.log.rows  # the chunk's rows in the store
        out = self.store.outcomes
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


class _HostCopier:
    """Copies device results into the host store without holding up the generation loop.

    On CUDA a copy goes in two legs. Device → staging buffer goes on a stream of its own,
    behind the work that wrote the values and beside the generations launched after it (the
    copy engines work while the kernels do), into page-locked memory (from pageable memory
    the driver copies through a bounce buffer at a fraction of the bus speed, and waits); the
    sources must not be written again until the event :meth:`send` returns. Staging buffer →
    store runs on a worker thread (:data:`BACKGROUND_COPIES`) while the loop launches the
    next generations: the host would otherwise copy hundreds of megabytes while the device
    sits idle. Sends take turns between two staging buffers: a send waits for the copy two
    sends back (which used its buffer), not for the one just before, so that one host leg
    held up (the first waits for the store's preparation) does not stop the loop at the next
    window. :meth:`finish` waits for every copy and raises what went wrong in them. The
    store's rows and generations a copy writes are written by nothing else meanwhile. On a
    CPU the device is the host: the log goes straight into the store.

    Host work the copies depend on runs on the workers too, while the device works: the
    store's preparation (:meth:`prepare_store`, its pages faulted in), which only the host's
    leg of a copy waits for, and the staging buffers (:meth:`reserve`), which a send waits
    for.
    """

    #: Byte alignment of each tensor in a staging buffer (a float64 view needs 8).
    ALIGN = 64
    #: Staging buffers that sends take turns with.
    TURNS = 2

    def __init__(self, dev: torch.device):
        self.dev = dev
        self.pinned = dev.type == "cuda"
        self.background = BACKGROUND_COPIES[dev.type]
        self.buffers = [torch.empty(0, dtype=torch.uint8, pin_memory=self.pinned)
                        for _ in range(self.TURNS)]
        self.turn = 0  # the staging buffer of the next send
        self.stream = torch.cuda.Stream(dev) if self.pinned else None
        # The store's preparation depends on nothing, and one worker beside it per staging
        # buffer: a copy in flight from each, both waiting for the store, still leaves the
        # preparation a worker of its own.
        self.worker = (ThreadPoolExecutor(max_workers=1 + self.TURNS,
                                          thread_name_prefix="modelcollapse-copy")
                       if self.background else None)
        # Per staging buffer, its growth and its copy: the send that uses it waits for them.
        self.in_flight: list[list[Future]] = [[] for _ in range(self.TURNS)]
        self.store_ready: list[Future] = []  # the store's preparation: copies wait for it

    def prepare_store(self, job: Callable[[], object]) -> None:
        """Run ``job`` before any copy writes the store; the loop does not wait for it."""
        if self.background:
            self.store_ready.append(self.worker.submit(job))
        else:
            job()

    def reserve(self, sources: Sequence[torch.Tensor]) -> None:
        """Make both staging buffers hold copies of ``sources`` (and of any slices of them)
        before the first send: page-locking tens of megabytes keeps the driver busy for
        milliseconds, which the device would otherwise wait out when the log is full."""
        if self.pinned or self.background:
            nbytes = sum(self._staged_bytes(sources))
            for turn in range(self.TURNS):
                self._submit(turn, functools.partial(self._grow, turn, nbytes))

    def send(self, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]
             ) -> torch.cuda.Event | None:
        """Copy each device tensor into its host tensor of the same shape (a view of the
        store); in the background, returns once the copies are queued. On CUDA, returns the
        event after which the device tensors may be written again (None: at once)."""
        turn, self.turn = self.turn, (self.turn + 1) % self.TURNS
        in_flight, self.in_flight[turn] = self.in_flight[turn], []
        _wait(in_flight)  # the staging buffer is free again, and large enough
        # The device's values are overwritten by later generations: a copy that finishes
        # later copies a staged snapshot.
        copied = None
        if self.pinned:
            self.stream.wait_stream(torch.cuda.current_stream(self.dev))
            with torch.cuda.stream(self.stream):
                staged = self._stage(turn, pairs)
            copied = torch.cuda.Event()
            copied.record(self.stream)
            for source, _ in pairs:  # their memory is not reused before the copy is done
                source.record_stream(self.stream)
        else:
            staged = self._stage(turn, pairs) if self.background else list(pairs)
        self._submit(turn, functools.partial(_deliver, staged, copied, tuple(self.store_ready)))
        return copied

    def _submit(self, turn: int, job: Callable[[], object]) -> None:
        if self.background:
            self.in_flight[turn].append(self.worker.submit(job))
        else:
            job()

    def _stage(self, turn: int, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]
               ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Queue each source's copy into staging buffer ``turn``; (staged, target) pairs."""
        sizes = self._staged_bytes([source for source, _ in pairs])
        self._grow(turn, sum(sizes))
        buffer = self.buffers[turn]
        staged, offset = [], 0
        for (source, target), size in zip(pairs, sizes):
            nbytes = source.numel() * source.element_size()
            stage = buffer[offset:offset + nbytes].view(source.dtype).view(source.shape)
            stage.copy_(source, non_blocking=self.pinned)
            staged.append((stage, target))
            offset += size
        return staged

    def _staged_bytes(self, sources: Sequence[torch.Tensor]) -> list[int]:
        return [-(-source.numel() * source.element_size() // self.ALIGN) * self.ALIGN
                for source in sources]

    def _grow(self, turn: int, nbytes: int) -> None:
        if nbytes > self.buffers[turn].numel():
            self.buffers[turn] = torch.empty(nbytes, dtype=torch.uint8, pin_memory=self.pinned)

    def finish(self) -> None:
        """Wait for everything in flight; raise the first thing that went wrong."""
        futures = [future for turn in self.in_flight for future in turn] + self.store_ready
        self.in_flight, self.store_ready = [[] for _ in range(self.TURNS)], []
        _wait(futures)

    def close(self) -> None:
        try:
            self.finish()
        finally:
            if self.worker is not None:
                self.worker.shutdown()


def _wait(futures: Sequence[Future]) -> None:
    """Wait for every future, then raise the first error among them."""
    errors = [future.exception() for future in futures]
    for error in errors:
        if error is not None:
            raise error


def _deliver(staged: list[tuple[torch.Tensor, torch.Tensor]], copied,
             store_ready: Sequence[Future]) -> None:
    """The host's leg: once the store is prepared and the device has filled the staging
    buffer, into the store (torch copies a strided block on every core, and lets go of the
    interpreter meanwhile)."""
    for future in store_ready:
        future.result()
    if copied is not None:
        copied.synchronize()
    for stage, target in staged:
        target.copy_(stage)


class _MetricLog:
    """Metrics of consecutive generations on the device — float64 (names, rows, window) and
    ``collapsed`` (rows, window) — for every row the chunk began with, copied to the host
    store as one block of rows when the window is full and at the end. Windows end at
    multiples of the width; the first also holds generation 0.

    Rows that stop keep their place: from the generation after they stop, their columns hold
    the constant metrics of their Dirac mass (:meth:`settle`), and the copies write them with
    the others. Dropping runs therefore writes nothing to the host, and every copy is of
    contiguous rows. When every run has stopped, :meth:`fill_rest` writes the generations
    after the last window.
    """

    def __init__(self, names: Sequence[str], first_row: int, rows: int, dev: torch.device,
                 copier: _HostCopier):
        """``names``: the float metrics, the store's ``float_names`` in their order."""
        self.copier = copier
        self.names = list(names)
        self.width = max(1, min(LOG_WIDTH, _LOG_VALUES // max(1, rows * (len(self.names) + 1))))
        columns = self.width + 1  # the first window: generations 0 … width
        self.values = torch.empty((len(self.names), rows, columns), dtype=torch.float64,
                                  device=dev)
        self.collapsed = torch.empty((rows, columns), dtype=torch.bool, device=dev)
        copier.reserve([self.values, self.collapsed])
        self.rows = slice(first_row, first_row + rows)  # in the store
        # Log row of each row still simulated; None while they are all of them.
        self.position: torch.Tensor | None = None
        # The constant metrics of the rows that stopped (a stopped run is collapsed).
        self.settled_values = torch.zeros((len(self.names), rows), dtype=torch.float64,
                                          device=dev)
        self.settled = torch.zeros(rows, dtype=torch.bool, device=dev)
        self.start, self.count = 0, 0
        # The last copy's event on CUDA: the log is not written again before it.
        self.copied: torch.cuda.Event | None = None

    @property
    def full(self) -> bool:
        return self.start + self.count - 1 == self.last_generation

    @property
    def last_generation(self) -> int:
        """The last generation the current window holds: the next multiple of the width."""
        return max(1, -(-self.start // self.width)) * self.width

    def write(self, m: int, metrics: dict[str, torch.Tensor]) -> None:
        """Generations m, m + 1, …: ``metrics`` hold (rows, steps) each."""
        self._await_copy()
        steps = metrics["collapsed"].shape[1]
        columns = slice(m - self.start, m - self.start + steps)
        if columns.start == 0 and self.position is not None:  # a new window: stopped rows first
            self.values.copy_(self.settled_values[:, :, None].expand_as(self.values))
            self.collapsed.copy_(self.settled[:, None].expand_as(self.collapsed))
        rows = slice(None) if self.position is None else self.position
        if self.names:
            self.values[:, rows, columns] = torch.stack([metrics[name] for name in self.names])
        self.collapsed[rows, columns] = metrics["collapsed"]
        self.count = columns.stop

    def settle(self, stopped: torch.Tensor, alive: torch.Tensor, m: int) -> None:
        """Log rows ``stopped`` (indices), absorbed by generation m, are no longer written:
        every later generation repeats their metrics of generation m, the last one logged,
        those of their Dirac mass. Repeating the logged values, rather than computing the Dirac
        mass's metrics apart, keeps a stopped run's metrics constant to the last bit, and the
        results of the fused route the same whenever runs stop (its kernel rounds as it
        computes). ``alive``: the log rows still simulated."""
        self._await_copy()
        # index_fill_ passes True to the kernel: assigning a Python scalar through an index
        # tensor copies it to the device from pageable memory, which waits for the device.
        self.settled.index_fill_(0, stopped, True)
        column = m + 1 - self.start
        if not 0 < column <= self.count:
            raise RuntimeError(f"generation {m} is not in the metric log's window "
                               f"({self.start} … {self.start + self.count - 1})")
        if self.names:
            constant = self.values[:, stopped, column - 1]
            self.settled_values[:, stopped] = constant
            self.values[:, stopped, column:] = constant[:, :, None]
        self.collapsed[:, column:].index_fill_(0, stopped, True)
        self.position = alive

    def flush(self, store: _Store) -> None:
        """Send the logged generations to the host store (see :class:`_HostCopier`) and
        empty the log."""
        if self.count == 0:
            return
        columns = slice(self.start, self.start + self.count)
        pairs = [(self.collapsed[:, : self.count],
                  torch.from_numpy(store.arrays["collapsed"])[self.rows, columns])]
        if self.names:
            pairs.append((self.values[:, :, : self.count],
                          torch.from_numpy(store.table)[:, self.rows, columns]))
        self.copied = self.copier.send(pairs)
        self.start, self.count = columns.stop, 0

    def _await_copy(self) -> None:
        """Make the device's next writes to the log wait until the last copy has read it
        (the kernels launched meanwhile need not: they write their own outputs)."""
        if self.copied is not None:
            torch.cuda.current_stream(self.values.device).wait_event(self.copied)
            self.copied = None

    def fill_rest(self, store: _Store, n_generations: int) -> None:
        """Once every run has stopped and the log is flushed: the generations after it hold
        each run's Dirac metrics."""
        if self.start > n_generations:
            return
        self.copier.finish()  # jobs in flight may still touch any part of the store
        columns = slice(self.start, n_generations + 1)
        if self.names:
            torch.from_numpy(store.table)[:, self.rows, columns] = (
                self.settled_values.cpu()[:, :, None])
        torch.from_numpy(store.arrays["collapsed"])[self.rows, columns] = True
