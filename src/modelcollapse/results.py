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
"""

from __future__ import annotations

import functools
import json
import os
import platform
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from .metrics import METRICS, mean_and_se
from .rng import RUN_BLOCK

__all__ = ["RESULT_FORMAT", "Result", "StreamedStore", "atomic_write_text", "build_result",
           "provenance"]

#: Version of the Dataset layout. 1 (no ``result_format`` attribute): every metric as a dense
#: (run, context, generation) array; 2: per-generation statistics, per-run outcomes and last
#: metrics, trajectories on request. :meth:`Result.load` reads both.
RESULT_FORMAT = 2


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
        """Write atomically: a ``.nc`` path gives NetCDF, anything else a Zarr v3 store."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            if path.suffix == ".nc":
                target = tmp / path.name
                self.data.to_netcdf(target, engine="scipy")
                os.replace(target, path)
                shutil.rmtree(tmp)
            else:
                store = tmp / "store.zarr"
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self.data.to_zarr(store, zarr_format=3, consolidated=False, mode="w",
                                      encoding=_few_chunks(self.data))
                _replace_dir(store, path)
                shutil.rmtree(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path, *, lazy: bool = False) -> Result:
        """Read a saved result. ``lazy`` (Zarr stores): read the trajectories only as they are
        used, for stores larger than memory."""
        path = Path(path)
        if not path.exists():
            raise ValueError(f"The 'path' parameter of Result.load must name a saved result. "
                             f"Got {str(path)!r} instead.")
        if path.suffix == ".nc":
            with xr.open_dataset(path, engine="scipy") as ds:
                return cls(_upgrade(_restore_types(ds.load()), path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = xr.open_zarr(path, zarr_format=3, consolidated=False)
            if lazy:
                small = [name for name, var in ds.data_vars.items()
                         if "trajectory_run" not in var.dims]
                ds[small] = ds[small].load()
            else:
                ds = ds.load()
            return cls(_upgrade(_restore_types(ds), path))


class StreamedStore:
    """A Zarr store written while a simulation runs: the kept trajectories window by window
    (:class:`~modelcollapse.trajectories.ZarrTrajectories` into :attr:`store`), the rest of
    the result when it is done. It lives in a temporary folder beside ``path`` and replaces
    ``path`` only once whole; :meth:`discard` removes it after a failure."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
        self.store = self._tmp / "store.zarr"

    def finish(self, result: Result) -> Result:
        """Add ``result``'s statistics, outcomes and provenance; the result, read lazily."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result.data.to_zarr(self.store, zarr_format=3, consolidated=False, mode="a",
                                encoding=_few_chunks(result.data))
        _replace_dir(self.store, self.path)
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


def _replace_dir(src: Path, dst: Path) -> None:
    """Move directory ``src`` onto ``dst``, replacing what was there only once ``src`` is whole."""
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write a text file via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
