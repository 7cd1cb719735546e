"""Every input a verb cannot run is refused before any work: exit code 2, one line on stderr
naming the field and the rule, nothing written. The cases are those a new user met (each
ended in a traceback, a hang or a half-written folder), one verb after another."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from cli_runner import run_in
from modelcollapse.engine.footprint import MEMORY_VARIABLE

#: A machine of this many GB, so that what is refused does not depend on the one running.
MACHINE_GB = "16"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv(MEMORY_VARIABLE, MACHINE_GB)
    bad = tmp_path / "p0"
    bad.mkdir()
    np.save(bad / "nan.npy", np.array([0.5, np.nan, 0.5]))
    np.save(bad / "inf.npy", np.array([0.5, np.inf, 0.5]))
    np.save(bad / "negative.npy", np.array([1.5, -0.5]))
    np.save(bad / "zeros.npy", np.zeros(4))
    np.save(bad / "empty.npy", np.zeros(0))
    np.save(bad / "cube.npy", np.full((2, 2, 2), 0.5))
    np.save(bad / "scalar.npy", np.array(1.0))
    np.save(bad / "row_sums_1.8.npy", np.array([[0.5, 0.5], [0.9, 0.9]]))
    np.save(bad / "three_rows.npy", np.full((3, 4), 0.25))
    (bad / "ragged.csv").write_text("0.5,0.5\n1.0\n")
    (bad / "words.txt").write_text("hello world\n")
    (bad / "unknown.dat").write_text("0.5 0.5\n")
    (bad / "pickle.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    (bad / "no_p.json").write_text(json.dumps({"q": [0.5, 0.5]}))
    (bad / "latin1.toml").write_bytes(b"vocab = 10\n# \xff\xfe\n")
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "huge_axis.toml").write_text(
        "runs = 10\ngenerations = 5\n[axes]\nn = { start = 1, stop = 1e9, num = 1000000000 }\n")
    (tmp_path / "huge_runs.toml").write_text("runs = 1000000000\n[axes]\nn = [1, 2]\n")
    (tmp_path / "small.toml").write_text("runs = 4\ngenerations = 3\n[axes]\nn = [1, 2]\n")
    (tmp_path / "huge_vocab.toml").write_text(
        "runs = 10\ngenerations = 5\nsupport = 52\n[axes]\nvocab = [600, 1000000000]\n")
    return tmp_path


BAD_P0 = ["nan.npy", "inf.npy", "negative.npy", "zeros.npy", "empty.npy", "cube.npy",
          "scalar.npy", "row_sums_1.8.npy", "ragged.csv", "words.txt", "unknown.dat",
          "pickle.npy", "no_p.json"]

CASES = {
    # sizes beyond the machine (issue item 2) and the hangs (item 3)
    "runs 1e9": (["simulate", "--runs", "1000000000"], "per-run outcomes"),
    "generations 1e9": (["simulate", "--generations", "1000000000"], "per-generation"),
    "vocab 1e9": (["simulate", "--vocab", "1000000000", "--support", "52"], "p(0)"),
    "contexts 1e7": (["simulate", "--contexts", "10000000"], "p(0)"),
    "n 1e12 on tokens": (["simulate", "--n", "1000000000000", "--representation", "tokens"],
                         "models"),
    "theory n 1e12": (["theory", "--n", "1000000000000"], "'n' parameter of theory"),
    "theory N 1e12": (["theory", "--n", "10", "--N", "1000000000000"], "corpus-count"),
    "budget runs 1e9": (["budget", "--N", "100", "--epsilon", "0.1", "--runs",
                         "1000000000"], "per-run outcomes"),
    "budget generations 1e9 simulated": (["budget", "--N", "100", "--epsilon", "0.1",
                                          "--generations", "1000000000"], "per-generation"),
    "reproduce fig3 runs 1e9": (["reproduce", "fig3", "--runs", "1000000000", "--out", "r"],
                                "per-run outcomes"),
    "sweep of 1e9 points": (["sweep", "huge_axis.toml", "--out", "s"], "'axes' parameter"),
    "sweep of 1e9 runs": (["sweep", "huge_runs.toml", "--out", "s"], "per-run outcomes"),
    "sweep with a point of vocab 1e9": (["sweep", "huge_vocab.toml", "--out", "s"],
                                        "grid point vocab=1000000000: simulate would need"),
    # files and values that ended in tracebacks (item 4)
    "config not UTF-8": (["simulate", "--config", "p0/latin1.toml"], "'config'"),
    "S0 nan": (["simulate", "--S0", "nan"], "'S0' parameter of simulate must be a finite"),
    "out is a file": (["simulate", "--out", "a_file"], "out'"),
    "reproduce out is a file": (["reproduce", "fig1", "--quick", "--out", "a_file"], "out'"),
    "sweep out is a file": (["sweep", "huge_runs.toml", "--out", "a_file"], "out'"),
    # flags that would do nothing (item 7)
    "reproduce device without fig5": (["reproduce", "fig1", "--quick", "--device", "cuda"],
                                      "'device' parameter of reproduce applies to fig5"),
    "reproduce with-fig5 without all": (["reproduce", "fig1", "--with-fig5"], "'with-fig5'"),
    "K with fully-synthetic": (["simulate", "--K", "3"], "'K' parameter"),
    "N with fully-synthetic": (["simulate", "--N", "3"], "'N' parameter"),
    "S0 with zipf": (["simulate", "--family", "zipf", "--S0", "0.2"], "'S0' parameter"),
    "contexts with a p(0) file": (["simulate", "--contexts", "5", "--p0",
                                   "p0/three_rows.npy"], "'contexts'"),
    **{f"simulate p0 {name}": (["simulate", "--p0", f"p0/{name}"], "'p0' parameter of simulate")
       for name in BAD_P0},
    **{f"theory p0 {name}": (["theory", "--n", "5", "--p0", f"p0/{name}"], "'p0'")
       for name in BAD_P0 if name != "row_sums_1.8.npy"},
    "theory p0 of several rows": (["theory", "--n", "5", "--p0", "p0/three_rows.npy"],
                                  "one distribution"),
}


@pytest.mark.parametrize("args, fragment", CASES.values(), ids=CASES.keys())
def test_refused_in_one_line_before_anything_is_written(folder, args, fragment):
    outcome = run_in(folder, *args)
    assert outcome.refused_in_one_line, outcome.err
    assert fragment in outcome.err
    assert outcome.written == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("verb", [["simulate"], ["reproduce", "fig1", "--quick"],
                                  ["sweep", "small.toml"]])
def test_a_read_only_out_is_refused_before_any_work(folder, verb):
    locked = folder / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        outcome = run_in(folder, *verb, "--out", "locked/out")
    finally:
        locked.chmod(0o755)
    assert outcome.refused_in_one_line and "'out'" in outcome.err
    assert outcome.written == []


@pytest.mark.parametrize("verb", [["simulate"], ["reproduce", "fig1", "--quick"],
                                  ["sweep", "small.toml"],
                                  ["results", "plot", ".", "sigma", "--x", "n", "--output"]])
def test_out_on_a_read_only_filesystem_is_refused_before_any_work(folder, verb, monkeypatch):
    """What a read-only mount answers when the folder's probe file is made (root ignores
    permission bits, so this is how every user's test can see it)."""
    import modelcollapse._files as files

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    outcome = run_in(folder, *verb, "out/figure.png" if verb[0] == "results" else "--out",
                     *([] if verb[0] == "results" else ["out"]))
    assert outcome.refused_in_one_line, outcome.err
    assert "not writable (Read-only file system)" in outcome.err
    assert outcome.written == []


