"""Test helpers that read a Result the way the old dense tables were read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

OUTCOMES = ("collapse_time", "absorption_time", "absorbed_token", "collapse_censored",
            "absorption_censored")


def full(result) -> xr.Dataset:
    """Every metric per (run, context, generation) beside the outcomes and p(0): the result's
    trajectories, which must cover every run."""
    kept = result.trajectories
    assert kept is not None and kept.sizes["run"] == result.data.sizes["run"], \
        "the result kept the trajectories of only some runs"
    return xr.merge([kept, result.data[[*OUTCOMES, "p0"]]])


def assert_same_result(a, b) -> None:
    """Two results of the same draws: every per-run value (outcomes, last metrics, kept
    trajectories) and every count identical; means and sums of squared deviations equal to
    rounding (the order in which runs enter a sum may differ, as when runs are dropped or
    chunked; a sum of squared deviations is a difference of sums, so it keeps fewer digits)."""
    assert set(a.data.data_vars) == set(b.data.data_vars)
    for name in a.data.data_vars:
        x, y = a.data[name].values, b.data[name].values
        if name.endswith("_mean"):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12, err_msg=name)
        elif name.endswith("_m2"):
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12, err_msg=name)
        else:
            np.testing.assert_array_equal(x, y, err_msg=name)


def sweep_tables(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A sweep folder's points (without their timings) and generations tables."""
    points = pd.read_parquet(out / "points.parquet").drop(columns=["elapsed_s", "cpu_s"])
    return points, pd.read_parquet(out / "generations.parquet")


def assert_identical_results(a, b, *, attrs: bool = True) -> None:
    """Bit for bit: every variable and its dtype, and (``attrs``) the attributes."""
    assert set(a.data.variables) == set(b.data.variables)
    for name in a.data.variables:
        assert a.data[name].dtype == b.data[name].dtype, name
        np.testing.assert_array_equal(a.data[name].values, b.data[name].values, err_msg=name)
    if attrs:
        assert a.data.attrs == b.data.attrs
