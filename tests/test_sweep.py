"""Sweeps: grid expansion, coordinate-keyed seeds, executors that agree bit for bit (local
processes and a real Dask LocalCluster on loopback), resume after a crash, the results store,
and one-line errors for malformed specs."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path

import click
import numpy as np
import pandas as pd
import pytest

from modelcollapse.api import simulate
from modelcollapse.cli import results as results_cli
from modelcollapse.cli import sweep as sweep_cli
from modelcollapse.cli._common import run_main
from modelcollapse.results import Result
from modelcollapse.sweep import (
    SweepInputError,
    SweepSpec,
    connect,
    load_sweep_spec,
    point_entropy,
    point_id,
    query,
    run_sweep,
)

SPEC = """\
runs = 64
generations = 30
seed = 11
vocab = 30
support = 10

[axes]
n = [4, 16]
S0 = { start = 0.15, stop = 0.45, num = 3 }
"""

# The verbs under test, on a group of their own (the package CLI registers the same objects).
CLI = click.Group("modelcollapse", commands=[sweep_cli.command, results_cli.command])


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run_main(CLI, list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tables(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two tidy tables, without the timing columns."""
    points = pd.read_parquet(out / "points.parquet").drop(columns=["elapsed_s", "cpu_s"])
    return points, pd.read_parquet(out / "generations.parquet")


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "small.toml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def local_sweep(spec_file, tmp_path_factory) -> Path:
    """The small sweep on two local worker processes: the reference for the other tests."""
    out = tmp_path_factory.mktemp("local") / "sweep"
    outcome = run_sweep(spec_file, out, workers=2, progress=False)
    assert (outcome.n_points, outcome.n_run, outcome.n_skipped) == (6, 6, 0)
    return out


# --- the spec -------------------------------------------------------------------------------
def test_grid_is_the_product_of_the_axes_in_declaration_order(spec_file):
    spec = load_sweep_spec(spec_file)
    assert spec.axis_values == {"n": [4, 16], "S0": [0.15, 0.3, 0.45]}
    assert spec.grid()[:2] == [{"n": 4, "S0": 0.15}, {"n": 4, "S0": 0.3}]
    assert spec.fixed == {"vocab": 30, "support": 10} and spec.name == "small"


def test_ranges_give_field_types_and_clean_values():
    spec = SweepSpec(vocab=600, support=52, axes={
        "n": {"start": 2, "stop": 1000, "num": 20, "log": True},
        "S0": {"start": 0.05, "stop": 0.5, "step": 0.05}, "scenario": ["fully-synthetic"]})
    values = spec.axis_values
    assert all(type(v) is int for v in values["n"])
    assert (values["n"][0], values["n"][-1]) == (2, 1000) and len(set(values["n"])) == 20
    assert values["S0"] == [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]
    # A float field given an int stays a float: 1 and 1.0 are one coordinate, one seed.
    assert SweepSpec(support=1, axes={"S0": [1]}).grid() == [{"S0": 1.0}]


def test_point_seed_depends_on_the_coordinates_not_the_grid():
    small = SweepSpec(seed=3, axes={"n": [5, 10]}).points(3)
    grown = SweepSpec(seed=3, axes={"n": [20, 10, 5]}).points(3)
    by_n = {p.coords["n"]: p for p in grown}
    for point in small:
        twin = by_n[point.coords["n"]]
        assert (twin.point_id, twin.spec.seed) == (point.point_id, point.spec.seed)
    assert point_entropy(3, {"n": 5}) != point_entropy(4, {"n": 5})
    assert point_entropy(3, {"n": 5, "S0": 0.1}) == point_entropy(3, {"S0": 0.1, "n": 5})
    assert point_id({"n": 5}) != point_id({"n": 10})
    assert small[0].spec.distribution_seed == 3  # p(0) shared by every point of the sweep


