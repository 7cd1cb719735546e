"""``simulate --trajectories``: what the CLI keeps, and what it refuses before any work."""

from __future__ import annotations

from modelcollapse.cli import main
from modelcollapse.results import Result


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_number_of_runs_keeps_those_runs(capsys, tmp_path):
    code, _, _ = run(capsys, "simulate", "--runs", "30", "--generations", "12", "--seed", "1",
                     "--trajectories", "4", "--out", str(tmp_path / "o"), "--no-progress")
    assert code == 0
    res = Result.load(tmp_path / "o" / "result.zarr")
    assert list(res.trajectories["run"].values) == [0, 1, 2, 3]
    assert res.data.sizes["run"] == 30 and res.data["count"].values.min() == 30
    assert (tmp_path / "o" / "simulation.png").stat().st_size > 0


def test_none_keeps_the_statistics_and_still_plots(capsys, tmp_path):
    code, _, _ = run(capsys, "simulate", "--runs", "30", "--generations", "12", "--seed", "1",
                     "--trajectories", "none", "--out", str(tmp_path / "o"), "--no-progress")
    assert code == 0
    res = Result.load(tmp_path / "o" / "result.zarr")
    assert res.trajectories is None
    assert res.mean("sigma")[0].shape == (13,)
    assert (tmp_path / "o" / "simulation.png").stat().st_size > 0


def test_all_beyond_the_budget_is_refused_without_a_store(capsys):
    code, _, err = run(capsys, "simulate", "--runs", "4000", "--generations", "100000",
                       "--trajectories", "all", "--no-progress")
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "'trajectories'" in err and "MB" in err and "--out" in err


def test_all_beyond_the_budget_streams_to_the_store(capsys, tmp_path):
    args = ("simulate", "--runs", "40", "--generations", "150", "--seed", "3", "--n", "30",
            "--no-progress", "--format", "json")
    code, streamed_summary, _ = run(capsys, *args, "--trajectories", "all",
                                    "--trajectory-memory-mb", "0.05",
                                    "--out", str(tmp_path / "streamed"))
    assert code == 0
    code, summary, _ = run(capsys, *args, "--trajectories", "all",
                           "--out", str(tmp_path / "memory"))
    assert code == 0 and streamed_summary == summary
    streamed = Result.load(tmp_path / "streamed" / "result.zarr")
    memory = Result.load(tmp_path / "memory" / "result.zarr")
    assert streamed.trajectories.sizes["run"] == 40
    for name in memory.trajectories.data_vars:
        assert (streamed.trajectories[name].values == memory.trajectories[name].values).all()
    assert (tmp_path / "streamed" / "simulation.png").stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "streamed").iterdir()) == [
        "result.zarr", "simulation.png", "summary.json"]


def test_auto_says_on_stderr_how_many_runs_it_keeps(capsys):
    code, _, err = run(capsys, "simulate", "--runs", "200", "--generations", "100",
                       "--trajectory-memory-mb", "0.5", "--seed", "1", "--no-progress")
    assert code == 0
    assert "trajectories: keeping runs 0 … 87 of 200" in err  # 0.5 MB / (7 · 101 · 8 B)


def test_a_bad_value_is_refused_in_one_line(capsys):
    for bad in ("some", "-3"):
        code, _, err = run(capsys, "simulate", "--runs", "5", "--trajectories", bad)
        assert code == 2 and "'trajectories'" in err and len(err.strip().splitlines()) == 1
