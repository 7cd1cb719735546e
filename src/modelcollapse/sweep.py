"""Parameter sweeps: a grid of simulations on local processes or a Dask cluster, stored as tidy
Parquet tables plus the full result of every grid point, resumable point by point.

A sweep spec is a simulation spec (the keys of :class:`~modelcollapse.spec.SimulationSpec`,
held fixed) plus an ``[axes]`` table; every combination of axis values is one grid point, a
whole :func:`~modelcollapse.api.simulate` call with ``runs`` runs of ``generations``
generations (the loop of eq. 5, metrics of §3)::

    runs = 1000
    generations = 200
    seed = 2024
    vocab = 600
    support = 52

    [axes]
    n = { start = 2, stop = 1000, num = 20, log = true }   # ints: rounded, must stay distinct
    S0 = { start = 0.02, stop = 0.5, num = 10 }            # linspace, both ends included
    # or a list: K = [1, 2, 4]; or a step: N = { start = 100, stop = 500, step = 100 }

**Seeds.** Point seeds depend on the sweep seed and the point's coordinates only, never on its
position in the grid, the executor or the worker count: with ``c`` the canonical JSON of the
coordinates (keys sorted, values of the field's type), ``w`` the eight little-endian 32-bit
words of SHA-256(c), the point's entropy is the 128-bit integer read from
``SeedSequence(sweep_entropy, spawn_key=w).generate_state(4)``. Growing or reordering an axis
therefore leaves the numbers of every existing point unchanged (and resume reuses them). p(0)
is built from ``distribution_seed``, by default the sweep entropy, so points that share the
parameters of p(0) share p(0) itself (common random numbers across, say, the n axis).

**Output folder**::

    sweep.json                        the spec, the resolved sweep entropy, the grid
    points/<id>/generations.parquet   one row per generation: means and standard errors
    points/<id>/result.zarr           the point's full Result (Result.save; or result.nc)
    points/<id>/point.parquet         one row: parameters, collapse-time statistics.
                                      Written last: its presence marks the point finished
    generations.parquet, points.parquet   the tables over the whole grid (when it completes)

Every file is written atomically (temporary name, then rename), so killing a sweep loses at
most the points in flight and re-running skips the finished ones. With a Dask cluster the
workers write the point files themselves: the output folder must be a path they all reach
(a shared filesystem, as on a cluster with dask-jobqueue).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shutil
import sys
import tempfile
import time
import typing
from collections.abc import Iterator, Sequence
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pydantic
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictBool, StrictInt
from tqdm import tqdm

from ._validation import read_toml
from .api import simulate
from .metrics import METRICS, mean_and_se
from .results import Result, atomic_write_text, provenance
from .rng import resolve_entropy
from .spec import SimulationSpec

__all__ = ["AxisRange", "SweepInputError", "SweepOutcome", "SweepPoint", "SweepSpec", "connect",
           "load_sweep_spec", "open_executor", "point_entropy", "point_id", "query", "run_sweep"]

#: Fields that cannot be axes: seeds come from the coordinates; runs and generations are the
#: sweep's own (a shorter horizon is a prefix of a longer one: query it instead).
NOT_AXES = ("seed", "runs", "generations", "metrics")
POINTS_DIR = "points"
DONE_FILE = "point.parquet"
TABLES = {"points": ("points.parquet", DONE_FILE), "generations": ("generations.parquet",
                                                                 "generations.parquet")}
#: Quantiles of the collapse time reported per point (censored runs count as +inf).
QUANTILES = {"q10": 0.1, "median": 0.5, "q90": 0.9}
#: Spec fields stored as text in the points table (128-bit seeds do not fit an int64).
_STRING_COLUMNS = ("distribution_seed",)

AxisValue = StrictBool | StrictInt | float | str


class SweepInputError(ValueError):
    """Bad input found while starting a sweep (output folder, executor, workers)."""


class AxisRange(BaseModel):
    """Evenly spaced axis values: ``num`` points from ``start`` to ``stop`` (both included;
    geometric when ``log``), or ``start, start + step, …`` up to ``stop`` (included when it
    falls on the grid). Values are rounded to 12 significant digits so they print and compare
    as written."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    start: float
    stop: float
    num: int | None = Field(None, ge=1)
    step: float | None = Field(None, gt=0)
    log: bool = False

    def values(self) -> list[float]:
        if (self.num is None) == (self.step is None):
            raise ValueError("a range needs exactly one of 'num' and 'step'")
        if self.log:
            if self.step is not None:
                raise ValueError("a 'log' range takes 'num', not 'step'")
            if self.start <= 0 or self.stop <= 0:
                raise ValueError("a 'log' range needs 'start' and 'stop' > 0")
            raw = np.geomspace(self.start, self.stop, self.num)
        elif self.num is not None:
            raw = np.linspace(self.start, self.stop, self.num)
        else:
            if self.stop < self.start:
                raise ValueError("'stop' must be at least 'start' in a range with 'step'")
            count = math.floor((self.stop - self.start) / self.step * (1 + 1e-12)) + 1
            raw = self.start + self.step * np.arange(count)  # i·step, not a running sum
        return [float(f"{v:.12g}") for v in raw]


