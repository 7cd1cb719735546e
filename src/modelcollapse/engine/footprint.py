"""What a simulation will cost in memory, estimated from its plan before any work, and the
refusal when that is more than the machine has.

The estimate is a sum of named parts, each the size of arrays the engine really holds (the
coefficients count the copies alive at once, measured against ``tracemalloc`` in
tests/test_footprint.py, which keeps the estimate between the measured peak and a few times
it). p(0) itself is sized separately, before it is built (:func:`p0_bytes`), since building a
p(0) too large to hold is already the failure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .._validation import InputError
from ..scenarios import Scenario
from .plan import Plan

__all__ = ["Footprint", "available_memory", "check_fits", "check_p0_fits", "check_plan_fits",
           "estimate", "format_bytes", "p0_bytes"]

#: Environment variable capping the memory a simulation may plan for, in GB (a cluster job's
#: share, say); the default is what the machine reports available.
MEMORY_VARIABLE = "MODELCOLLAPSE_MEMORY_GB"
#: Share of the available memory a plan may take: the interpreter, libraries and the
#: allocator's slack take the rest.
USABLE_SHARE = 0.8
#: Copies of a dense (contexts, vocab) p(0) alive at once while it is built and checked.
P0_COPIES = 3
#: Dense (rows, live support) float64 arrays a chunk holds at once: p(0) per row, p(1)'s
#: counts, the model's counts, and metric scratch.
DENSE_COPIES = 5
#: Token arrays alive at once per model held: the model's tokens and the draw being made.
TOKEN_COPIES = 2
#: The recorder's per-generation arrays (sums and settled sums of d and d², counts), then the
#: result's mean and M2 built from them.
STATISTIC_COPIES = 6
#: Per-run arrays: outcomes and last metrics in the recorder, then in the result.
OUTCOME_COPIES = 2
#: Kept trajectories: the recorder's table, and two while the result is built from it.
TRAJECTORY_COPIES = 3
#: Largest generation whose eq. 5 counts are summed directly; beyond it a training set's size
#: is extrapolated from two generations (exact for sizes affine in m, as every built-in
#: scenario's are).
DIRECT_SIZES = 1 << 16
TOKEN_BYTES = 4  # engine/numpy/sampling.py: TOKEN_DTYPE = int32


@dataclass(frozen=True)
class Footprint:
    """Estimated peak memory of a simulation: named parts in bytes."""

    parts: dict[str, int]
    #: what each part counts, for the refusal
    details: dict[str, str]

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def largest(self) -> str:
        return max(self.parts, key=self.parts.get)

    def describe(self) -> str:
        return ", ".join(f"{name} {format_bytes(size)}" for name, size in
                         sorted(self.parts.items(), key=lambda kv: -kv[1]) if size)


def format_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if size < 1000 or unit == "PB":
            return f"{size:.3g} {unit}"
        size /= 1000
    raise AssertionError  # unreachable


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def p0_bytes(contexts: int, vocab: int) -> int:
    """Memory a dense p(0) of ``contexts`` rows over ``vocab`` tokens takes while it is built."""
    return P0_COPIES * 8 * contexts * vocab


def p0_detail(contexts: int, vocab: int) -> str:
    return f"{_count(contexts, 'context')} × {_count(vocab, 'token')}"


def check_p0_fits(contexts: int, vocab: int, where: str = "simulate") -> None:
    """Refuse, before it is built, a dense p(0) larger than the machine can hold."""
    check_fits(p0_bytes(contexts, vocab), what="p(0)", detail=p0_detail(contexts, vocab),
               way_out=WAY_OUT["p(0)"], where=where)


def _training_size(scenario: Scenario, m: int) -> float:
    """Samples model m trains on (eq. 5), without building the counts of a huge m."""
    if m <= DIRECT_SIZES:
        return float(scenario.counts(m).sum())
    low, high = DIRECT_SIZES // 2, DIRECT_SIZES
    size_low, size_high = (float(scenario.counts(x).sum()) for x in (low, high))
    return size_high + (size_high - size_low) * (m - high) / (high - low)


def _held_tokens(scenario: Scenario, n_generations: int) -> float:
    """Tokens a row holds at its largest: the models in reach (``lag``; every model when it is
    unbounded), each a training set, plus what the accumulate scenarios keep published."""
    largest = max(_training_size(scenario, m) for m in {1, min(2, n_generations),
                                                         n_generations})
    in_reach = scenario.lag if scenario.lag is not None else n_generations
    held = in_reach * largest
    if scenario.keeps_published and n_generations >= 2:
        # Real data, then each generation's fresh draw (what model 2 adds to model 1's set).
        first = _training_size(scenario, 1)
        held += first + n_generations * max(0.0, _training_size(scenario, 2) - first)
    return held


def estimate(plan: Plan, scenario: Scenario, vocab: int) -> Footprint:
    """The plan's peak memory on the host, part by part (a torch plan's device memory is the
    backend's to manage: it halves its chunk when the device runs out)."""
    contexts, k, metrics = plan.n_contexts, plan.live_support, len(plan.metrics)
    generations, runs = plan.n_generations, plan.n_runs
    rows = min(plan.chunk_runs, runs) * contexts
    if plan.representation == "counts":
        in_reach = scenario.lag if scenario.lag is not None else generations
        model = 8 * rows * k * in_reach
        model_what = (f"{_count(rows, 'row')} × {_count(k, 'live token')} × "
                      f"{_count(in_reach, 'model')} held as counts")
    else:
        held = _held_tokens(scenario, generations)
        model = int(TOKEN_COPIES * TOKEN_BYTES * rows * held)
        model_what = f"{_count(rows, 'row')} × {held:,.0f} training tokens held"
    kept = TRAJECTORY_COPIES * plan.kept_runs * 8 * metrics * contexts * (generations + 1)
    if plan.streamed:
        kept = int(plan.trajectory_memory_mb * 1e6)
    parts = {
        "p(0)": 8 * 2 * contexts * (vocab + k),
        "models": model,
        "per-row state": 8 * DENSE_COPIES * rows * k,
        "per-generation statistics": 8 * STATISTIC_COPIES * (metrics + 1) * contexts
        * (generations + 1),
        "per-run outcomes": 8 * OUTCOME_COPIES * (metrics + 3) * runs * contexts,
        "kept trajectories": kept,
        "snapshots": 8 * plan.kept_runs * contexts * len(plan.snapshots) * (vocab + k),
    }
    details = {
        "p(0)": p0_detail(contexts, vocab),
        "models": model_what,
        "per-row state": f"{_count(rows, 'row')} × {_count(k, 'live token')}",
        "per-generation statistics": f"{_count(metrics, 'metric')} × "
                                     f"{_count(contexts, 'context')} × "
                                     f"{_count(generations + 1, 'generation')}",
        "per-run outcomes": f"{_count(runs, 'run')} × {_count(contexts, 'context')}",
        "kept trajectories": f"{_count(plan.kept_runs, 'run')} × "
                             f"{_count(generations + 1, 'generation')}",
        "snapshots": f"{_count(plan.kept_runs, 'run')} × "
                     f"{_count(len(plan.snapshots), 'snapshot')} × {_count(vocab, 'token')}",
    }
    return Footprint(parts={k: int(v) for k, v in parts.items()}, details=details)


