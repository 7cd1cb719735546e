import json

import numpy as np
import pytest

from modelcollapse.cli import main
from modelcollapse.results import Result


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_summary_has_the_documented_fields(capsys):
    code, out, _ = run(capsys, "simulate", "--runs", "50", "--generations", "30", "--seed", "1",
                       "--format", "json", "--no-progress")
    assert code == 0
    summary = json.loads(out)
    for key in ("S0", "support", "collapse_time_mean", "collapse_time_se", "censored_runs",
                "absorbed_token_counts", "absorption_time_mean", "absorption_time_se",
                "absorption_censored_runs"):
        assert key in summary
    for key in ("sigma_mean", "sigma_se", "l1_to_first_mean", "l1_to_first_se"):
        assert len(summary[key]) == 31  # m = 0 … 30
    assert abs(summary["sigma_mean"][0] - 0.1) < 1e-12 and summary["support"] == 52
    absorbed = sum(summary["absorbed_token_counts"].values())
    assert absorbed + summary["absorption_censored_runs"] == 50


def test_same_seed_same_output(capsys):
    args = ("simulate", "--runs", "20", "--generations", "10", "--seed", "9", "--format", "json")
    assert run(capsys, *args)[1] == run(capsys, *args)[1]


def test_thread_count_does_not_change_the_output(capsys):
    args = ("simulate", "--scenario", "partially-synthetic", "--N", "30", "--n", "5", "--runs",
            "2500", "--generations", "12", "--seed", "4", "--format", "json")
    one = run(capsys, *args, "--threads", "1")
    assert one[0] == 0 and one[1] == run(capsys, *args, "--threads", "3")[1]


def test_out_dir_gets_result_summary_and_plot(tmp_path, capsys):
    out = tmp_path / "sim"
    code, text, _ = run(capsys, "simulate", "--scenario", "partially-synthetic", "--N", "50",
                        "--n", "5", "--runs", "20", "--generations", "10", "--seed", "2",
                        "--out", str(out))
    assert code == 0 and "partially-synthetic" in text
    res = Result.load(out / "result.zarr")
    assert res.mean("sigma")[0].shape == (11,)
    assert res.trajectories["sigma"].shape == (20, 1, 11)  # "auto": every run fits
    assert json.loads((out / "summary.json").read_text())["runs"] == 20
    assert (out / "simulation.png").stat().st_size > 10_000


@pytest.mark.parametrize("metrics", ["collapsed", "sigma,l1_to_first"])
def test_plot_needs_no_trajectories_and_takes_any_metrics(tmp_path, capsys, metrics):
    """The summary figure draws the means and their bands from the statistics alone."""
    out = tmp_path / "sim"
    code, _, err = run(capsys, "simulate", "--runs", "20", "--generations", "10", "--seed", "2",
                       "--metrics", metrics, "--trajectories", "none", "--out", str(out))
    assert code == 0, err
    assert Result.load(out / "result.zarr").trajectories is None
    assert (out / "simulation.png").stat().st_size > 5_000


@pytest.mark.parametrize("trajectories, thin", [("none", 0), (5, 3), ("all", 3)])
def test_plot_runs_draws_the_kept_runs_up_to_max_runs(trajectories, thin):
    import matplotlib.pyplot as plt

    from modelcollapse import simulate
    from modelcollapse.plots import plot_runs

    res = simulate(runs=10, generations=6, seed=1, trajectories=trajectories, progress=False)
    fig, ax = plt.subplots()
    plot_runs(ax, res, "sigma", max_runs=3)
    mean, se = res.mean("sigma")
    assert len(ax.lines) == thin + 1
    np.testing.assert_array_equal(ax.lines[-1].get_ydata(), mean)  # the bold mean, last
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert np.isclose(band.max(), np.max(mean + 2 * se))
    plt.close(fig)


