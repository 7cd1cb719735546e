"""``kill -9`` during a save, for the three resumable verbs: ``reproduce``, ``sweep`` and
``lm run``. The verb runs in a process of its own and is killed with SIGKILL mid-save (a
hook kills it once its n-th temporary is whole but not yet renamed) or, for the sweep and
its worker processes, as soon as its first point is finished. A plain rerun then completes,
gives the numbers of an uninterrupted run bit for bit, and leaves no temporary behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelcollapse._files import TEMP_SUFFIX
from modelcollapse.results import Result
from modelcollapse.sweep import run_sweep
from result_tables import assert_identical_results, sweep_tables
from small_figure import reference_figure
from text_corpus import generated_text

#: The CLI, as a program: ``python -c CLI <args>``.
CLI = "from modelcollapse.cli import main; main()"
#: The CLI, killed by SIGKILL once its n-th temporary (the first argument) is whole, just
#: before the rename that would have finished that save.
CLI_KILLED_AT_SAVE = """
import os, signal, sys
from modelcollapse import _files
at, seen, give = int(sys.argv.pop(1)), [0], _files._give_umask_mode
def give_then_die(path):
    give(path)
    seen[0] += 1
    if seen[0] == at:
        os.kill(os.getpid(), signal.SIGKILL)
_files._give_umask_mode = give_then_die
from modelcollapse.cli import main
main()
"""
#: One thread per process: the transformer's numbers then do not depend on the machine.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_cli(*args: str, killed_at_save: int | None = None, timeout: float = 300) -> int:
    """Run the CLI to its end (or to the kill); its exit code (−9 when killed)."""
    code = [CLI] if killed_at_save is None else [CLI_KILLED_AT_SAVE, str(killed_at_save)]
    done = subprocess.run([sys.executable, "-c", *code, *args], env=ENV, timeout=timeout,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode not in (0, -signal.SIGKILL):
        pytest.fail(f"exit {done.returncode}: {done.stderr[-2000:]}")
    return done.returncode


def kill_group_when(args: list[str], ready, *, timeout: float = 300) -> bool:
    """Run the CLI in a process group of its own and SIGKILL the whole group (the worker
    processes too) as soon as ``ready()``; whether it was killed before it finished."""
    proc = subprocess.Popen([sys.executable, "-c", CLI, *args], env=ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if ready() or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(timeout=60)
    assert time.monotonic() <= deadline, "the verb neither finished nor became ready"
    assert proc.returncode in (0, -signal.SIGKILL)
    return proc.returncode == -signal.SIGKILL


def temporaries(out: Path) -> list[Path]:
    return sorted(out.rglob(f"*{TEMP_SUFFIX}"))


# --- reproduce --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def figure_reference(tmp_path_factory):
    path, _, run = reference_figure(tmp_path_factory.mktemp("figure"), "kill", seed=9,
                                    generations=15)
    return path, run


@pytest.mark.parametrize("save", [2, 4], ids=["in-a-cell", "in-the-figure"])
def test_reproduce_killed_during_a_save_resumes_identically(figure_reference, tmp_path, save):
    spec, reference = figure_reference
    out = tmp_path / "out"
    args = ["reproduce", str(spec), "--out", str(out), "--no-progress"]
    assert run_cli(*args, killed_at_save=save) == -signal.SIGKILL
    assert temporaries(out)                        # what the killed save left
    assert run_cli(*args) == 0
    assert temporaries(out) == []
    summary = json.loads((out / "kill" / "summary.json").read_text())
    assert [c["numbers"] for c in summary["cells"]] == \
        [c["numbers"] for c in reference.summary["cells"]]
    for key, result in reference.results.items():
        assert_identical_results(Result.load(out / "kill" / "results" / f"{key}.zarr"), result,
                                 attrs=False)
    assert (out / "report.html").is_file() and (out / "kill" / "kill.png").is_file()


# --- sweep ------------------------------------------------------------------------------------

SWEEP = """\
runs = 300
generations = 120
seed = 4
vocab = 40
support = 20
trajectories = 5