def test_points_of_a_p0_file_take_their_p0_from_it(tmp_path):
    """A p(0) file is one distribution for every point: no p(0) seed is added beside it."""
    np.save(tmp_path / "p.npy", np.array([0.5, 0.3, 0.2]))
    points = SweepSpec(seed=3, fixed={"p0": str(tmp_path / "p.npy")},
                       axes={"n": [5, 10]}).points(3)
    assert [p.spec.distribution_seed for p in points] == [None, None]
    np.testing.assert_allclose(points[0].spec.build_p0(), [0.5, 0.3, 0.2])


@pytest.mark.parametrize("text, message", [
    ('runs = 10\nvocabb = 5\n[axes]\nn = [1, 2]\n', "unknown key 'vocabb'"),
    ('[axes]\nseed = [1, 2]\n', "'seed' cannot be an axis (it is one value for the whole"),
    ('[axes]\ntrajectories = ["all", "none"]\n', "'trajectories' cannot be an axis"),
    ('[fixed]\ntrajectories = 3\n[axes]\nn = [1, 2]\n',
     "'trajectories' belongs to the sweep itself"),
    ('runs = 10\ntrajectories = "some"\n[axes]\nn = [1]\n',
     "The 'trajectories' parameter of sweep must be 'auto', 'all', 'none' or a number of "
     "runs ≥ 0; got 'some'"),
    ('runs = 10\ntrajectories = 20\ntrajectory_memory_mb = 0.01\n[axes]\nn = [1]\n',
     "grid point n=1: The 'trajectories' parameter of the spec asks for 10 runs"),
    ('[axes]\nsize = [1, 2]\n', "axis 'size' is not a simulation parameter"),
    ('n = 3\n[axes]\nn = [1, 2]\n', "'n' is both fixed and an axis"),
    ('support = 10\n[axes]\nS0 = [0.5, 0.05]\n', "grid point S0=0.05: The 'S0' parameter "
        "of simulate must be in"),
    ('[axes]\nn = [2.5]\n', "grid point n=2.5: The 'n' parameter of simulate "
        "must be an int. Got 2.5 instead."),
    ('[axes]\nn = { start = 1, stop = 3, num = 10 }\n', "axis 'n' repeats a value"),
    ('[axes]\nn = { start = 1, stop = 3 }\n', "exactly one of 'num' and 'step'"),
    ('[axes]\n', "'axes' must name at least one parameter"),
    ('runs = 10\n', "'axes'"),
    ('runs = "ten"\n[axes]\nn = [1]\n', "'runs'"),
    ('runs = = 1\n', "must name a valid TOML file"),
])
def test_malformed_spec_fails_with_one_clear_line_and_exit_2(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    code, out, err = cli(capsys, "sweep", str(path), "--out", str(tmp_path / "o"))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_sweeps_keep_no_trajectories_unless_asked(local_sweep, spec_file, tmp_path):
    """The default keeps none; ``trajectories = k`` keeps runs 0 … k − 1 of every point and
    changes no number of either table."""
    points, _ = tables(local_sweep)
    assert (points["trajectories"] == "none").all()
    assert points["trajectory_memory_mb"].dtype == np.float64
    pid = points["point_id"][0]
    assert Result.load(local_sweep / "points" / pid / "result.zarr").trajectories is None

    asking = tmp_path / "asking.toml"
    asking.write_text(SPEC.replace("seed = 11\n", "seed = 11\ntrajectories = 3\n"))
    spec = load_sweep_spec(asking)
    assert {p.spec.trajectories for p in spec.points(11)} == {3}
    out = tmp_path / "kept"
    with ThreadPoolExecutor(2) as pool:
        run_sweep(spec, out, executor=pool, progress=False)
    kept = Result.load(out / "points" / pid / "result.zarr").trajectories
    assert kept.sizes["run"] == 3 and list(kept["run"].values) == [0, 1, 2]
    mine, theirs = tables(out), tables(local_sweep)
    assert (mine[0]["trajectories"] == "3").all()
    pd.testing.assert_frame_equal(mine[0].drop(columns="trajectories"),
                                  theirs[0].drop(columns="trajectories"), check_exact=True)
    pd.testing.assert_frame_equal(mine[1], theirs[1], check_exact=True)


# --- executors and the store ------------------------------------------------------------------
def test_dask_local_cluster_gives_bit_identical_results(local_sweep, spec_file, tmp_path):
    pytest.importorskip("dask.distributed")  # the 'dask' extra
    out = tmp_path / "dask"
    outcome = run_sweep(spec_file, out, executor="dask", workers=2, progress=False)
    assert outcome.n_run == 6
    for mine, theirs in zip(tables(out), tables(local_sweep)):
        pd.testing.assert_frame_equal(mine, theirs, check_exact=True)
    for pid in pd.read_parquet(out / "points.parquet")["point_id"]:
        a = Result.load(out / "points" / pid / "result.zarr").data
        b = Result.load(local_sweep / "points" / pid / "result.zarr").data
        assert a.identical(b), pid


def test_each_point_is_the_simulation_its_spec_describes(local_sweep, spec_file):
    point = load_sweep_spec(spec_file).points(11)[4]
    direct = simulate(point.spec)
    stored = Result.load(local_sweep / "points" / point.point_id / "result.zarr")
    assert direct.data.identical(stored.data)
    row = query(local_sweep, f"SELECT * FROM points WHERE point_id = '{point.point_id}'")
    times = direct.data["collapse_time"].values.ravel()
    done = times[~np.isnan(times)]
    assert row["collapsed_runs"][0] == done.size and row["censored_runs"][0] == 64 - done.size
    assert row["collapse_time_mean"][0] == pytest.approx(done.mean(), rel=1e-12)
    # Median with censored runs counted as +inf: the smallest T with F(T) ≥ 1/2.
    ranked = np.sort(np.where(np.isnan(times), np.inf, times))
    median = ranked[31]
    assert (row["collapse_time_median"][0] == median) or (np.isinf(median) and
                                                           np.isnan(row["collapse_time_median"][0]))
    gens = query(local_sweep, f"SELECT sigma_mean, sigma_se FROM generations "
                              f"WHERE point_id = '{point.point_id}' ORDER BY generation")
    mean, se = direct.mean("sigma")
    np.testing.assert_array_equal(gens["sigma_mean"], mean)
    np.testing.assert_array_equal(gens["sigma_se"], se)


class _CrashAfter(Executor):
    """Runs points in this process; the submission after ``survivors`` kills the sweep."""

    def __init__(self, survivors: int):
        self.left = survivors

    def submit(self, fn, /, *args, **kwargs):
        if self.left == 0:
            raise KeyboardInterrupt("simulated kill")
        self.left -= 1
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def test_resume_after_a_crash_skips_finished_points_and_matches(local_sweep, spec_file,
                                                                tmp_path):
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec_file, out, executor=_CrashAfter(2), progress=False)
    finished = sorted(out.glob("points/*/point.parquet"))
    assert len(finished) == 2 and not (out / "points.parquet").exists()
    stamps = {p: p.stat().st_mtime_ns for p in finished}
    # A point killed half-way through writing: files but no marker, and a temporary folder.
    spec = load_sweep_spec(spec_file)
    done_ids = {p.parent.name for p in finished}
    half = next(p for p in spec.points(11) if p.point_id not in done_ids)
    (out / "points" / half.point_id / ".result.zarr.x").mkdir(parents=True)
    (out / "points" / half.point_id / "generations.parquet").write_text("truncated")
    # The views already answer over the finished points.
    assert len(query(out, "SELECT * FROM points")) == 2

    with ThreadPoolExecutor(2) as pool:  # any concurrent.futures executor will do
        outcome = run_sweep(spec_file, out, executor=pool, progress=False)
    assert (outcome.n_skipped, outcome.n_run) == (2, 4)
    assert {p: p.stat().st_mtime_ns for p in finished} == stamps
    assert not (out / "points" / half.point_id / ".result.zarr.x").exists()
    for mine, theirs in zip(tables(out), tables(local_sweep)):
        pd.testing.assert_frame_equal(mine, theirs, check_exact=True)


