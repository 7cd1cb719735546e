"""Every choice of a simulation, resolved and validated once, before any work: the Plan.

:func:`make_plan` takes what a caller asked (backend, device, representation, chunking,
trajectories, …) and the case itself (p(0)'s live support, the scenario, the sizes), and
decides: tokens or counts, which route runs the generations, how many runs go per chunk,
how often the loop looks for absorbed runs, which runs keep their trajectories and whether
they stream to a store. The loop and the backends read the Plan and decide nothing again;
``modelcollapse simulate --explain`` prints it, and a result's attrs record it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .._system import loop_threads
from .._validation import check_choice, check_int
from ..metrics import resolve_metrics
from ..rng import RUN_BLOCK, resolve_entropy
from ..scenarios import Scenario
from .recorder import TRAJECTORY_MEMORY_MB, kept_runs, run_bytes

__all__ = ["BACKENDS", "CHUNK_RUNS", "REPRESENTATIONS", "Plan", "check_device_name",
           "make_plan"]

BACKENDS = ("numpy", "torch")
#: How a model is held: its training tokens (an index draw and a gather per draw, O(n) per
#: row and generation), its counts over the live support (a multinomial by conditional
#: binomials, O(support)), or "auto": counts where the draws per model are many times the
#: live support (see COUNTS_RATIO). Both are exact; each is reproducible on its own.
REPRESENTATIONS = ("auto", "tokens", "counts")
#: "auto" holds models as counts once the smallest fresh draw of a model is at least this many
#: times the binomials a draw of counts costs, per backend and device type (numpy: one per
#: live token; torch: a binomial tree over the live support padded to a power of two).
#: numpy: benchmarks/bench_counts.py puts the crossover at 7.8–9.1 draws per live token
#: (k = 8, 52, 256, 2 cores).
COUNTS_RATIO = {"numpy": 8.0, "cpu": 8.0, "cuda": 8.0}
#: Runs per chunk of the numpy backend unless asked otherwise: bounds the per-run state (a
#: model's tokens and counts, p(1)); results do not depend on it. The torch backend runs all
#: runs at once, and halves the chunk when the device runs out of memory.
CHUNK_RUNS = 100_000
#: Generations between looks for absorbed runs (drop them, stop when all are). The numpy
#: backend looks every generation; the torch backend's host looks at the device every
#: CHECK_EVERY generations (the draws of each backend follow its own cadence).
CHECK_EVERY = {"numpy": 1, "torch": 8}


@dataclass(frozen=True)
class Plan:
    """What a simulation will do, resolved; see the module docstring."""

    entropy: int
    metrics: tuple[str, ...]
    n_runs: int
    n_generations: int
    n_contexts: int
    live_support: int
    backend: str
    device: str
    #: "tokens" or "counts"
    representation: str
    #: numpy: "numpy" (metric passes), "compiled" (numba kernels) or "fixed-corpus" (from
    #: m = 2 row by row in compiled code); torch: "generic" or "fused" (Triton spans)
    route: str
    chunk_runs: int
    threads: int
    kept_runs: int
    trajectory_memory_mb: float
    streamed: bool
    stop_when_absorbed: bool
    check_every: int
    snapshots: tuple[int, ...]
    #: what the trajectory budget made of the request ("" when it is as asked)
    note: str = ""

    def attrs(self) -> dict[str, str]:
        """What a result records of its plan."""
        return {"backend": self.backend, "device": self.device,
                "representation": self.representation, "route": self.route}

    def describe(self) -> str:
        """The plan, one choice per line (``simulate --explain``)."""
        lines = [f"{key:<22} {value}" for key, value in asdict(self).items()
                 if key not in ("note",) and value not in ((), "")]
        return "\n".join(lines)


def check_device_name(device: str) -> None:
    """A device is "cpu", "cuda" or "cuda:<index>" (whether it exists is the plan's to see)."""
    if not isinstance(device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise ValueError(f"The 'device' parameter of simulate must be 'cpu', 'cuda' or "
                         f"'cuda:<index>'. Got {device!r} instead.")


def make_plan(p0: np.ndarray, scenario: Scenario, *, n_runs: int, n_generations: int,
              seed=None, metrics: Sequence[str] | None = None, backend: str = "numpy",
              device: str = "cpu", representation: str = "auto", chunk_runs: int | None = None,
              threads: int | None = None, compiled: bool | None = None,
              fused: bool | None = None, trajectories: str | int = "auto",
              trajectory_memory_mb: float = TRAJECTORY_MEMORY_MB, store: bool = False,
              stop_when_absorbed: bool = True, snapshots: Sequence[int] = ()) -> Plan:
    """Resolve every choice for ``p0`` (contexts, vocab), validated, under ``scenario``.

    ``compiled`` picks the numpy backend's metric kernels (None: numba's when installed);
    ``fused`` the torch backend's Triton spans (None: wherever they apply on CUDA). ``store``:
    whether the result goes to a store (kept trajectories beyond the budget then stream).
    ``snapshots``: generations at which the kept runs' fitted distributions are kept.
    """
    n_runs = check_int(n_runs, "runs", low=1)
    n_generations = check_int(n_generations, "generations", low=1)
    names = resolve_metrics(metrics)
    entropy = resolve_entropy(seed)
    check_choice(backend, "backend", BACKENDS)
    check_choice(representation, "representation", REPRESENTATIONS)
    n_contexts, k = p0.shape[0], int(np.count_nonzero(p0 > 0, axis=1).max())  # live support
    snapshots = tuple(sorted({check_int(m, "snapshots", low=0) for m in snapshots}))
    if snapshots and snapshots[-1] > n_generations:
        raise ValueError(f"The 'snapshots' parameter of simulate must be generations at most "
                         f"{n_generations}. Got {snapshots[-1]}.")
    kept, note = kept_runs(trajectories, n_runs=n_runs, n_contexts=n_contexts,
                           n_generations=n_generations, n_metrics=len(names),
                           memory_mb=trajectory_memory_mb, streamed=store)
    streamed = store and kept * run_bytes(len(names), n_contexts, n_generations) \
        > trajectory_memory_mb * 1e6
    if representation == "counts" and scenario.needs_token_order:
        raise ValueError(f"The 'representation' parameter of simulate cannot be 'counts' for "
                         f"{scenario.describe()}: it needs the order of the tokens.")

    if backend == "torch":
        from .torch.device import resolve_device, torch_route

        device = str(resolve_device(device))
        device_type = device.split(":")[0]
        default_chunk = n_runs
    else:
        check_device_name(device)
        if device != "cpu":
            raise ValueError(f"The 'device' parameter of simulate is {device!r}, which needs "
                             f"backend 'torch'; the numpy backend runs on the CPU.")
        device_type = "numpy"
        default_chunk = min(n_runs, CHUNK_RUNS)
    chunk = default_chunk if chunk_runs is None else check_int(chunk_runs, "chunk_runs", low=1)
    if chunk % RUN_BLOCK and chunk < n_runs:
        raise ValueError(f"The 'chunk_runs' parameter of simulate must be a multiple of "
                         f"{RUN_BLOCK} (the run block). Got {chunk} instead.")

    counts = _use_counts(representation, scenario, k, n_generations, backend, device_type)
    per_generation = any(m >= 2 for m in snapshots)  # a snapshot needs every model
    if backend == "torch":
        route = torch_route(fused, scenario, names, counts, device,
                            allowed=not per_generation)
    else:
        if fused:
            raise ValueError("The 'fused' parameter needs backend 'torch'.")
        compiled = _numpy_compiled(compiled)
        route = "compiled" if compiled else "numpy"
        step = scenario.fixed_step
        if (compiled and not counts and not per_generation and step is not None
                and step.corpus > 0):
            route = "fixed-corpus"
    return Plan(entropy=entropy, metrics=names, n_runs=n_runs, n_generations=n_generations,
                n_contexts=n_contexts, live_support=k, backend=backend, device=device,
                representation="counts" if counts else "tokens", route=route,
                chunk_runs=chunk,
                threads=loop_threads(None if threads is None
                                     else check_int(threads, "threads", low=1)),
                kept_runs=kept, trajectory_memory_mb=float(trajectory_memory_mb),
                streamed=bool(streamed), stop_when_absorbed=bool(stop_when_absorbed),
                check_every=CHECK_EVERY[backend], snapshots=snapshots, note=note or "")


def _numpy_compiled(compiled: bool | None) -> bool:
    from .numpy import kernels

    if compiled and not kernels.AVAILABLE:
        raise ValueError("The 'compiled' parameter is True, but numba is not installed: "
                         "pip install numba.")
    return kernels.AVAILABLE if compiled is None else bool(compiled)


def _use_counts(representation: str, scenario: Scenario, k: int, n_generations: int,
                backend: str, device_type: str) -> bool:
    if representation != "auto":
        return representation == "counts"
    if scenario.needs_token_order:
        return False
    if backend == "torch":
        binomials = (1 << max(0, (k - 1).bit_length())) - 1
    else:
        binomials = k
    return _typical_draw(scenario, n_generations) >= COUNTS_RATIO[device_type] * max(binomials, 1)


def _typical_draw(scenario: Scenario, n_generations: int) -> float:
    """The smallest fresh draw a model of the steady state asks for (eq. 5 counts)."""
    m = min(n_generations, max(scenario.lag or 1, 2))
    counts = np.asarray(scenario.counts(m), dtype=np.float64)
    if scenario.real == "corpus":
        counts = counts[1:]
    counts = counts[counts > 0]
    return float(counts.min()) if counts.size else 0.0
