"""Saving and loading results: the layout round-trips, and results written before statistics
were streamed (layout 1: every metric dense per run) load as today's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from modelcollapse import simulate
from modelcollapse.metrics import METRICS, mean_and_se
from modelcollapse.results import RESULT_FORMAT, Result
from modelcollapse.scenarios import FullySynthetic

#: Written by the engine of layout 1 (6 runs, 2 contexts, 9 generations, every metric).
FORMAT1 = Path(__file__).parent / "data" / "result_format1.nc"


@pytest.mark.parametrize("suffix", [".zarr", ".nc"])
@pytest.mark.parametrize("trajectories", ["all", 3, "none"])
def test_a_saved_result_loads_identical(tmp_path, p0_small, suffix, trajectories):
    p0 = np.stack([p0_small, p0_small[::-1]])
    res = simulate(p0=p0, scenario=FullySynthetic(4), runs=20, generations=10, seed=1,
                   trajectories=trajectories, progress=False)
    loaded = Result.load(res.save(tmp_path / f"result{suffix}"))
    assert set(loaded.data.data_vars) == set(res.data.data_vars)
    for name in res.data.data_vars:
        assert loaded.data[name].dtype == res.data[name].dtype, name
        np.testing.assert_array_equal(loaded.data[name].values, res.data[name].values, name)
    assert loaded.data.attrs["result_format"] == RESULT_FORMAT
    if trajectories == "none":
        assert loaded.trajectories is None
    else:
        assert loaded.trajectories.sizes["run"] == (20 if trajectories == "all" else 3)


def _format1_expectations() -> xr.Dataset:
    with xr.open_dataset(FORMAT1, engine="scipy") as ds:
        return ds.load()


@pytest.mark.parametrize("store", ["netcdf", "zarr"])
def test_results_of_layout_1_load_with_statistics_and_trajectories(tmp_path, store):
    raw = _format1_expectations()
    path = FORMAT1
    if store == "zarr":
        path = tmp_path / "old.zarr"
        raw.to_zarr(path, zarr_format=3, consolidated=False)
    res = Result.load(path)
    assert res.data.attrs["result_format"] == RESULT_FORMAT
    assert res.metrics == METRICS
    for metric in METRICS:
        dense = raw[metric].values.astype(np.float64)
        mean, se = mean_and_se(dense.reshape(-1, dense.shape[-1]), axis=0)
        np.testing.assert_allclose(res.mean(metric)[0], mean, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(res.mean(metric)[1], se, rtol=1e-9, atol=1e-15)
        np.testing.assert_array_equal(res.trajectories[metric].values, raw[metric].values)
        np.testing.assert_array_equal(res.data[f"{metric}_final"].values,
                                      raw[metric].values[..., -1])
    np.testing.assert_array_equal(res.data["collapse_time"].values, raw["collapse_time"].values)
    assert res.summary()["runs"] == 6


def test_a_newer_layout_is_refused_with_its_version(tmp_path, p0_small):
    res = simulate(p0=p0_small, scenario=FullySynthetic(4), runs=5, generations=4, seed=1,
                   progress=False)
    res.data.attrs["result_format"] = RESULT_FORMAT + 1
    path = res.save(tmp_path / "future.zarr")
    with pytest.raises(ValueError, match=f"layout version {RESULT_FORMAT + 1}"):
        Result.load(path)
