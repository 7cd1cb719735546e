"""The measured numbers of one simulated cell of a figure (the names of
:data:`~.figure_spec.QUANTITIES`): collapse times, absorption, final and plateau metrics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..metrics import mean_and_se
from ..results import Result

__all__ = ["measure", "number"]



def measure(result: Result, *, snapshots: Sequence[int] = ()) -> dict[str, float | int | None]:
    """The measured numbers of one cell (names of :data:`QUANTITIES`), over runs × contexts.

    T is the first generation whose model is a Dirac mass; its mean is over the runs that
    collapsed (the paper's histograms) and the censored runs are counted beside it. Metrics
    at the last generation come from every run's last value (a spread of exactly 0 when every
    run ends at the same Dirac mass), at other generations from the result's per-generation
    means and standard errors over every run.
    """
    ds = result.data
    times = ds["collapse_time"].values.ravel()
    rows = times.size
    done = times[~np.isnan(times)]
    out: dict[str, float | int | None] = {"runs": int(ds.sizes["run"]), "rows": rows}
    t_mean, t_se = mean_and_se(done) if done.size else (np.nan, np.nan)
    out.update(T_mean=number(t_mean), T_mean_se=number(t_se),
               T_sd=number(np.std(done, ddof=1)) if done.size > 1 else None,
               collapsed_runs=int(done.size), censored_runs=int(rows - done.size))
    out.update(collapsed_fraction=done.size / rows,
               collapsed_fraction_se=_binomial_se(done.size, rows))
    absorb = ds["absorption_time"].values.ravel()
    a_done = absorb[~np.isnan(absorb)]
    a_mean, a_se = mean_and_se(a_done) if a_done.size else (np.nan, np.nan)
    out.update(absorption_mean=number(a_mean), absorption_mean_se=number(a_se),
               absorption_censored=int(rows - a_done.size))
    for metric, name in (("sigma", "sigma"), ("l1_to_first", "l1_first")):
        if metric not in result.metrics:
            continue
        mean, se = mean_and_se(ds[f"{metric}_final"].values.ravel())
        out[f"{name}_final"], out[f"{name}_final_se"] = number(mean), number(se)
        out[f"{name}_plateau"], out[f"{name}_plateau_se"] = _plateau(result, metric, rows)
    collapsed, _ = result.mean("collapsed")
    for m in snapshots:
        hits = round(float(collapsed[m]) * rows)  # the fraction of rows collapsed at m
        out[f"dirac_fraction@{m}"] = hits / rows
        out[f"dirac_fraction@{m}_se"] = _binomial_se(hits, rows)
        if "sigma" in result.metrics:
            mean, se = result.mean("sigma")
            out[f"sigma@{m}"], out[f"sigma@{m}_se"] = number(mean[m]), number(se[m])
    return out


def _plateau(result: Result, metric: str, rows: int) -> tuple[float | None, float | None]:
    """The metric averaged over the second half, generations G//2 … G, and over every row,
    with its standard error.

    The mean is that of the per-generation means. Its standard error needs each row's own
    time average (a row's generations are correlated), so it comes from the kept runs:
    they are the first runs of i.i.d. ones, a sample of them, and sd(their averages) / √rows
    estimates it (the exact per-row se when every run is kept); None under two kept rows.
    """
    half = slice(result.n_generations // 2, result.n_generations + 1)
    mean, _ = result.mean(metric)
    kept = result.trajectories
    averages = (np.empty(0) if kept is None
                else kept[metric].values[..., half].mean(axis=-1).ravel())  # per kept row
    se = np.std(averages, ddof=1) / np.sqrt(rows) if averages.size > 1 else np.nan
    return number(mean[half].mean()), number(se)


def _binomial_se(hits: int, trials: int) -> float:
    """Standard error of a fraction hits / trials, from a half count added to each side so
    that 0 or all hits still gets a spread (an exact 0 would make any difference infinite)."""
    shrunk = (hits + 0.5) / (trials + 1)
    return float(np.sqrt(shrunk * (1 - shrunk) / trials))


def number(x) -> float | None:
    """``x`` as a float, None where it is not finite (JSON has no NaN)."""
    x = float(x)
    return x if np.isfinite(x) else None