def test_netcdf_store_holds_the_same_results(local_sweep, spec_file, tmp_path):
    out = tmp_path / "nc"
    with ThreadPoolExecutor(2) as pool:
        run_sweep(spec_file, out, executor=pool, store="netcdf", progress=False)
    for mine, theirs in zip(tables(out), tables(local_sweep)):
        pd.testing.assert_frame_equal(mine, theirs, check_exact=True)
    pid = pd.read_parquet(out / "points.parquet")["point_id"][0]
    a = Result.load(out / "points" / pid / "result.nc").data
    b = Result.load(local_sweep / "points" / pid / "result.zarr").data
    assert a.equals(b) and a.attrs == b.attrs


def test_a_folder_holding_another_sweep_is_refused(local_sweep, spec_file, tmp_path):
    other = tmp_path / "other.toml"
    other.write_text(SPEC.replace("runs = 64", "runs = 65"))
    with pytest.raises(SweepInputError, match="holds a different sweep: 'runs' was 64"):
        run_sweep(other, local_sweep, progress=False)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(SweepInputError, match="holds no sweep"):
        run_sweep(spec_file, tmp_path / "busy", progress=False)


# --- the CLI ----------------------------------------------------------------------------------
def test_cli_sweep_on_a_finished_folder_runs_nothing(local_sweep, spec_file, capsys):
    code, out, err = cli(capsys, "sweep", str(spec_file), "--out", str(local_sweep),
                         "--format", "json")
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["points"], summary["run"], summary["skipped"]) == (6, 0, 6)
    assert summary["seed_entropy"] == "11"