#: What to lower when a part is too large.
WAY_OUT = {
    "p(0)": "fewer 'contexts' or a smaller 'vocab'",
    "models": "a smaller 'n' or 'N', fewer 'generations' for a scenario that keeps every "
              "model or its data, or fewer 'runs' (in Python: a smaller 'chunk_runs')",
    "per-row state": "fewer 'runs' (in Python: a smaller 'chunk_runs') or a smaller support",
    "per-generation statistics": "fewer 'generations' or 'contexts'",
    "per-run outcomes": "fewer 'runs' (split them over seeds and pool the statistics)",
    "kept trajectories": "'trajectories' 'none' or a smaller 'trajectory_memory_mb'",
    "snapshots": "fewer snapshots or kept runs",
}


def _cgroup_limit() -> float | None:
    """The memory a container may still take (cgroup v2), when it is limited."""
    base = Path("/sys/fs/cgroup")
    try:
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return float(limit) - float((base / "memory.current").read_text())
    except (OSError, ValueError):
        return None


def available_memory() -> float | None:
    """Bytes a simulation may plan for: ``$MODELCOLLAPSE_MEMORY_GB`` if set, else the memory
    the machine reports available (and the container's limit, if lower); None if unknown."""
    value = os.environ.get(MEMORY_VARIABLE, "").strip()
    if value:
        try:
            gb = float(value)
        except ValueError:
            gb = -1.0
        if not gb > 0:
            raise ValueError(f"The {MEMORY_VARIABLE} environment variable must be a positive "
                             f"number of GB. Got {value!r} instead.")
        return gb * 1e9
    found = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found = float(line.split()[1]) * 1024
    except OSError:
        try:
            found = float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            found = None
    limit = _cgroup_limit()
    if limit is not None:
        found = limit if found is None else min(found, limit)
    return found


def check_fits(need: int, *, what: str, detail: str, way_out: str,
               where: str = "simulate") -> None:
    """Refuse, in one line naming the size and the way out, a request needing ``need`` bytes
    when that is more than :data:`USABLE_SHARE` of :func:`available_memory`."""
    have = available_memory()
    if have is None or need <= USABLE_SHARE * have:
        return
    raise InputError(f"{where} would need about {format_bytes(need)} "
                     f"of memory "
                     f"({what}: {detail}), more than the {format_bytes(USABLE_SHARE * have)} "
                     f"it may use here: choose {way_out}.")


def check_plan_fits(plan: Plan, scenario: Scenario, vocab: int, where: str = "simulate") -> None:
    """Refuse a plan whose :func:`estimate` is more than the machine has (see :func:`check_fits`);
    the message names its largest part."""
    footprint = estimate(plan, scenario, vocab)
    part = footprint.largest()
    check_fits(footprint.total, what=part, detail=footprint.details[part],
               way_out=WAY_OUT[part], where=where)
