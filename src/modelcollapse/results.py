"""The result of a simulation: labelled arrays, provenance, a summary, atomic save and load.

Arrays live in an :class:`xarray.Dataset` (layout :data:`RESULT_FORMAT`) with dims ``run``,
``context``, ``generation`` (0 … G, generation 0 being p(0)) and ``token`` for p(0) itself.
Metric names are those of :mod:`modelcollapse.metrics`.

* Per context and generation, always: ``count`` (runs measured) and, per metric,
  ``<metric>_mean`` and ``<metric>_m2`` (the sum of squared deviations from that mean), from
  which :meth:`Result.mean` gives the mean over runs and its standard error.
* Per run and context, always: ``collapse_time`` (NaN when the run never collapsed: censored,
  and marked in ``collapse_censored``), ``absorption_time`` (likewise), ``absorbed_token``
  (vocabulary id, −1 when not absorbed) and ``<metric>_final``, the metric at generation G.
* On request, trajectories of runs 0 … k − 1: ``<metric>_trajectory`` with dims
  (``trajectory_run``, context, generation); :attr:`Result.trajectories` gives them back under
  the metric names with dims (run, context, generation), the run coordinate holding run ids.

A saved store records what it holds when whole (attribute ``integrity``, see
:func:`_record`): every variable's shape and dtype, a CRC-32 of the variables that were in
memory, and, in a Zarr store, the size of every chunk file. :meth:`Result.load` checks it and
raises :class:`DamagedResultError`, naming what is damaged, rather than returning the fill
values a lost chunk reads as.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import shutil
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

# atomic_write_text lives in _files; it stays importable from here for older callers.
from ._files import atomic_write_text, make_temp_dir, replace_dir, temp_dir
from .metrics import METRICS, mean_and_se
from .rng import RUN_BLOCK

__all__ = ["INTEGRITY_ATTR", "RESULT_FORMAT", "DamagedResultError", "Result", "StreamedStore",
           "atomic_write_text", "build_result", "provenance"]

#: Version of the Dataset layout. 1 (no ``result_format`` attribute): every metric as a dense
#: (run, context, generation) array; 2: per-generation statistics, per-run outcomes and last
#: metrics, trajectories on request. :meth:`Result.load` reads both.
RESULT_FORMAT = 2
#: Attribute of a saved store holding its integrity record (JSON); never part of Result.data.
INTEGRITY_ATTR = "integrity"


class DamagedResultError(ValueError):
    """A saved result is not whole: a variable or chunk is missing or unreadable, or differs
    from what was recorded when it was saved. ``problems`` names each damage found."""

    def __init__(self, path: str | Path, problems: Iterable[str]):
        self.path, self.problems = Path(path), list(problems)
        super().__init__(f"The result at {str(path)!r} is damaged: {self.summary}.")

    @property
    def summary(self) -> str:
        """The first few problems on one line."""
        shown = self.problems[:3] + ([f"{len(self.problems) - 3} more"]
                                     if len(self.problems) > 3 else [])
        return "; ".join(shown)


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str], ...]:
    """Versions of what produced a result."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("modelcollapse", "numpy", "scipy", "xarray", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return tuple(out.items())


def provenance() -> dict[str, str]:
    """Versions of what produced a result (read once per process: metadata lookups are slow)."""
    return dict(_versions())