def test_cli_rejects_conflicting_executor_flags(spec_file, tmp_path, capsys):
    code, _, err = cli(capsys, "sweep", str(spec_file), "--out", str(tmp_path / "x"),
                       "--executor", "local", "--scheduler", "tcp://127.0.0.1:1")
    assert code == 2 and "conflict" in err and len(err.strip().splitlines()) == 1


def test_cli_query_formats(local_sweep, capsys):
    sql = "SELECT n, S0, collapse_time_median FROM points ORDER BY n, S0"
    code, out, _ = cli(capsys, "results", "query", str(local_sweep), sql, "--format", "json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 6 and rows[0]["n"] == 4 and rows[0]["S0"] == 0.15
    code, out, _ = cli(capsys, "results", "query", str(local_sweep), sql, "--format", "csv")
    assert out.splitlines()[0] == "n,S0,collapse_time_median" and len(out.splitlines()) == 7
    code, out, _ = cli(capsys, "results", "query", str(local_sweep), sql)
    assert code == 0 and out.split()[:3] == ["n", "S0", "collapse_time_median"]
    code, _, err = cli(capsys, "results", "query", str(local_sweep), "SELECT nope FROM points")
    assert code == 2 and err.startswith("Error: SQL error:")


def test_cli_plot_lines_and_heatmap(local_sweep, tmp_path, capsys):
    heat = tmp_path / "heat.png"
    code, out, err = cli(capsys, "results", "plot", str(local_sweep), "collapse_time_median",
                         "--x", "n", "--y", "S0", "--output", str(heat))
    assert code == 0, err
    assert out.strip() == str(heat) and heat.read_bytes()[:4] == b"\x89PNG"
    lines = tmp_path / "lines.png"
    code, _, err = cli(capsys, "results", "plot", str(local_sweep), "sigma", "--x",
                       "generation", "--hue", "n", "--where", "S0 = 0.3", "--output", str(lines))
    assert code == 0 and lines.stat().st_size > 0, err
    # An axis neither plotted nor fixed would pile points on one another: refused.
    code, _, err = cli(capsys, "results", "plot", str(local_sweep), "sigma", "--x", "n")
    assert code == 2 and "axis 'S0' takes 3 values" in err


def test_views_fall_back_to_point_files_while_unconsolidated(local_sweep, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(local_sweep, copy)
    (copy / "points.parquet").unlink()
    (copy / "generations.parquet").unlink()
    sql = "SELECT point_id, collapse_time_mean FROM points ORDER BY point_id"
    pd.testing.assert_frame_equal(query(copy, sql), query(local_sweep, sql))
    con = connect(copy)
    assert con.execute("SELECT count(*) FROM generations").fetchone()[0] == 6 * 31