def test_config_file_and_flag_override(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text('scenario = "most-recent"\nK = 2\nn = 6\nruns = 10\ngenerations = 8\n'
                    'seed = 3\nvocab = 50\nsupport = 10\nS0 = 0.2\n')
    code, out, _ = run(capsys, "simulate", "--config", str(spec), "--runs", "12",
                       "--format", "json")
    summary = json.loads(out)
    assert code == 0 and summary["runs"] == 12 and summary["scenario"].startswith("most-recent")


def test_p0_file(tmp_path, capsys):
    p = tmp_path / "p0.json"
    p.write_text(json.dumps([0.5, 0.25, 0.25]))
    code, out, _ = run(capsys, "simulate", "--p0", str(p), "--runs", "10", "--generations", "5",
                       "--seed", "1", "--format", "json")
    assert code == 0 and json.loads(out)["vocab"] == 3
    assert abs(json.loads(out)["S0"] - 0.375) < 1e-12


@pytest.mark.parametrize("args, message", [
    (("--S0", "0.001"), "The 'S0' parameter of simulate must be in [1/support, 1]"),
    (("--support", "700"), "The 'support' parameter of simulate must be at most 'vocab'"),
    (("--scenario", "partially-synthetic"), "The 'N' parameter of simulate is "
        "required by scenario"),
    (("--scenario", "most-recent"), "The 'K' parameter of simulate is required by scenario"),
    (("--scenario", "most-recent", "--K", "20", "--window-split", "literal"), "at most 'n'"),
    (("--scenario", "nope"), "The 'scenario' parameter of simulate must be one of"),
    (("--n", "0"), "The 'n' parameter of simulate must be ≥ 1. Got 0 instead."),
    (("--runs", "-3"), "The 'runs' parameter of simulate must be ≥ 1. Got -3 instead."),
    (("--metrics", "sigma,bogus"), "The 'metrics' parameter of simulate must be among"),
    (("--p0", "missing.npy"), "The 'p0' parameter of simulate must name an existing file"),
    (("--p0", "PLACEHOLDER", "--S0", "0.2"), "The 'p0' and 'S0' parameters of simulate conflict"),
    (("--config", "missing.toml"), "The 'config' parameter must name an existing TOML file"),
    (("--generations", "ten"), "is not a valid integer"),
    (("--threads", "0"), "Invalid value for '--threads'"),
    (("--device", "cuda"), "The 'device' parameter of simulate is 'cuda', "
        "which needs backend 'torch'"),
    (("--representation", "counts", "--scenario", "random-pool"),
     "needs the order of the tokens"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, args, message):
    good = tmp_path / "p.txt"
    good.write_text("0.5 0.5")
    args = tuple(str(good) if a == "PLACEHOLDER" else a for a in args)
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, "simulate", *args, "--out", str(out))
    assert code == 2
    assert stderr.count("\n") == 1 and message in stderr, stderr
    assert stdout == "" and not out.exists()


def test_bad_toml_key_fails(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text("runz = 10\n")
    code, _, err = run(capsys, "simulate", "--config", str(spec))
    assert code == 2 and "runz" in err


def test_result_roundtrip_zarr_and_netcdf(tmp_path):
    from modelcollapse import simulate

    res = simulate(runs=30, generations=12, seed=4, progress=False)
    for name in ("r.zarr", "r.nc"):
        res.save(tmp_path / name)
        back = Result.load(tmp_path / name)
        for var in ("count", "sigma_mean", "sigma_m2", "sigma_final", "collapse_time",
                    "absorbed_token", "collapsed_final", "p0"):
            assert np.array_equal(back.data[var].values, res.data[var].values, equal_nan=True)
        assert back.trajectories.equals(res.trajectories)
        assert back.summary() == res.summary()
    res.save(tmp_path / "r.zarr")  # overwriting an existing store is atomic too
    assert Result.load(tmp_path / "r.zarr").seed_entropy == 4


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("representation", ["tokens", "counts"])
def test_representation_is_chosen_from_the_command_line(tmp_path, capsys, backend,
                                                        representation):
    if backend == "torch":
        pytest.importorskip("torch")
    out = tmp_path / representation
    code, _, err = run(capsys, "simulate", "--backend", backend, "--representation",
                       representation, "--runs", "20", "--generations", "6", "--seed", "3",
                       "--out", str(out))
    assert code == 0, err
    data = Result.load(out / "result.zarr").data
    assert data.attrs["representation"] == representation
    assert data.attrs["backend"] == backend
    assert json.loads(data.attrs["spec"])["representation"] == representation


def test_explain_prints_the_plan_and_simulates_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "simulate", "--explain", "--vocab", "2", "--support", "2",
                            "--S0", "0.9", "--n", "10000", "--runs", "50", "--seed", "3",
                            "--out", str(out))
    assert code == 0, err
    plan = dict(line.split(None, 1) for line in stdout.splitlines())
    assert plan["representation"] == "counts"  # 10⁴ draws over a live support of 2
    assert plan["backend"] == "numpy" and plan["n_runs"] == "50"
    assert plan["entropy"] == "3"
    assert not out.exists()


def test_counts_for_a_scenario_that_needs_token_order_is_refused(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, "simulate", "--backend", "torch", "--representation",
                               "counts", "--scenario", "random-pool", "--out", str(out))
    assert code == 2 and stderr.count("\n") == 1
    assert "needs the order of the tokens" in stderr
    assert stdout == "" and not out.exists()
