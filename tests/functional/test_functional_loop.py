"""The functional loop: seeds, scenarios, weight decay, the Result, and the CLI's edges."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from modelcollapse import functional  # noqa: E402
from modelcollapse.cli import main  # noqa: E402
from modelcollapse.results import Result  # noqa: E402

SMALL = {"contexts": 5, "vocab": 6, "dim": 3, "runs": 12, "generations": 6}


def test_same_seed_same_result_and_seed_matters():
    a = functional.run(SMALL, seed=3, progress=False)
    b = functional.run(SMALL, seed=3, progress=False)
    c = functional.run(SMALL, seed=4, progress=False)
    assert np.array_equal(a.data["sigma_mean"].values, b.data["sigma_mean"].values)
    assert not np.array_equal(a.data["sigma_mean"].values, c.data["sigma_mean"].values)


@pytest.mark.parametrize("scenario,extra", [
    ("partially-synthetic", {"N": 20}), ("most-recent", {"K": 2}), ("random-pool", {}),
    ("accumulate", {"N": 20}), ("accumulate-subsample", {"N": 20}), ("fresh-real", {"N": 20}),
])
def test_every_scenario_runs(scenario, extra):
    res = functional.run({**SMALL, "scenario": scenario, **extra}, seed=0, progress=False)
    sigma, _ = res.mean("sigma")
    assert np.all((sigma >= 1 / 6 - 1e-12) & (sigma <= 1))
    assert res.data.attrs["scenario"].startswith(scenario)


def test_weight_decay_keeps_the_model_away_from_collapse():
    """λ = 0.05 with c = 5: the fit is pulled towards uniform; σ stays below the λ = 0 loop's
    and no context collapses within ε."""
    base = {**SMALL, "dim": 5, "runs": 20, "generations": 20}
    free = functional.run(base, seed=1, progress=False)
    decayed = functional.run({**base, "weight_decay": 0.05}, seed=1, progress=False)
    assert decayed.mean("sigma")[0][-1] < free.mean("sigma")[0][-1]
    assert np.isnan(decayed.data["collapse_time"].values).all()


def test_result_saves_and_loads(tmp_path):
    res = functional.run(SMALL, seed=0, progress=False)
    res.save(tmp_path / "r.zarr")
    back = Result.load(tmp_path / "r.zarr")
    assert np.allclose(back.mean("sigma")[0], res.mean("sigma")[0])
    assert len(res.to_dataframe()) == 5 * 7


def test_cli_run_writes_outputs(tmp_path, capsys):
    code = main(["functional", "run", "--contexts", "4", "--vocab", "5", "--dim", "2",
                 "--runs", "6", "--generations", "4", "--out", str(tmp_path / "o"),
                 "--no-progress"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["runs"] == 6
    for name in ("result.zarr", "summary.json", "functional.png"):
        assert (tmp_path / "o" / name).exists()


@pytest.mark.parametrize("argv,message", [
    (["--n", "0"], "The 'n' parameter of functional run must be ≥ 1. Got 0 instead."),
    (["--embedding", "onehot", "--dim", "3", "--contexts", "5"],
     "The 'dim' parameter of functional run must be at least 'contexts' (5)"),
    (["--weight-decay", "-1"], "The 'weight_decay' parameter of functional run must be ≥ 0."),
    (["--steps", "5"], "The 'steps' parameter of functional run applies to solver 'gd' only"),
    (["--scenario", "partially-synthetic"], "The 'N' parameter of functional run is required"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, message):
    out = tmp_path / "o"
    code = main(["functional", "run", *argv, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err
    assert not out.exists()


def test_cli_figure_small(tmp_path, capsys):
    code = main(["functional", "figure", "--out", str(tmp_path), "--dims", "2,6",
                 "--weight-decays", "0,0.01", "--contexts", "4", "--vocab", "5", "--runs", "6",
                 "--generations", "5", "--no-progress"])
    assert code == 0
    grid = json.loads((tmp_path / "functional_grid.json").read_text())
    assert len(grid["cells"]) == 4
    assert (tmp_path / "functional_figure.png").exists()
    assert len(list((tmp_path / "cells").glob("cell_*.json"))) == 4
    # A rerun takes every cell from OUT/cells (one removed is computed again, the same).
    (tmp_path / "cells" / "cell_d6_lambda0.01.json").unlink()
    code = main(["functional", "figure", "--out", str(tmp_path), "--dims", "2,6",
                 "--weight-decays", "0,0.01", "--contexts", "4", "--vocab", "5", "--runs", "6",
                 "--generations", "5", "--no-progress"])
    assert code == 0
    again = json.loads((tmp_path / "functional_grid.json").read_text())
    strip = [{k: v for k, v in cell.items() if k != "seconds"} for cell in grid["cells"]]
    assert [{k: v for k, v in cell.items() if k != "seconds"} for cell in again["cells"]] == strip


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    cpu = functional.run(SMALL, seed=0, progress=False)
    gpu = functional.run({**SMALL, "device": "cuda"}, seed=0, progress=False)
    assert np.allclose(cpu.mean("sigma")[0], gpu.mean("sigma")[0], atol=1e-6)