[axes]
n = [20, 40, 80]
S0 = [0.1, 0.2]
"""



def test_sweep_killed_with_its_workers_resumes_identically(tmp_path):
    spec = tmp_path / "kill.toml"
    spec.write_text(SWEEP)
    with ThreadPoolExecutor(2) as pool:
        reference = run_sweep(spec, tmp_path / "reference", executor=pool, progress=False)
    out = tmp_path / "out"

    def first_point_finished() -> bool:
        return any(out.glob("points/*/point.parquet"))

    kill_group_when(["sweep", str(spec), "--out", str(out), "--workers", "2",
                     "--no-progress"], first_point_finished)
    with ThreadPoolExecutor(2) as pool:
        outcome = run_sweep(spec, out, executor=pool, progress=False)
    assert outcome.n_skipped + outcome.n_run == reference.n_points
    assert temporaries(out) == []
    for mine, theirs in zip(sweep_tables(out), sweep_tables(reference.out)):
        pd.testing.assert_frame_equal(mine, theirs, check_exact=True)
    for store in sorted(reference.out.glob("points/*/result.zarr")):
        assert_identical_results(Result.load(out / store.relative_to(reference.out)),
                                 Result.load(store), attrs=False)


# --- lm run -----------------------------------------------------------------------------------

def checkpoint_files(out: Path) -> dict[str, Path]:
    return {p.relative_to(out).as_posix(): p for p in sorted(out.glob("gen_*/*"))
            if p.suffix in (".npy", ".pt")}


def test_lm_run_killed_during_a_checkpoint_resumes_identically(tmp_path):
    torch = pytest.importorskip("torch")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(generated_text(30_000))

    def args(out: Path) -> list[str]:
        return ["lm", "run", "--preset", "tiny", "--generations", "2", "--seed", "7",
                "--device", "cpu", "--corpus", str(corpus), "--out", str(out),
                "--no-progress"]

    # Save 8 is generation 1's weights: run.json, then generation 0's five files and its
    # corpus (and corpus.json) come first.
    assert run_cli(*args(tmp_path / "out"), killed_at_save=8) == -signal.SIGKILL
    assert temporaries(tmp_path / "out")
    assert run_cli(*args(tmp_path / "out")) == 0
    assert run_cli(*args(tmp_path / "reference")) == 0
    assert temporaries(tmp_path / "out") == []
    mine, theirs = checkpoint_files(tmp_path / "out"), checkpoint_files(tmp_path / "reference")
    assert mine.keys() == theirs.keys() and "gen_02/probs.npy" in mine
    for name, path in mine.items():
        if path.suffix == ".npy":
            np.testing.assert_array_equal(np.load(path), np.load(theirs[name]), err_msg=name)
        else:
            a, b = (torch.load(p, weights_only=True) for p in (path, theirs[name]))
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


# --- the temporaries themselves ----------------------------------------------------------------

def killed_mid_write(target: Path) -> None:
    """A process that dies by SIGKILL while writing ``target``: its temporary stays."""
    code = ("import os, signal, sys; from modelcollapse._files import atomic_write; "
            "atomic_write(sys.argv[1], lambda fh: (fh.write(b'half'), "
            "os.kill(os.getpid(), signal.SIGKILL)))")
    done = subprocess.run([sys.executable, "-c", code, str(target)], env=ENV, timeout=60)
    assert done.returncode == -signal.SIGKILL


def test_a_killed_writers_temporary_goes_at_once_a_live_ones_stays(tmp_path):
    from modelcollapse._files import atomic_write_text, remove_stale_temps

    killed_mid_write(tmp_path / "a.json")
    killed_mid_write(tmp_path / "sub" / "b.json")
    assert len(temporaries(tmp_path)) == 2 and not (tmp_path / "a.json").exists()
    atomic_write_text(tmp_path / "a.json", "{}")     # a save removes its target's leftovers
    assert [p.parent for p in temporaries(tmp_path)] == [tmp_path / "sub"]

    code = ("import sys, time; from modelcollapse._files import make_temp_dir; "
            "print(make_temp_dir(sys.argv[1]), flush=True); time.sleep(60)")
    live = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "c.zarr")], env=ENV,
                            stdout=subprocess.PIPE, text=True)
    try:
        saving = Path(live.stdout.readline().strip())
        # However old, a save whose writer runs stays; sub/b.json's writer is gone.
        assert remove_stale_temps(tmp_path, older_than_s=0) == 1
        assert temporaries(tmp_path) == [saving]
        # Another host's temporary (no process to ask) goes by its age alone.
        other = tmp_path / ".d.json.00000000-1.abc.partial"
        other.write_text("x")
        assert remove_stale_temps(tmp_path) == 0
        os.utime(other, (time.time() - 120,) * 2)
        assert remove_stale_temps(tmp_path) == 1 and not other.exists()
    finally:
        live.kill()
        live.wait()
    assert remove_stale_temps(tmp_path) == 1 and temporaries(tmp_path) == []
