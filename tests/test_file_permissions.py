"""Every file and folder written through a temporary ends with the mode the umask gives, as
an ordinary open() or mkdir() would have made it (0644/0755 under umask 022, 0664/0775
under 002), not the 0600/0700 of the temporary."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from modelcollapse import simulate
from modelcollapse._files import atomic_write_text
from modelcollapse.scenarios import FullySynthetic

UMASKS = [0o022, 0o002, 0o077]


@pytest.fixture(params=UMASKS, ids=lambda m: f"umask{m:03o}")
def umask(request):
    before = os.umask(request.param)
    yield request.param
    os.umask(before)


def assert_modes(root: Path, mask: int) -> int:
    """Every file and folder under ``root`` (itself included) has the umask's mode; how many
    were checked."""
    paths = [root, *root.rglob("*")]
    for path in paths:
        want = (0o777 if path.is_dir() else 0o666) & ~mask
        assert stat.S_IMODE(path.stat().st_mode) == want, (str(path), oct(want))
    return len(paths)


def test_result_stores_follow_the_umask(tmp_path, p0_small, umask):
    root = tmp_path / "w"
    root.mkdir()
    res = simulate(p0=p0_small, scenario=FullySynthetic(4), runs=20, generations=10, seed=1,
                   trajectories=3, progress=False)
    res.save(root / "r.zarr")
    res.save(root / "r.zarr")            # replacing a store too
    res.save(root / "r.nc")
    simulate(p0=p0_small, scenario=FullySynthetic(4), runs=20, generations=30, seed=1,
             trajectories="all", trajectory_memory_mb=0.001, store=root / "streamed.zarr",
             progress=False)
    assert assert_modes(root, umask) > 20


def test_text_figures_and_parquet_follow_the_umask(tmp_path, umask):
    import matplotlib.pyplot as plt

    from modelcollapse.plots import save_figure
    from modelcollapse.report import write_report
    from modelcollapse.sweep.store import _write_parquet

    root = tmp_path / "w"
    root.mkdir()
    atomic_write_text(root / "notes.txt", "one")
    atomic_write_text(root / "notes.txt", "two")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    save_figure(fig, root / "fig" / "plot.png", pdf=True)
    _write_parquet(pa.table({"x": [1, 2]}), root / "t.parquet")
    write_report(root)
    assert (root / "fig" / "plot.pdf").read_bytes().startswith(b"%PDF")
    assert {p.name for p in root.iterdir()} >= {"report.md", "report.html", "t.parquet"}
    assert assert_modes(root, umask) == 8


def test_a_figure_run_and_a_sweep_follow_the_umask(tmp_path, umask):
    from modelcollapse.experiments import load_figure, run_figure
    from modelcollapse.sweep import run_sweep

    spec = tmp_path / "one.toml"
    spec.write_text('id = "one"\ntitle = "t"\npaper = "none"\nlayout = "runs_grid"\n'
                    'seed = 5\ntrajectories = 2\n[base]\nvocab = 10\nsupport = 4\nS0 = 0.3\n'
                    'generations = 8\nruns = 4\nn = 4\n[[cells]]\nkey = "only"\nlabel = "x"\n')
    run_figure(load_figure(spec), tmp_path / "fig", progress=False)
    sweep = tmp_path / "sweep.toml"
    sweep.write_text("runs = 4\ngenerations = 8\nseed = 1\nvocab = 10\nsupport = 4\n"
                     "S0 = 0.3\n[axes]\nn = [4, 8]\n")
    with ThreadPoolExecutor(1) as pool:
        run_sweep(sweep, tmp_path / "sw", executor=pool, progress=False)
    assert (tmp_path / "sw" / "sweep.json").is_file()
    assert assert_modes(tmp_path / "fig", umask) > 10
    assert assert_modes(tmp_path / "sw", umask) > 10


def test_checkpoints_follow_the_umask(tmp_path, umask):
    torch = pytest.importorskip("torch")
    from modelcollapse.lm.checkpoint import copy_file, save_array, save_weights, write_json

    root = tmp_path / "w"
    save_array(root / "gen_00" / "probs.npy", np.ones(3))
    save_weights(root / "gen_00" / "model.pt", {"w": torch.ones(2)})
    write_json(root / "gen_00" / "model.json", {"recipe": "x"})
    copy_file(root / "gen_00" / "probs.npy", root / "gen_01" / "probs.npy")
    assert assert_modes(root, umask) == 7
