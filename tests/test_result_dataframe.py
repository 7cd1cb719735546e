"""Result.to_dataframe: the per-generation statistics and the per-run outcomes as tidy pandas
tables, holding the same numbers as Result.mean, Result.summary and Result.data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import modelcollapse as mc
from modelcollapse.results import Result


@pytest.fixture(scope="module")
def result() -> Result:
    # Three contexts, fully synthetic with a small n: some runs collapse, some are censored.
    return mc.simulate(n=4, support=10, S0=0.2, contexts=3, runs=40, generations=12, seed=7)


def test_generations_table_layout(result):
    df = result.to_dataframe()
    metric_columns = [f"{m}_{part}" for m in result.metrics for part in ("mean", "se")]
    assert list(df.columns) == ["generation", "context", *metric_columns, "count"]
    contexts, generations = result.data.sizes["context"], result.n_generations + 1
    assert len(df) == contexts * generations
    # Context by context, generations 0 … G in order.
    assert df["context"].tolist() == [c for c in range(contexts) for _ in range(generations)]
    assert df["generation"].tolist() == list(range(generations)) * contexts
    assert df["count"].dtype == np.int64 and (df["count"] == 40).all()


def test_generations_table_holds_the_numbers_of_mean(result):
    df = result.to_dataframe()
    for context in range(result.data.sizes["context"]):
        rows = df[df["context"] == context]
        for metric in result.metrics:
            mean, se = result.mean(metric, context=context)
            np.testing.assert_array_equal(rows[f"{metric}_mean"].to_numpy(), mean)
            np.testing.assert_allclose(rows[f"{metric}_se"].to_numpy(), se, rtol=1e-12,
                                       equal_nan=True)
    # Generation 0 is p(0) itself: sigma is its S0 exactly, with no spread.
    first = df[df["generation"] == 0]
    np.testing.assert_allclose(first["sigma_mean"], 0.2, rtol=1e-12)
    assert (first["sigma_se"] == 0).all()


def test_one_context_equals_the_pooled_mean():
    res = mc.simulate(scenario="partially-synthetic", n=10, N=100, runs=30, generations=6,
                      seed=3)
    df = res.to_dataframe()
    assert (df["context"] == 0).all()
    mean, se = res.mean("l1_to_first")
    np.testing.assert_array_equal(df["l1_to_first_mean"].to_numpy(), mean)
    np.testing.assert_allclose(df["l1_to_first_se"].to_numpy(), se, rtol=1e-12,
                               equal_nan=True)


def test_only_recorded_metrics_have_columns():
    res = mc.simulate(n=5, runs=10, generations=4, seed=1, metrics=("sigma", "collapsed"))
    assert list(res.to_dataframe().columns) == [
        "generation", "context", "sigma_mean", "sigma_se", "collapsed_mean", "collapsed_se",
        "count"]
    assert list(res.to_dataframe(per_run=True).columns)[-2:] == ["sigma_final",
                                                                 "collapsed_final"]


def test_se_is_nan_below_two_runs():
    res = mc.simulate(n=5, runs=1, generations=3, seed=1)
    df = res.to_dataframe()
    assert df["sigma_se"].isna().all() and (df["count"] == 1).all()


def test_per_run_outcomes(result):
    runs = result.to_dataframe(per_run=True)
    n_runs, contexts = result.data.sizes["run"], result.data.sizes["context"]
    assert list(runs.columns[:7]) == ["run", "context", "collapse_time", "collapse_censored",
                                      "absorption_time", "absorption_censored",
                                      "absorbed_token"]
    assert len(runs) == n_runs * contexts
    assert runs["run"].tolist() == [r for r in range(n_runs) for _ in range(contexts)]
    assert runs["context"].tolist() == list(range(contexts)) * n_runs
    # Censored runs are kept and marked, never dropped.
    assert runs["collapse_censored"].dtype == bool
    assert (runs["collapse_time"].isna() == runs["collapse_censored"]).all()
    summary = result.summary()
    assert int((~runs["collapse_censored"]).sum()) == summary["collapsed_runs"] > 0
    assert int(runs["collapse_censored"].sum()) == summary["censored_runs"] > 0
    assert runs["collapse_time"].mean() == pytest.approx(summary["collapse_time_mean"])
    # Each row is its (run, context) of the Dataset.
    for name in ("collapse_time", "absorbed_token", "sigma_final", "collapsed_final"):
        np.testing.assert_array_equal(
            runs.set_index(["run", "context"])[name].to_xarray().values,
            result.data[name].values)
    absorbed = runs[runs["absorbed_token"] >= 0]
    assert (absorbed["sigma_final"] == 1).all() and absorbed["collapsed_final"].all()


@pytest.mark.parametrize("name", ["saved.zarr", "saved.nc"])
def test_saved_and_loaded_result_gives_the_same_tables(result, tmp_path, name):
    result.save(tmp_path / name)
    for lazy in (False, True) if name.endswith(".zarr") else (False,):
        loaded = Result.load(tmp_path / name, lazy=lazy)
        pd.testing.assert_frame_equal(loaded.to_dataframe(), result.to_dataframe())
        pd.testing.assert_frame_equal(loaded.to_dataframe(per_run=True),
                                      result.to_dataframe(per_run=True))