def test_a_valid_run_with_any_metrics_writes_all_its_outputs(folder):
    """A metric list without sigma or l1_to_first once crashed after writing half of --out."""
    outcome = run_in(folder, "simulate", "--runs", "20", "--generations", "20", "--metrics",
                     "collapsed", "--out", "o", "--seed", "1")
    assert outcome.code == 0, outcome.err
    assert {"o/result.zarr", "o/summary.json", "o/simulation.png"} <= set(outcome.written)
    assert not [p for p in outcome.written if ".partial" in p]


def test_a_failure_after_the_simulation_leaves_out_as_it_was(folder, monkeypatch):
    """The figure fails after the simulation: nothing of the run reaches --out."""
    import modelcollapse.plots

    def broken(*args, **kwargs):
        raise RuntimeError("plotting failed")

    monkeypatch.setattr(modelcollapse.plots, "simulation_figure", broken)
    outcome = run_in(folder, "simulate", "--runs", "5", "--generations", "5", "--out", "o")
    assert outcome.code == 1 and "internal error (RuntimeError: plotting failed)" in outcome.err
    assert len(outcome.err.strip().splitlines()) == 1
    assert [p for p in outcome.written if p != "o"] == []


def test_debug_shows_the_traceback_of_an_unexpected_error(folder, monkeypatch):
    import modelcollapse.plots

    monkeypatch.setattr(modelcollapse.plots, "simulation_figure",
                        lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        run_in(folder, "--debug", "simulate", "--runs", "5", "--generations", "5", "--out", "o")
    monkeypatch.setenv("MODELCOLLAPSE_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        run_in(folder, "simulate", "--runs", "5", "--generations", "5", "--out", "o")


def test_out_of_memory_is_one_line_and_exit_1(folder, monkeypatch):
    import modelcollapse.api

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(modelcollapse.api, "run", exhausted)
    outcome = run_in(folder, "simulate", "--runs", "5", "--generations", "5")
    assert outcome.code == 1 and "ran out of memory" in outcome.err
    assert len(outcome.err.strip().splitlines()) == 1
