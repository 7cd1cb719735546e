"""The one verb: ``simulate(spec, *, seed=None) -> Result``, and ``plan``, what it would do.

Every caller that runs the statistical loop — the CLI, figures, verification, the budget
search, sweeps — comes through here: a spec (or its fields) is validated once, every engine
choice is resolved once into a :class:`~modelcollapse.engine.plan.Plan`, and the one
generation loop runs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._validation import check_probabilities
from .engine.footprint import check_p0_fits, check_plan_fits
from .engine.loop import run
from .engine.plan import Plan, make_plan
from .results import Result
from .rng import resolve_entropy
from .scenarios import Scenario
from .spec import SimulationSpec

__all__ = ["plan", "simulate"]

#: Spec fields that describe p(0) or the scenario, which a p(0) array or a scenario object
#: given to simulate replaces.
P0_FIELDS = ("vocab", "support", "S0", "family", "zipf_exponent", "dirichlet_alpha", "p0",
             "contexts", "distribution_seed")
SCENARIO_FIELDS = ("scenario", "n", "N", "K", "window_split")


def simulate(spec: SimulationSpec | dict | None = None, *, p0=None,
             scenario: Scenario | None = None, seed: int | None = None,
             progress: bool | None = None, store: str | Path | None = None,
             chunk_runs: int | None = None, threads: int | None = None,
             compiled: bool | None = None, fused: bool | None = None,
             stop_when_absorbed: bool = True, snapshots: Sequence[int] = (),
             **fields) -> Result:
    """Simulate the recursive loop described by ``spec`` (or by keyword ``fields``).

    ``p0`` (an array, (vocab,) or (contexts, vocab)) and ``scenario`` (a
    :class:`~modelcollapse.scenarios.Scenario`, e.g. a ``Custom`` one) replace the spec's
    description of p(0) and of the scenario; giving both a p(0) array and p(0) fields is an
    error. ``seed`` overrides ``spec.seed``; with neither, fresh entropy is drawn and
    recorded in the result (``result.seed_entropy``) so the run can be repeated exactly.
    ``store``: a Zarr path to save the result to; kept trajectories larger than
    ``spec.trajectory_memory_mb`` are streamed there while the loop runs.

    How it runs, which changes no result: ``chunk_runs`` (runs per chunk, a multiple of the
    run block) and ``threads`` (of the compiled fixed-corpus route). Which route runs, each
    exact and reproducible on its own: ``compiled`` (numba kernels or numpy passes; on the
    tokens representation the draws are the same and float metrics agree to rounding, on
    counts each route draws its own way), ``fused`` (the torch backend's Triton spans on
    CUDA, a stream of their own). ``spec.representation`` picks tokens or counts ("auto":
    counts where the draws per model are many times the live support). What changes the
    draws: ``stop_when_absorbed=False`` simulates absorbed runs to the end (their metrics
    are the same); ``snapshots``: generations at which the kept runs' fitted distributions
    are kept (``p_snapshot``). The result's attrs record the plan's backend, device,
    representation and route.

    >>> res = simulate(scenario="fully-synthetic", n=10, generations=50, runs=20, seed=1)
    >>> mean, se = res.mean("sigma")  # per generation 0 … 50, over every run
    >>> res.trajectories["sigma"].dims  # kept runs ("auto": all that fit in 128 MB)
    ('run', 'context', 'generation')
    """
    the_plan, p0, scenario, spec = _resolve(spec, p0, scenario, seed, fields, store, chunk_runs,
                                            threads, compiled, fused, stop_when_absorbed,
                                            snapshots)
    return run(the_plan, p0, scenario, store=store, progress=progress, spec=spec)


def plan(spec: SimulationSpec | dict | None = None, *, p0=None,
         scenario: Scenario | None = None, seed: int | None = None,
         store: str | Path | None = None, chunk_runs: int | None = None,
         threads: int | None = None, compiled: bool | None = None, fused: bool | None = None,
         stop_when_absorbed: bool = True, snapshots: Sequence[int] = (), **fields) -> Plan:
    """What :func:`simulate` would do with the same arguments, resolved, without running it."""
    return _resolve(spec, p0, scenario, seed, fields, store, chunk_runs, threads, compiled,
                    fused, stop_when_absorbed, snapshots)[0]


def _resolve(spec, p0, scenario, seed, fields, store, chunk_runs, threads, compiled, fused,
             stop_when_absorbed, snapshots):
    """The plan, the validated p(0) (contexts, vocab), the scenario, and the spec the result
    records (None when an array or scenario object stands for part of it)."""
    # A scenario name or a p(0) file are the spec's own fields.
    if isinstance(scenario, str):
        fields, scenario = {**fields, "scenario": scenario}, None
    if isinstance(p0, (str, Path)):
        fields, p0 = {**fields, "p0": str(p0)}, None
    given = set(fields) | (set(spec) if isinstance(spec, dict) else
                           spec.model_fields_set if spec is not None else set())
    for replaced, names in ((p0, P0_FIELDS), (scenario, SCENARIO_FIELDS)):
        clash = sorted(given & set(names)) if replaced is not None else []
        if clash:
            what = "p0" if replaced is p0 else "scenario"
            raise ValueError(f"The '{what}' argument of simulate and the spec field "
                             f"'{clash[0]}' conflict: give one or the other.")
    spec = _spec(spec, fields)
    entropy = resolve_entropy(seed if seed is not None else spec.seed)
    spec = spec.model_copy(update={"seed": entropy}) if spec.seed != entropy else spec
    recorded = spec.model_dump(mode="json") if p0 is None and scenario is None else None
    if p0 is None and spec.p0 is None:  # a p(0) too large to hold fails while it is built
        check_p0_fits(spec.contexts, spec.vocab)
    p0 = np.asarray(spec.build_p0() if p0 is None else check_probabilities(p0, "p0"),
                    dtype=np.float64)
    p0 = p0[None, :] if p0.ndim == 1 else p0
    if scenario is None:
        scenario = spec.build_scenario()
    elif not isinstance(scenario, Scenario):
        raise TypeError(f"The 'scenario' argument of simulate must be a Scenario object (or "
                        f"give the spec field 'scenario' a name). Got {type(scenario).__name__}.")
    the_plan = make_plan(p0, scenario, n_runs=spec.runs, n_generations=spec.generations,
                         seed=entropy, metrics=spec.metrics, backend=spec.backend,
                         device=spec.device, representation=spec.representation,
                         chunk_runs=chunk_runs, threads=threads, compiled=compiled,
                         fused=fused, trajectories=spec.trajectories,
                         trajectory_memory_mb=spec.trajectory_memory_mb,
                         store=store is not None, stop_when_absorbed=stop_when_absorbed,
                         snapshots=snapshots)
    check_plan_fits(the_plan, scenario, vocab=p0.shape[1])
    return the_plan, p0, scenario, recorded


def _spec(spec, fields) -> SimulationSpec:
    if spec is None:
        return SimulationSpec(**fields)
    if isinstance(spec, dict):
        return SimulationSpec(**{**spec, **fields})
    if fields:
        return SimulationSpec(**{**spec.model_dump(exclude_unset=True), **fields})
    return spec