class SweepSpec(BaseModel):
    """A grid of simulations: fixed :class:`SimulationSpec` fields, axes, runs, generations,
    seed. Every grid point is validated as a SimulationSpec when the sweep spec is built."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str | None = None
    runs: int = Field(100, ge=1)
    generations: int = Field(100, ge=1)
    seed: int | None = Field(None, ge=0)
    axes: dict[str, list[AxisValue] | AxisRange]
    fixed: dict[str, Any] = Field(default_factory=dict)
    _grid: list[dict[str, Any]] = PrivateAttr(default_factory=list)
    _specs: list[SimulationSpec] = PrivateAttr(default_factory=list)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _collect_fixed(cls, data: Any) -> Any:
        """Flat TOML: keys of SimulationSpec go to ``fixed``; anything else unknown fails."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        fixed = dict(data.pop("fixed", {}) or {})
        own = set(cls.model_fields) - {"fixed"}
        for key in list(data):
            if key not in own and key in SimulationSpec.model_fields:
                fixed[key] = data.pop(key)
        unknown = sorted(set(data) - own)
        if unknown:
            raise ValueError(f"unknown key '{unknown[0]}': a sweep spec takes the fields of a "
                             f"simulation spec plus 'axes' and 'name'")
        if isinstance(fixed.get("metrics"), list):
            fixed["metrics"] = tuple(fixed["metrics"])
        data["fixed"] = fixed
        return data

    @pydantic.model_validator(mode="after")
    def _expand(self) -> SweepSpec:
        if not self.axes:
            raise ValueError("'axes' must name at least one parameter to vary")
        unknown = sorted(set(self.fixed) - set(SimulationSpec.model_fields))
        if unknown:
            raise ValueError(f"'fixed' names '{unknown[0]}', which is not a simulation parameter")
        reserved = sorted(set(self.fixed) & {"seed", "runs", "generations"})
        if reserved:
            raise ValueError(f"'{reserved[0]}' belongs to the sweep itself, not to 'fixed'")
        clash = sorted(set(self.fixed) & set(self.axes))
        if clash:
            raise ValueError(f"'{clash[0]}' is both fixed and an axis: give it in one place")
        values = {name: _axis_values(name, axis) for name, axis in self.axes.items()}
        grid = [dict(zip(values, combo)) for combo in itertools.product(*values.values())]
        specs = []
        for coords in grid:
            try:
                specs.append(SimulationSpec(**self.fixed, **coords, runs=self.runs,
                                            generations=self.generations))
            except (pydantic.ValidationError, ValueError, TypeError) as exc:
                raise ValueError(f"grid point {_label(coords)}: {_one_line(exc)}") from None
        self._grid, self._specs = grid, specs
        return self

    @property
    def axis_values(self) -> dict[str, list]:
        """The expanded values of every axis, in declaration order."""
        return {name: list(dict.fromkeys(c[name] for c in self._grid)) for name in self.axes}

    def grid(self) -> list[dict[str, Any]]:
        """Coordinates of every point, row-major over the axes in declaration order."""
        return [dict(c) for c in self._grid]

    def points(self, entropy: int) -> list[SweepPoint]:
        """Every grid point with its seed, given the sweep's resolved entropy."""
        out = []
        for index, (coords, spec) in enumerate(zip(self._grid, self._specs)):
            given = spec.model_dump(exclude_unset=True)
            given["seed"] = point_entropy(entropy, coords)
            given.setdefault("distribution_seed", entropy)
            out.append(SweepPoint(index, coords, point_id(coords), SimulationSpec(**given)))
        return out


def load_sweep_spec(path: str | Path) -> SweepSpec:
    """Read a sweep spec from TOML (see the module docstring for the format)."""
    data = read_toml(path, "spec")
    data.setdefault("name", Path(path).stem)
    return SweepSpec(**data)