@dataclass
class Result:
    """A simulation result. ``data`` holds every array; the rest is derived from it."""

    data: xr.Dataset

    @property
    def spec(self) -> dict:
        return json.loads(self.data.attrs.get("spec", "{}"))

    @property
    def seed_entropy(self) -> int:
        return int(self.data.attrs["seed_entropy"])

    @property
    def n_generations(self) -> int:
        return self.data.sizes["generation"] - 1

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics recorded, in the order of :data:`~modelcollapse.metrics.METRICS`."""
        return tuple(name for name in METRICS if f"{name}_mean" in self.data)

    @property
    def trajectories(self) -> xr.Dataset | None:
        """The kept runs' metrics per generation, dims (run, context, generation), the run
        coordinate holding run ids; None when no run was kept."""
        names = {f"{name}_trajectory": name for name in self.metrics
                 if f"{name}_trajectory" in self.data}
        if not names:
            return None
        kept = self.data[list(names)].rename(names)
        return kept.rename({"trajectory_run": "run"})

    def mean(self, metric: str, *, context: int | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """Mean over runs (and contexts, unless one ``context`` is named) per generation, and
        its standard error sd / √count (NaN where fewer than two runs were measured)."""
        if f"{metric}_mean" not in self.data:
            raise ValueError(f"The 'metric' parameter of Result.mean must be one of "
                             f"{list(self.metrics)}. Got {metric!r} instead.")
        count = self.data["count"].values.astype(np.float64)  # (context, generation)
        mean = self.data[f"{metric}_mean"].values
        m2 = self.data[f"{metric}_m2"].values
        if context is not None:
            count, mean, m2 = count[[context]], mean[[context]], m2[[context]]
        total = count.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            if count.shape[0] == 1:
                pooled, spread = mean[0], m2[0]
            else:  # the contexts' means and sums of squares, pooled
                pooled = (count * mean).sum(axis=0) / total
                spread = m2.sum(axis=0) + (count * (mean - pooled) ** 2).sum(axis=0)
            se = np.where(total > 1, np.sqrt(spread / np.maximum(total - 1, 1) /
                                              np.maximum(total, 1)), np.nan)
        return pooled, se

    def to_dataframe(self, *, per_run: bool = False):
        """The result as a tidy :class:`pandas.DataFrame`.

        Default: the per-generation statistics, one row per context and generation (context
        by context, generations 0 … G in order), with columns ``generation``, ``context``,
        ``<metric>_mean`` and ``<metric>_se`` for every recorded metric (mean over the runs of
        that context and its standard error sd / √count, NaN where fewer than two runs were
        measured: the numbers of ``Result.mean(metric, context=c)``), and ``count``, the runs
        measured. ``sigma_mean`` estimates S_m = E‖p(m)‖₂² (eq. 6, eq. 9) and
        ``collapsed_mean`` the fraction of runs collapsed by m, ρ_m (eq. 7). These are the
        columns of a sweep's ``generations`` table; to pool several contexts use
        :meth:`mean`.

        ``per_run=True``: the per-run outcomes instead, one row per run and context (run by
        run), with columns ``run``, ``context``, ``collapse_time`` (T, NaN when censored),
        ``collapse_censored``, ``absorption_time`` (NaN when censored), ``absorption_censored``,
        ``absorbed_token`` (vocabulary id, −1 when not absorbed) and ``<metric>_final``, every
        recorded metric at the last generation G.
        """
        import pandas as pd

        ds = self.data
        if per_run:
            names = ["collapse_time", "collapse_censored", "absorption_time",
                     "absorption_censored", "absorbed_token",
                     *(f"{name}_final" for name in self.metrics)]
            runs, contexts = ds.sizes["run"], ds.sizes["context"]
            columns = {"run": np.repeat(ds["run"].values.astype(np.int64), contexts),
                       "context": np.tile(ds["context"].values.astype(np.int64), runs)}
            for name in names:  # each (run, context), run-major as the columns above
                columns[name] = ds[name].transpose("run", "context").values.reshape(-1)
            return pd.DataFrame(columns)
        count = ds["count"].transpose("context", "generation").values.astype(np.int64)
        contexts, generations = count.shape
        # int64 whatever the store: NetCDF 3 reads int64 coordinates back as int32.
        columns = {"generation": np.tile(ds["generation"].values.astype(np.int64), contexts),
                   "context": np.repeat(ds["context"].values.astype(np.int64), generations)}
        with np.errstate(invalid="ignore", divide="ignore"):
            for name in self.metrics:
                mean = ds[f"{name}_mean"].transpose("context", "generation").values
                m2 = ds[f"{name}_m2"].transpose("context", "generation").values
                se = np.where(count > 1, np.sqrt(m2 / np.maximum(count - 1, 1) /
                                                 np.maximum(count, 1)), np.nan)
                columns[f"{name}_mean"] = mean.reshape(-1)
                columns[f"{name}_se"] = se.reshape(-1)
        columns["count"] = count.reshape(-1)
        return pd.DataFrame(columns)

    def summary(self) -> dict:
        """The machine-readable summary printed by ``modelcollapse simulate --format json``."""
        ds = self.data
        p0 = ds["p0"].values
        times = ds["collapse_time"].values.ravel()
        absorb = ds["absorption_time"].values.ravel()
        tokens = ds["absorbed_token"].values.ravel()
        t_mean, t_se = mean_and_se(times)
        a_mean, a_se = mean_and_se(absorb)
        absorbed_counts = {str(int(t)): int(c) for t, c in zip(*np.unique(tokens[tokens >= 0],
                                                                           return_counts=True))}
        out: dict = {
            "scenario": ds.attrs.get("scenario", ""),
            "runs": int(ds.sizes["run"]),
            "contexts": int(ds.sizes["context"]),
            "generations": self.n_generations,
            "vocab": int(ds.sizes["token"]),
            "S0": _scalar_or_list(np.sum(p0 ** 2, axis=1)),
            "support": _scalar_or_list(np.count_nonzero(p0 > 0, axis=1)),
            "seed_entropy": str(self.seed_entropy),
            "collapse_time_mean": _finite(t_mean),
            "collapse_time_se": _finite(t_se),
            "collapsed_runs": int(np.sum(~np.isnan(times))),
            "censored_runs": int(np.sum(np.isnan(times))),
            "absorption_time_mean": _finite(a_mean),
            "absorption_time_se": _finite(a_se),
            "absorption_censored_runs": int(np.sum(np.isnan(absorb))),
            "absorbed_token_counts": absorbed_counts,
        }
        for metric in ("sigma", "l1_to_first", "l1_to_true", "sup", "entropy", "support"):
            if metric in self.metrics:
                mean, se = self.mean(metric)
                out[f"{metric}_mean"] = [_finite(x) for x in mean]
                out[f"{metric}_se"] = [_finite(x) for x in se]
        return out

    def save(self, path: str | Path) -> Path:
        """Write atomically: a ``.nc`` path gives NetCDF, anything else a Zarr v3 store; with
        the record that :meth:`load` checks, and the permissions the umask gives."""
        path = Path(path)
        data = self.data.copy(deep=False)
        data.attrs = {k: v for k, v in data.attrs.items() if k != INTEGRITY_ATTR}
        with temp_dir(path) as tmp:
            if path.suffix == ".nc":
                target = tmp / path.name
                data.attrs[INTEGRITY_ATTR] = json.dumps(_record(data))
                data.to_netcdf(target, engine="scipy")
                replace_dir(target, path)
            else:
                store = tmp / "store.zarr"
                _to_zarr(data, store, mode="w")
                _seal(store, data)
                replace_dir(store, path)
        return path

    @classmethod
    def load(cls, path: str | Path, *, lazy: bool = False, verify: bool = True) -> Result:
        """Read a saved result. ``lazy`` (Zarr stores): read the trajectories only as they are
        used, for stores larger than memory (their chunk files are checked, not their values).

        Raises :class:`DamagedResultError` when the store does not read or (``verify``) does
        not match its record; ``verify=False`` reads what is there, damage and all.
        """
        # Lazy trajectories are dask arrays, so that computing on them goes chunk by chunk.
        return cls(_upgrade(_read(path, lazy=lazy, dask=lazy, verify=verify), path))

    @classmethod
    def check(cls, path: str | Path) -> None:
        """Raise :class:`DamagedResultError` (or ValueError: no result there) unless the store
        at ``path`` loads whole. Trajectories are checked by their chunk files, without being
        read; :meth:`load` checks their values too."""
        _read(Path(path), lazy=True, dask=False, verify=True)


class StreamedStore:
    """A Zarr store written while a simulation runs: the kept trajectories window by window
    (:class:`~modelcollapse.engine.trajectories.ZarrTrajectories` into :attr:`store`), the
    rest of the result when it is done. It lives in a temporary folder beside ``path`` and
    replaces ``path`` only once whole; :meth:`discard` removes it after a failure."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._tmp = make_temp_dir(self.path)
        self.store = self._tmp / "store.zarr"

    def finish(self, result: Result) -> Result:
        """Add ``result``'s statistics, outcomes and provenance; the result, read lazily."""
        _to_zarr(result.data, self.store, mode="a")
        # The streamed trajectories are recorded by their chunk files: they are never in
        # memory whole, and reading them back for a checksum would double the writing.
        _seal(self.store, result.data)
        replace_dir(self.store, self.path)
        shutil.rmtree(self._tmp, ignore_errors=True)
        return Result.load(self.path, lazy=True)

    def discard(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


#: Largest Zarr chunk written; results are split along their first dimension (runs) only.
CHUNK_BYTES = 32 * 2**20


def _few_chunks(ds: xr.Dataset) -> dict[str, dict]:
    """One chunk per variable up to CHUNK_BYTES: a store of a few files, not hundreds."""
    encoding = {}
    for name, var in ds.variables.items():
        if var.ndim == 0:
            continue
        row_bytes = max(1, var.dtype.itemsize * int(np.prod(var.shape[1:])))
        first = max(1, min(var.shape[0], CHUNK_BYTES // row_bytes))
        encoding[name] = {"chunks": (first, *var.shape[1:])}
    return encoding


def _to_zarr(ds: xr.Dataset, store: Path, *, mode: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.to_zarr(store, zarr_format=3, consolidated=False, mode=mode,
                   encoding=_few_chunks(ds))


# ---------------------------------------------------------------------------------------------
# What a whole store holds: recorded at save, checked at load


def _checksum(values: np.ndarray, dtype: str) -> int:
    """CRC-32 of ``values`` as ``dtype`` (the dtype at save: NetCDF 3 reads int64 back as
    int32 and bool as int8), native byte order, every NaN written one way (a store may rewrite
    a NaN's payload: xarray masks NaN as the fill value and reads it back as np.nan)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OUS":
        text = "\x00".join(str(v) for v in np.asarray(values).ravel().tolist())
        return zlib.crc32(text.encode("utf-8"))
    array = np.ascontiguousarray(values, dtype=dtype.newbyteorder("="))
    if dtype.kind == "f" and np.isnan(array).any():
        array = np.where(np.isnan(array), np.nan, array)
    return zlib.crc32(array.reshape(-1).view(np.uint8))


def _chunk_files(folder: Path) -> dict[str, int]:
    """A Zarr array's chunk files (paths relative to its folder) and their sizes in bytes."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            if name != "zarr.json":
                full = Path(root) / name
                files[full.relative_to(folder).as_posix()] = full.stat().st_size
    return files


def _record(ds: xr.Dataset, arrays: dict | None = None, store: Path | None = None) -> dict:
    """The integrity record of a store: per variable its shape, dtype, the CRC-32 of its
    values where they are in memory, and (Zarr: ``arrays`` maps the store's array names to
    zarr arrays in ``store``) its chunk files and their sizes. The chunk files cover what is
    not in memory, such as streamed trajectories, without reading it back."""
    names = list(arrays) if arrays is not None else list(ds.variables)
    variables = {}
    for name in names:
        var = ds.variables.get(name)
        source = var if var is not None else arrays[name]
        entry: dict = {"shape": list(source.shape), "dtype": str(np.dtype(source.dtype))}
        if var is not None and isinstance(var.data, np.ndarray):
            entry["crc32"] = _checksum(var.data, entry["dtype"])
        if store is not None:
            entry["files"] = _chunk_files(store / name)
        variables[name] = entry
    return {"version": 1, "variables": variables}


def _seal(store: Path, ds: xr.Dataset) -> None:
    """Write the integrity record of the finished Zarr ``store``, whose variables other than
    streamed ones are those of ``ds``."""
    import zarr

    group = zarr.open_group(os.fspath(store), mode="r+", zarr_format=3)
    arrays = dict(group.arrays())
    group.attrs[INTEGRITY_ATTR] = json.dumps(_record(ds, arrays, store))


def _why(exc: BaseException) -> str:
    """An exception in a few words, on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__


def _read(path: Path, *, lazy: bool, dask: bool, verify: bool) -> xr.Dataset:
    """The Dataset saved at ``path``, checked against its record (``verify``), record and
    NetCDF's narrowed types taken out; layout as stored."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"The 'path' parameter of Result.load must name a saved result. "
                         f"Got {str(path)!r} instead.")
    ds = _read_netcdf(path) if path.suffix == ".nc" else _read_zarr(path, lazy, dask)
    ds = _restore_types(ds)
    record = _pop_record(ds, path)
    if verify:
        _verify(ds, record, path, None if path.suffix == ".nc" else path)
    return ds


def _read_netcdf(path: Path) -> xr.Dataset:
    try:
        with xr.open_dataset(path, engine="scipy") as ds:
            return ds.load()
    except MemoryError:
        raise
    except Exception as exc:  # a truncated or overwritten file: the readers raise anything
        raise DamagedResultError(path, [f"it does not read as NetCDF ({_why(exc)})"]) from None


def _read_zarr(path: Path, lazy: bool, dask: bool) -> xr.Dataset:
    """The store, every variable read into memory (``lazy``: all but the trajectories, as dask
    arrays with ``dask``), one at a time so that a chunk that does not decode is named by its
    variable. Without dask a store opens in less than half the time."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = xr.open_zarr(path, zarr_format=3, consolidated=False,
                              **({} if dask else {"chunks": None}))
        except MemoryError:
            raise
        except Exception as exc:
            raise DamagedResultError(path, [f"it does not open as a Zarr store "
                                            f"({_why(exc)})"]) from None
        for name, var in ds.variables.items():
            if lazy and "trajectory_run" in var.dims and name != "trajectory_run":
                continue
            try:
                var.load()
            except MemoryError:
                raise
            except Exception as exc:
                raise DamagedResultError(path, [f"variable {name!r} does not read "
                                                f"({_why(exc)})"]) from None
    return ds


def _pop_record(ds: xr.Dataset, path: Path) -> dict | None:
    """The store's integrity record, taken out of the attributes; None for stores written
    before records existed."""
    text = ds.attrs.pop(INTEGRITY_ATTR, None)
    if text is None:
        return None
    try:
        record = json.loads(text)
        if not isinstance(record.get("variables"), dict):
            raise ValueError("no variables")
    except (ValueError, AttributeError) as exc:
        raise DamagedResultError(path, [f"its integrity record does not read "
                                        f"({_why(exc)})"]) from None
    return record


def _verify(ds: xr.Dataset, record: dict | None, path: Path, store: Path | None) -> None:
    """Raise DamagedResultError unless ``ds`` (read from ``store``, a Zarr folder, or a NetCDF
    file at ``path``) matches ``record``."""
    if record is None:
        problems = _layout_problems(ds)
    else:
        problems = [problem for name, entry in record["variables"].items()
                    for problem in _variable_problems(ds, name, entry, store)]
    if problems:
        raise DamagedResultError(path, problems)


def _variable_problems(ds: xr.Dataset, name: str, entry: dict, store: Path | None
                       ) -> list[str]:
    if name not in ds.variables:
        return [f"variable {name!r} is missing"]
    var = ds.variables[name]
    if list(var.shape) != entry.get("shape"):
        return [f"variable {name!r} has shape {list(var.shape)}, not {entry.get('shape')}"]
    problems = []
    if store is not None and "files" in entry:
        for rel, size in entry["files"].items():
            chunk = store / name / rel
            if not chunk.is_file():
                problems.append(f"chunk {name}/{rel} is missing")
            elif chunk.stat().st_size != size:
                problems.append(f"chunk {name}/{rel} has {chunk.stat().st_size} bytes, "
                                f"not {size}")
    if not problems and "crc32" in entry and isinstance(var.data, np.ndarray) and \
            _checksum(var.data, entry["dtype"]) != entry["crc32"]:
        problems.append(f"variable {name!r} differs from its checksum at save")
    return problems


#: What every result of layout 2 holds, whatever its metrics.
_REQUIRED = ("count", "collapse_time", "collapse_censored", "absorption_time",
             "absorption_censored", "absorbed_token", "p0")


def _layout_problems(ds: xr.Dataset) -> list[str]:
    """Stores written before integrity records existed cannot be checked value by value (a
    lost chunk there reads as fill values); they are checked for the variables their layout
    requires, and otherwise trusted: they were written atomically, and recomputing every
    saved result after an upgrade could cost hours. Layout 1 is checked by _upgrade."""
    if int(ds.attrs.get("result_format", 1)) != RESULT_FORMAT:
        return []
    missing = [name for name in _REQUIRED if name not in ds.variables]
    for metric in METRICS:
        parts = [f"{metric}_{part}" for part in ("mean", "m2", "final")]
        if any(part in ds.variables for part in parts):
            missing += [part for part in parts if part not in ds.variables]
    return [f"variable {name!r} is missing" for name in missing]


def _restore_types(ds: xr.Dataset) -> xr.Dataset:
    """The dtypes NetCDF 3 cannot hold (it stores bool and int64 as int8 and int32)."""
    for name in ("collapsed", "collapsed_final", "collapsed_trajectory", "collapse_censored",
                 "absorption_censored"):
        if name in ds:
            ds[name] = ds[name].astype(bool)
    for name in ("count", "absorbed_token"):
        if name in ds:
            ds[name] = ds[name].astype(np.int64)
    return ds


def _upgrade(ds: xr.Dataset, path: Path) -> xr.Dataset:
    """A result in the current layout. Format 1 (dense per-run metrics) is converted: its
    arrays become the trajectories of every run, and the statistics are computed from them."""
    version = int(ds.attrs.get("result_format", 1))
    if version == RESULT_FORMAT:
        return ds
    if version != 1 or "count" in ds:
        raise ValueError(f"The result at {str(path)!r} has layout version {version}; this "
                         f"modelcollapse reads versions 1 … {RESULT_FORMAT}: upgrade it.")
    names = [name for name in METRICS if name in ds]
    values = np.stack([ds[name].values.astype(np.float64) for name in names])
    finite = ~np.isnan(values)
    count = finite.sum(axis=1)  # (metrics, context, generation)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(finite, values, 0.0).sum(axis=1) / count
        m2 = np.where(finite, (values - mean[:, None]) ** 2, 0.0).sum(axis=1)
    dims = ("context", "generation")
    upgraded = ds.drop_vars(names).assign(count=(dims, count.max(axis=0)))
    for i, name in enumerate(names):
        upgraded[f"{name}_mean"] = (dims, mean[i])
        upgraded[f"{name}_m2"] = (dims, m2[i])
        upgraded[f"{name}_final"] = (("run", "context"), ds[name].values[:, :, -1])
        upgraded[f"{name}_trajectory"] = (("trajectory_run", "context", "generation"),
                                          ds[name].values)
    upgraded = upgraded.assign_coords(trajectory_run=ds["run"].values)
    upgraded.attrs["result_format"] = RESULT_FORMAT
    return upgraded


def _finite(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _scalar_or_list(values: np.ndarray):
    values = [v.item() for v in np.asarray(values)]
    return values[0] if len(values) == 1 else values


def build_result(recorder, p0: np.ndarray, token_ids: np.ndarray, n_runs: int,
                 n_contexts: int, names, *, scenario, entropy: int, spec: dict | None) -> Result:
    """Assemble the Dataset from a :class:`~modelcollapse.recorder.Recorder` (rows are
    run-major (run, context))."""
    def per_run(a: np.ndarray) -> np.ndarray:
        return a.reshape(n_runs, n_contexts, *a.shape[1:])

    count, mean, m2 = recorder.statistics()
    dims = ("context", "generation")
    data_vars = {"count": (dims, count)}
    kept_runs = recorder.kept_rows // max(n_contexts, 1)
    in_memory = recorder.trajectories is not None
    for i, name in enumerate(names):
        boolean = name == "collapsed"
        data_vars[f"{name}_mean"] = (dims, mean[i])
        data_vars[f"{name}_m2"] = (dims, m2[i])
        final = per_run(recorder.final[i])
        data_vars[f"{name}_final"] = (("run", "context"), final == 1 if boolean else final)
        if in_memory:  # else they were streamed to a store (see StreamedStore)
            kept = recorder.trajectories[i].reshape(kept_runs, n_contexts, -1)
            data_vars[f"{name}_trajectory"] = (("trajectory_run", "context", "generation"),
                                               kept == 1 if boolean else kept)
    outcomes = recorder.outcomes
    contexts = np.tile(np.arange(n_contexts), n_runs)
    live = outcomes["absorbed_token"]
    vocab_token = np.where(live >= 0, token_ids[contexts, np.maximum(live, 0)], -1)
    for name in ("collapse_time", "absorption_time"):
        data_vars[name] = (("run", "context"), per_run(outcomes[name]))
        data_vars[name.replace("_time", "_censored")] = (("run", "context"),
                                                         per_run(np.isnan(outcomes[name])))
    data_vars["absorbed_token"] = (("run", "context"), per_run(vocab_token))
    data_vars["p0"] = (("context", "token"), p0)
    coords = {"run": np.arange(n_runs), "context": np.arange(n_contexts),
              "generation": np.arange(count.shape[1]), "token": np.arange(p0.shape[1])}
    if kept_runs:
        coords["trajectory_run"] = np.arange(kept_runs)
    ds = xr.Dataset(
        data_vars,
        coords=coords,
        attrs={"scenario": scenario.describe(), "seed_entropy": str(entropy),
               "run_block": RUN_BLOCK, "spec": json.dumps(spec or {}),
               "provenance": json.dumps(provenance()), "result_format": RESULT_FORMAT},
    )
    return Result(ds)
