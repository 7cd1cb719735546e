"""Damaged stores heal: a result store that lost a chunk, holds a garbage chunk or lost a
variable, and a truncated Parquet table, are found at load (never read as fill values) and
recomputed by a plain rerun with the numbers an undamaged run gives; ``--replot`` refuses,
naming the damaged cells."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelcollapse import simulate
from modelcollapse.experiments import run_figure
from modelcollapse.experiments.runner import MissingResultError
from modelcollapse.results import INTEGRITY_ATTR, DamagedResultError, Result
from modelcollapse.scenarios import FullySynthetic
from modelcollapse.sweep import SweepInputError, load_sweep_spec, run_sweep
from result_tables import assert_identical_results, sweep_tables
from small_figure import reference_figure

# --- damages, each on a Zarr store ------------------------------------------------------------


def delete_chunk(store: Path, variable: str = "sigma_mean") -> None:
    next(p for p in (store / variable / "c").rglob("*") if p.is_file()).unlink()


def garbage_chunk(store: Path, variable: str = "count") -> None:
    chunk = next(p for p in (store / variable / "c").rglob("*") if p.is_file())
    chunk.write_bytes(b"\x00garbage" * 4)


def delete_variable(store: Path, variable: str = "sigma_final") -> None:
    shutil.rmtree(store / variable)


DAMAGES = {"deleted chunk": (delete_chunk, "chunk sigma_mean/c/"),
           "garbage chunk": (garbage_chunk, "variable 'count' does not read"),
           "deleted variable": (delete_variable, "variable 'sigma_final' is missing")}


@pytest.fixture(scope="module")
def small_result(p0_small_module) -> Result:
    return simulate(p0=p0_small_module, scenario=FullySynthetic(4), runs=20, generations=10,
                    seed=1, trajectories=3, progress=False)


@pytest.fixture(scope="module")
def p0_small_module() -> np.ndarray:
    from modelcollapse.distributions import target_distribution

    return np.stack([target_distribution(8, 5, 0.3, seed=0)] * 2)


# --- Result.load ------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", list(DAMAGES))
@pytest.mark.parametrize("lazy", [False, True])
def test_a_damaged_store_is_named_never_read_as_fill_values(tmp_path, small_result, damage,
                                                            lazy):
    store = small_result.save(tmp_path / "r.zarr")
    make, message = DAMAGES[damage]
    make(store)
    with pytest.raises(DamagedResultError, match=message) as caught:
        Result.load(store, lazy=lazy)
    assert str(store) in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(DamagedResultError):
        Result.check(store)


def test_a_lost_trajectory_chunk_of_a_streamed_store_is_found_without_reading_it(
        tmp_path, p0_small_module):
    res = simulate(p0=p0_small_module, scenario=FullySynthetic(4), runs=30, generations=40,
                   seed=2, trajectories="all", trajectory_memory_mb=0.002,
                   store=tmp_path / "s.zarr", progress=False)
    chunks = sorted(p for p in (tmp_path / "s.zarr" / "sup_trajectory").rglob("*")
                    if p.is_file() and p.name != "zarr.json")
    record = json.loads(json.loads((tmp_path / "s.zarr" / "zarr.json").read_text())
                        ["attributes"][INTEGRITY_ATTR])["variables"]
    # Streamed: recorded by its chunk files (never whole in memory), the rest by checksums.
    assert "crc32" not in record["sup_trajectory"] and record["sup_trajectory"]["files"]
    assert "crc32" in record["sup_mean"]
    Result.check(tmp_path / "s.zarr")
    assert res.trajectories is not None and chunks
    chunks[-1].unlink()
    with pytest.raises(DamagedResultError, match=r"chunk sup_trajectory/c/.* is missing"):
        Result.load(tmp_path / "s.zarr", lazy=True)


def test_a_changed_value_fails_its_checksum(tmp_path, small_result):
    import zarr

    store = small_result.save(tmp_path / "r.zarr")
    array = zarr.open_array(store / "sigma_final", mode="r+")
    array[0, 0] = array[0, 0] + 1.0       # a valid chunk, of other values (and maybe size)
    with pytest.raises(DamagedResultError, match="sigma_final"):
        Result.load(store)
    assert Result.load(store, verify=False).data["sigma_final"].values[0, 0] == \
        small_result.data["sigma_final"].values[0, 0] + 1.0


def test_a_truncated_netcdf_file_is_damaged(tmp_path, small_result):
    path = small_result.save(tmp_path / "r.nc")
    Result.check(path)
    path.write_bytes(path.read_bytes()[:1500])
    with pytest.raises(DamagedResultError, match="does not read as NetCDF"):
        Result.load(path)


def test_stores_without_a_record_load_and_are_checked_for_their_variables(tmp_path,
                                                                         small_result):
    """Written before records existed: loaded as before, a missing variable still found."""
    import zarr

    store = small_result.save(tmp_path / "old.zarr")
    group = zarr.open_group(store, mode="r+")
    del group.attrs[INTEGRITY_ATTR]
    assert_identical_results(Result.load(store), small_result)
    delete_variable(store, "sup_m2")
    with pytest.raises(DamagedResultError, match="variable 'sup_m2' is missing"):
        Result.load(store)


# --- reproduce: a damaged cell ----------------------------------------------------------------

@pytest.fixture(scope="module")
def figure_reference(tmp_path_factory):
    _, figure, run = reference_figure(tmp_path_factory.mktemp("figure"), "heal", seed=5,
                                      generations=12)
    return figure, run


def test_reproduce_recomputes_damaged_cells_and_replot_names_them(figure_reference, tmp_path,
                                                                  capsys):
    figure, reference = figure_reference
    out = tmp_path / "out"
    shutil.copytree(reference.directory.parent, out)
    results = out / "heal" / "results"
    delete_chunk(results / "a.zarr")              # the σ read as "—"
    garbage_chunk(results / "b.zarr", "sigma_trajectory")
    delete_variable(results / "c.zarr", "collapsed_mean")

    with pytest.raises(MissingResultError) as caught:
        run_figure(figure, out, replot=True, progress=False)
    message = str(caught.value)
    assert "\n" not in message and "--replot" in message
    for key, damage in (("a", "chunk sigma_mean/c/"), ("b", "'sigma_trajectory' does not read"),
                        ("c", "'collapsed_mean' is missing")):
        assert f"cell {key!r} is damaged" in message and damage in message

    capsys.readouterr()
    again = run_figure(figure, out, progress=False)
    err = capsys.readouterr().err
    assert again.summary["simulated_cells"] == ["a", "b", "c"]
    assert err.count("is damaged") == 3 and "simulating it again" in err
    for cell in figure.cells:
        assert_identical_results(Result.load(results / f"{cell.key}.zarr"),
                                 reference.results[cell.key])
    assert [c["numbers"] for c in again.summary["cells"]] == \
        [c["numbers"] for c in reference.summary["cells"]]
    # Healed: the next rerun simulates nothing, and replot works.
    assert run_figure(figure, out, replot=True, progress=False).summary["simulated_cells"] == []


# --- sweep: a damaged point -------------------------------------------------------------------

SWEEP = """\
runs = 16
generations = 12
seed = 3
vocab = 20
support = 6
S0 = 0.3
trajectories = 2