def _axis_values(name: str, axis: list | AxisRange) -> list:
    """An axis as values of its SimulationSpec field's type (ints stay ints, floats floats)."""
    if name not in SimulationSpec.model_fields:
        raise ValueError(f"axis '{name}' is not a simulation parameter; choose from "
                         f"{sorted(set(SimulationSpec.model_fields) - set(NOT_AXES))}")
    if name in NOT_AXES:
        raise ValueError(f"'{name}' cannot be an axis (it is one value for the whole sweep)")
    kind = _field_kind(name)
    if isinstance(axis, AxisRange):
        try:
            raw = axis.values()
        except ValueError as exc:
            raise ValueError(f"axis '{name}': {exc}") from None
        if kind == "int":
            raw = [round(v) for v in raw]
    else:
        raw = list(axis)
    if not raw:
        raise ValueError(f"axis '{name}' has no values")
    if kind == "float":
        raw = [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in raw]
    if len(set(map(repr, raw))) < len(raw):
        raise ValueError(f"axis '{name}' repeats a value ({raw}); for an int parameter a range "
                         f"may round several points to one int: use fewer points")
    return raw


def _field_kind(name: str) -> str:
    """'int', 'float' or 'other' for a SimulationSpec field (``X | None`` counts as X)."""
    return {pa.int64(): "int", pa.float64(): "float"}.get(
        _arrow_type(SimulationSpec.model_fields[name].annotation), "other")


def _label(coords: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in coords.items())


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, pydantic.ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        return f"'{where}': {message}" if where else message
    return str(exc).splitlines()[0]


