"""The top-level verb: ``simulate(spec, *, seed=None) -> Result``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .loop import run_loop
from .results import Result
from .rng import resolve_entropy
from .spec import SimulationSpec

__all__ = ["simulate"]


def simulate(spec: SimulationSpec | dict | None = None, *, seed: int | None = None,
             progress: bool | None = None, chunk_runs: int | None = None,
             threads: int | None = None, store: str | Path | None = None,
             **fields) -> Result:
    """Simulate the recursive loop described by ``spec`` (or by keyword ``fields``).

    ``seed`` overrides ``spec.seed``; with neither, fresh entropy is drawn and recorded in the
    result (``result.seed_entropy``) so the run can be repeated exactly. ``chunk_runs`` and
    ``threads`` are passed to :func:`~modelcollapse.loop.run_loop`; results depend on neither.
    ``store``: a Zarr path to save the result to; kept trajectories larger than
    ``spec.trajectory_memory_mb`` are streamed there while the loop runs.

    >>> res = simulate(scenario="fully-synthetic", n=10, generations=50, runs=20, seed=1)
    >>> mean, se = res.mean("sigma")  # per generation 0 … 50, over every run
    >>> res.trajectories["sigma"].dims  # kept runs ("auto": all that fit in 128 MB)
    ('run', 'context', 'generation')
    """
    if spec is None:
        spec = SimulationSpec(**fields)
    elif isinstance(spec, dict):
        spec = SimulationSpec(**{**spec, **fields})
    elif fields:
        spec = SimulationSpec(**{**spec.model_dump(exclude_unset=True), **fields})
    spec.kept_runs(streamed=store is not None)  # refuses what cannot be kept, before any work
    entropy = resolve_entropy(seed if seed is not None else spec.seed)
    spec = spec.model_copy(update={"seed": entropy}) if spec.seed != entropy else spec
    p0 = spec.build_p0()
    scenario = spec.build_scenario()
    return run_loop(np.asarray(p0), scenario, n_runs=spec.runs, n_generations=spec.generations,
                    seed=entropy, metrics=spec.metrics, chunk_runs=chunk_runs, progress=progress,
                    backend=spec.backend, device=spec.device,
                    representation=spec.representation, threads=threads,
                    trajectories=spec.trajectories,
                    trajectory_memory_mb=spec.trajectory_memory_mb, store=store,
                    spec=spec.model_dump(mode="json"))