[axes]
n = [4, 8, 16]
"""



def sweep(spec: Path, out: Path):
    with ThreadPoolExecutor(2) as pool:
        return run_sweep(spec, out, executor=pool, progress=False)


@pytest.fixture(scope="module")
def sweep_reference(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("sweep")
    (folder / "heal.toml").write_text(SWEEP)
    sweep(folder / "heal.toml", folder / "reference")
    return folder / "heal.toml", folder / "reference"


def assert_same_sweep(out: Path, reference: Path) -> None:
    for mine, theirs in zip(sweep_tables(out), sweep_tables(reference)):
        pd.testing.assert_frame_equal(mine, theirs, check_exact=True)
    for store in sorted(reference.glob("points/*/result.zarr")):
        assert_identical_results(Result.load(out / store.relative_to(reference)),
                                 Result.load(store))
    assert not list(out.rglob("*.partial"))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_sweep_reruns_damaged_points_with_the_same_numbers(sweep_reference, tmp_path, capsys):
    spec_path, reference = sweep_reference
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    ids = [p.point_id for p in load_sweep_spec(spec_path).points(3)]
    delete_chunk(out / "points" / ids[0] / "result.zarr")
    garbage_chunk(out / "points" / ids[1] / "result.zarr", "sigma_trajectory")
    delete_variable(out / "points" / ids[2] / "result.zarr", "absorbed_token")
    capsys.readouterr()
    outcome = sweep(spec_path, out)
    assert (outcome.n_skipped, outcome.n_run) == (0, 3)
    assert capsys.readouterr().err.count("is damaged") == 3
    assert_same_sweep(out, reference)


@pytest.mark.parametrize("table", ["point.parquet", "generations.parquet"])
def test_sweep_reruns_a_point_whose_table_is_truncated(sweep_reference, tmp_path, table):
    spec_path, reference = sweep_reference
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    first = load_sweep_spec(spec_path).points(3)[0].point_id
    truncate(out / "points" / first / table)
    outcome = sweep(spec_path, out)
    assert (outcome.n_skipped, outcome.n_run) == (2, 1)
    assert_same_sweep(out, reference)


def test_sweep_rebuilds_truncated_whole_grid_tables(sweep_reference, tmp_path):
    spec_path, reference = sweep_reference
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    truncate(out / "points.parquet")
    truncate(out / "generations.parquet")
    outcome = sweep(spec_path, out)
    assert (outcome.n_skipped, outcome.n_run) == (3, 0)
    assert_same_sweep(out, reference)


@pytest.mark.parametrize("text", ["{\"seed_entropy\": ", "[1, 2]", "{}"])
def test_a_damaged_sweep_manifest_is_one_line_naming_it(sweep_reference, tmp_path, text):
    spec_path, reference = sweep_reference
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    (out / "sweep.json").write_text(text)
    with pytest.raises(SweepInputError) as caught:
        sweep(spec_path, out)
    message = str(caught.value)
    assert str(out / "sweep.json") in message and "damaged" in message and "\n" not in message


def test_a_damaged_sweep_manifest_exits_2_from_the_cli(sweep_reference, tmp_path, capsys):
    import click

    from modelcollapse.cli import sweep as sweep_cli
    from modelcollapse.cli._common import run_main

    spec_path, reference = sweep_reference
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    (out / "sweep.json").write_bytes(b"\x00\x01")
    code = run_main(click.Group("m", commands=[sweep_cli.command]),
                    ["sweep", str(spec_path), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "sweep.json" in err


# --- lm checkpoints ---------------------------------------------------------------------------

def test_a_checkpoint_stage_is_finished_only_when_its_files_are_whole(tmp_path):
    torch = pytest.importorskip("torch")
    from modelcollapse.lm.checkpoint import (
        file_record,
        save_array,
        save_weights,
        stage_finished,
        write_json,
    )

    files = [save_weights(tmp_path / "model.pt", {"w": torch.arange(6.0)}),
             save_array(tmp_path / "probs.npy", np.linspace(0, 1, 50))]
    meta = tmp_path / "model.json"
    assert not stage_finished(meta, files)                      # not written yet
    write_json(meta, {"recipe": "x", "files": file_record(files)})
    assert stage_finished(meta, files)
    data = files[1].read_bytes()
    files[1].write_bytes(data[:-8] + b"\xff" * 8)               # same size, other bytes
    assert not stage_finished(meta, files)
    files[1].write_bytes(data)
    meta.write_text("{\"recipe\": ")                            # a damaged JSON
    assert not stage_finished(meta, files)
    # Written before records existed: each file must load.
    write_json(meta, {"recipe": "x"})
    assert stage_finished(meta, files)
    files[0].write_bytes(files[0].read_bytes()[:40])
    assert not stage_finished(meta, files)
    assert json.loads(meta.read_text()) == {"recipe": "x"}