# --- seeds -----------------------------------------------------------------------------------
def _canonical(coords: dict[str, Any]) -> bytes:
    return json.dumps(coords, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def point_id(coords: dict[str, Any]) -> str:
    """The point's folder name: 16 hex digits of SHA-256 of its canonical coordinates."""
    return hashlib.sha256(_canonical(coords)).hexdigest()[:16]


def point_entropy(sweep_entropy: int, coords: dict[str, Any]) -> int:
    """The 128-bit seed of the point at ``coords`` (see the module docstring)."""
    digest = hashlib.sha256(_canonical(coords)).digest()
    words = tuple(int.from_bytes(digest[i: i + 4], "little") for i in range(0, 32, 4))
    state = np.random.SeedSequence(sweep_entropy, spawn_key=words).generate_state(4, np.uint32)
    return sum(int(w) << (32 * i) for i, w in enumerate(state))


@dataclass(frozen=True)
class SweepPoint:
    """One grid point: its position in grid order, coordinates, folder id and full spec."""

    index: int
    coords: dict[str, Any]
    point_id: str
    spec: SimulationSpec

    @property
    def cost(self) -> int:
        """Relative work, for scheduling the longest points first (results do not depend on it)."""
        s = self.spec
        return s.runs * s.contexts * s.generations * (s.n + (s.N or 0))


# --- one point, on a worker -------------------------------------------------------------------
#: File name of a point's full Result per storage format (Result.save picks it by suffix).
RESULT_FILES = {"zarr": "result.zarr", "netcdf": "result.nc"}


@dataclass(frozen=True)
class _PointTask:
    out: str
    point: SweepPoint
    store: str = "zarr"


def _run_point(task: _PointTask) -> dict[str, Any]:
    """Simulate one point and write its three files; the marker file goes last."""
    started, cpu_started = time.perf_counter(), time.process_time()
    point = task.point
    if point.spec.backend == "torch" and point.spec.device == "cpu":
        import torch

        torch.set_num_threads(1)  # one worker per core: intra-op threads would oversubscribe
    result = simulate(point.spec, progress=False)
    folder = Path(task.out) / POINTS_DIR / point.point_id
    _write_parquet(generation_table(result, point), folder / "generations.parquet")
    result.save(folder / RESULT_FILES[task.store])
    row = point_table(result, point, elapsed_s=time.perf_counter() - started,
                      cpu_s=time.process_time() - cpu_started)
    _write_parquet(row, folder / DONE_FILE)
    return row.to_pylist()[0]


def generation_table(result: Result, point: SweepPoint) -> pa.Table:
    """One row per generation m = 0…G: ``<metric>_mean`` and ``<metric>_se`` over runs (and
    contexts) for every recorded metric. ``sigma_mean`` estimates S_m = E[σ_m] (eq. 6) and
    ``collapsed_mean``, the fraction of runs collapsed by m, estimates ρ_m (eq. 7)."""
    n_rows = result.data.sizes["generation"]
    columns: dict[str, Any] = {"point_id": [point.point_id] * n_rows}
    columns.update({name: [value] * n_rows for name, value in point.coords.items()})
    columns["generation"] = result.data["generation"].values.astype(np.int64)
    for metric in METRICS:
        if metric in result.data:
            mean, se = result.mean(metric)
            columns[f"{metric}_mean"], columns[f"{metric}_se"] = mean, se
    return pa.table(columns)


def point_table(result: Result, point: SweepPoint, *, elapsed_s: float,
                cpu_s: float) -> pa.Table:
    """One row: every SimulationSpec field of the point (axes among them) and statistics of
    the collapse time T = inf{t : ‖p(t)‖∞ = 1} (§3.1; eq. 8 bounds E[T]) and of the absorption
    time (Proposition 1). ``collapse_time_mean``/``_se`` are over collapsed runs
    (E[T | T ≤ G], as in Result.summary); the quantiles count censored runs as +inf (the
    Kaplan–Meier quantiles under censoring at G), NaN where that lands beyond G."""
    columns: dict[str, pa.Array] = {"point_id": pa.array([point.point_id]),
                                    "point_index": pa.array([point.index], pa.int64())}
    for name, field in SimulationSpec.model_fields.items():
        if name in ("seed", "metrics"):
            continue
        value = getattr(point.spec, name)
        if name in _STRING_COLUMNS:  # seeds may exceed 64 bits
            columns[name] = pa.array([None if value is None else str(value)], pa.string())
        else:
            columns[name] = pa.array([value], _arrow_type(field.annotation))
    columns["seed_entropy"] = pa.array([str(point.spec.seed)])
    for variable in ("collapse_time", "absorption_time"):
        times = result.data[variable].values.ravel().astype(np.float64)
        mean, se = mean_and_se(times)
        prefix = "collapsed" if variable == "collapse_time" else "absorbed"
        stats = {f"{variable}_mean": float(mean), f"{variable}_se": float(se)}
        censored = np.where(np.isnan(times), np.inf, times)
        for label, q in QUANTILES.items():
            value = float(np.quantile(censored, q, method="inverted_cdf"))
            stats[f"{variable}_{label}"] = value if math.isfinite(value) else math.nan
        stats[f"{prefix}_runs"] = int(np.sum(~np.isnan(times)))
        stats[f"{prefix}_fraction"] = float(np.mean(~np.isnan(times)))
        for key, value in stats.items():
            columns[key] = pa.array([value], pa.int64() if key.endswith("_runs") else
                                    pa.float64())
    columns["censored_runs"] = pa.array([int(np.sum(np.isnan(
        result.data["collapse_time"].values)))], pa.int64())
    columns["elapsed_s"] = pa.array([elapsed_s], pa.float64())
    columns["cpu_s"] = pa.array([cpu_s], pa.float64())
    return pa.table(columns)


def _arrow_type(annotation: Any) -> pa.DataType:
    """A fixed column type per spec field, so one-row tables of different points concatenate.
    ``X | None`` maps as X; a Literal of strings and anything else map to strings."""
    if typing.get_origin(annotation) is typing.Literal:
        return pa.string()
    args = set(typing.get_args(annotation)) - {type(None)} or {annotation}
    return {frozenset({bool}): pa.bool_(), frozenset({int}): pa.int64(),
            frozenset({float}): pa.float64()}.get(frozenset(args), pa.string())


def _write_parquet(table: pa.Table, path: Path) -> None:
    """Write via a temporary file in the same folder and a rename (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- executors --------------------------------------------------------------------------------
#: Thread pools of numeric libraries, held to one thread per worker process.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def default_workers() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def open_executor(kind: str = "local", *, scheduler: str | None = None,
                  workers: int | None = None) -> Iterator[Executor]:
    """A ``concurrent.futures.Executor`` for the sweep's points.

    ``local``: a ProcessPoolExecutor with the ``forkserver`` start method (forking a parent
    that runs threads can deadlock) and ``workers`` processes (default: all cores), each
    single-threaded. ``dask``: the executor of a ``dask.distributed`` Client, connected to
    ``scheduler`` (``tcp://host:port``) or to a LocalCluster of ``workers`` single-threaded
    worker processes on loopback.
    """
    if scheduler is not None or kind == "dask":
        with _dask_executor(scheduler, workers) as executor:
            yield executor
        return
    if kind != "local":
        raise SweepInputError(f"The 'executor' parameter of run_sweep must be one of "
                         f"['local', 'dask']. Got {kind!r} instead.")
    import multiprocessing

    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    # Worker processes inherit the environment at start; set it only where the user has not.
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: "1" for k, v in saved.items() if v is None})
    pool = ProcessPoolExecutor(max_workers=workers or default_workers(),
                               mp_context=multiprocessing.get_context(method))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)


@contextmanager
def _dask_executor(scheduler: str | None, workers: int | None) -> Iterator[Executor]:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise SweepInputError("the dask executor needs dask.distributed: "
                         "pip install 'modelcollapse[dask]'") from None
    cluster = None
    if scheduler is not None:
        if workers is not None:
            raise SweepInputError("'workers' and 'scheduler' conflict: a running cluster has its "
                             "own workers")
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"could not reach the Dask scheduler at {scheduler!r}: "
                                  f"{exc}") from None
    else:
        import dask

        # Nannies set OMP_NUM_THREADS=1 in their workers (distributed's pre-spawn-environ),
        # and also MALLOC_TRIM_THRESHOLD_, which turns off glibc's adaptive mmap threshold:
        # every large array of every generation is then a fresh mmap, and the loop runs
        # 1.3-2x slower. None unsets it (see docs/sweeps.md for a cluster started elsewhere).
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_":
                              None}):
            cluster = LocalCluster(n_workers=workers or default_workers(), threads_per_worker=1,
                                   processes=True, host="127.0.0.1", dashboard_address=None)
        client = Client(cluster)
    executor = client.get_executor()
    try:
        yield executor
    finally:
        executor.shutdown(wait=False)
        client.close()
        if cluster is not None:
            cluster.close()


# --- the sweep --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepOutcome:
    """What a sweep did: where, how many points it ran and how many it found finished."""

    out: Path
    n_points: int
    n_skipped: int
    n_run: int
    elapsed_s: float
    seed_entropy: int

    def points(self):
        """The points table as a pandas DataFrame (one row per grid point)."""
        return pq.read_table(self.out / TABLES["points"][0]).to_pandas()

    def generations(self):
        """The generations table as a pandas DataFrame (one row per point × generation)."""
        return pq.read_table(self.out / TABLES["generations"][0]).to_pandas()


def run_sweep(spec: SweepSpec | str | Path, out: str | Path, *,
              executor: str | Executor = "local", scheduler: str | None = None,
              workers: int | None = None, store: str = "zarr",
              progress: bool | None = None) -> SweepOutcome:
    """Run every unfinished point of ``spec`` and write the tables into folder ``out``.

    ``executor`` is ``"local"``, ``"dask"`` or any ``concurrent.futures.Executor`` (left open
    for its owner to close); ``scheduler`` is a Dask scheduler address. ``store`` is the format
    of each point's full result: ``"zarr"`` (a folder, compressed) or ``"netcdf"`` (one file,
    for filesystems that dislike many small files). Points already finished in ``out`` are
    skipped; the result does not depend on the executor or on ``workers``.
    """
    spec = load_sweep_spec(spec) if isinstance(spec, (str, Path)) else spec
    if store not in RESULT_FILES:
        raise SweepInputError(f"The 'store' parameter of run_sweep must be one of "
                              f"{list(RESULT_FILES)}. Got {store!r} instead.")
    if isinstance(executor, Executor) and (scheduler is not None or workers is not None):
        raise SweepInputError("an Executor instance and 'scheduler' or 'workers' conflict: "
                              "the executor already has its workers")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise SweepInputError(f"The 'workers' parameter of run_sweep must be an int in the range "
                         f"[1, inf). Got {workers!r} instead.")
    started = time.perf_counter()
    out = Path(out)
    entropy = _prepare_folder(spec, out)
    points = spec.points(entropy)
    finished = {p.point_id for p in points if _is_finished(out, p)}
    pending = sorted((p for p in points if p.point_id not in finished),
                     key=lambda p: (-p.cost, p.index))
    if pending:
        for table, _ in TABLES.values():
            (out / table).unlink(missing_ok=True)  # stale until the grid completes again
        for p in pending:  # half-written files of a killed run
            shutil.rmtree(out / POINTS_DIR / p.point_id, ignore_errors=True)
        bar = tqdm(total=len(points), initial=len(finished), unit="point", desc="sweep",
                   file=sys.stderr, disable=None if progress is None else not progress)
        try:
            if isinstance(executor, Executor):
                _drain(executor, out, pending, store, bar)
            else:
                with open_executor(executor, scheduler=scheduler, workers=workers) as pool:
                    _drain(pool, out, pending, store, bar)
        finally:
            bar.close()
    _consolidate(out, points)
    return SweepOutcome(out, len(points), len(finished), len(pending),
                        time.perf_counter() - started, entropy)


def _drain(executor: Executor, out: Path, pending: Sequence[SweepPoint], store: str,
           bar) -> None:
    futures = {executor.submit(_run_point, _PointTask(str(out), p, store)): p for p in pending}
    try:
        for future in as_completed(futures):
            try:
                future.result()
            except BrokenExecutor as exc:
                raise RuntimeError(f"a worker process died ({exc}); it may have run out of "
                                   f"memory, or a script started the sweep without the "
                                   f"'if __name__ == \"__main__\":' guard") from exc
            except Exception as exc:
                raise RuntimeError(f"grid point {_label(futures[future].coords)} failed: "
                                   f"{type(exc).__name__}: {exc}") from exc
            bar.update(1)
    finally:
        for future in futures:
            future.cancel()


def _is_finished(out: Path, point: SweepPoint) -> bool:
    return (out / POINTS_DIR / point.point_id / DONE_FILE).is_file()


def _prepare_folder(spec: SweepSpec, out: Path) -> int:
    """Check ``out`` holds nothing or the same sweep; record the spec; return the entropy.

    The same sweep means the same fixed fields, runs, generations and seed: axes may grow or
    shrink (points are keyed by coordinates), and an unseeded sweep reuses its recorded entropy.
    """
    if out.exists() and not out.is_dir():
        raise SweepInputError(f"'out' must be a directory; {str(out)!r} is a file")
    manifest = out / "sweep.json"
    old = json.loads(manifest.read_text()) if manifest.is_file() else None
    if old is None and out.is_dir() and any(out.iterdir()):
        raise SweepInputError(f"'out' ({out}) is a non-empty folder that holds no sweep; "
                         f"choose an empty or new one")
    entropy = resolve_entropy(spec.seed if spec.seed is not None or old is None
                              else int(old["seed_entropy"]))
    identity = {"fixed": spec.model_dump(mode="json")["fixed"], "runs": spec.runs,
                "generations": spec.generations, "seed_entropy": str(entropy)}
    if old is not None:
        for key, value in identity.items():
            if old.get(key) != value:
                raise SweepInputError(f"'out' ({out}) holds a different sweep: '{key}' was "
                                 f"{old.get(key)!r}, now {value!r}; choose another folder")
    record = {**identity, "name": spec.name, "axes": spec.axis_values,
              "n_points": len(spec.grid()), "seed_rule": "sha256-coordinates-v1",
              "provenance": provenance()}
    atomic_write_text(manifest, json.dumps(record, indent=2))
    return entropy


def _consolidate(out: Path, points: Sequence[SweepPoint]) -> None:
    """Concatenate the per-point tables in grid order into the two tidy tables."""
    for table, part in TABLES.values():
        pieces = [pq.read_table(out / POINTS_DIR / p.point_id / part) for p in points]
        _write_parquet(pa.concat_tables(pieces), out / table)


# --- queries ----------------------------------------------------------------------------------
def connect(out: str | Path):
    """An in-memory DuckDB connection with views ``points`` and ``generations`` over the
    sweep in ``out``: the whole-grid tables when the sweep completed, else the finished
    points' own files (so a running or interrupted sweep can be queried too)."""
    import duckdb

    out = Path(out)
    con = duckdb.connect()
    finished = sorted(p.parent for p in (out / POINTS_DIR).glob(f"*/{DONE_FILE}"))
    found = False
    for view, (table, part) in TABLES.items():
        if (out / table).is_file():
            sources = [out / table]
        elif finished:  # only finished points: an unfinished one may hold some of its files
            sources = [folder / part for folder in finished]
        else:
            continue
        found = True
        files = ", ".join("'" + str(path).replace("'", "''") + "'" for path in sources)
        con.execute(f"CREATE VIEW {view} AS SELECT * FROM "
                    f"read_parquet([{files}], union_by_name = true)")
    if not found:
        raise ValueError(f"'out' ({out}) holds no sweep results (no points.parquet and no "
                         f"finished points)")
    return con


def query(out: str | Path, sql: str):
    """Run ``sql`` over the views ``points`` and ``generations``; a pandas DataFrame."""
    return connect(out).sql(sql).df()
