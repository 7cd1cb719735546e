"""The rows a grid point contributes to the sweep's two tidy tables: one per generation
(means and standard errors of the metrics) and one for the point (its parameters and
collapse-time statistics)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa

from ..metrics import mean_and_se
from ..results import Result
from ..spec import SimulationSpec
from .spec import SweepPoint, _arrow_type

#: Quantiles of the collapse time reported per point (censored runs count as +inf).
QUANTILES = {"q10": 0.1, "median": 0.5, "q90": 0.9}
#: Spec fields stored as text in the points table: 128-bit seeds do not fit an int64, and
#: ``trajectories`` is a word or a number of runs.
_STRING_COLUMNS = ("distribution_seed", "trajectories")


def generation_table(result: Result, point: SweepPoint) -> pa.Table:
    """One row per generation m = 0…G: ``<metric>_mean`` and ``<metric>_se`` over runs (and
    contexts) for every recorded metric. ``sigma_mean`` estimates S_m = E[σ_m] (eq. 6) and
    ``collapsed_mean``, the fraction of runs collapsed by m, estimates ρ_m (eq. 7)."""
    n_rows = result.data.sizes["generation"]
    columns: dict[str, Any] = {"point_id": [point.point_id] * n_rows}
    columns.update({name: [value] * n_rows for name, value in point.coords.items()})
    columns["generation"] = result.data["generation"].values.astype(np.int64)
    for metric in result.metrics:
        columns[f"{metric}_mean"], columns[f"{metric}_se"] = result.mean(metric)
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
        if name in _STRING_COLUMNS:
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
