"""The ``lm run`` command and the Fig. 5 driver, end to end on the tiny preset."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from modelcollapse.cli.lm import command
from modelcollapse.lm import TINY, get_preset, run_figure5


def test_lm_run_command_prints_json(tmp_path, text):
    path = tmp_path / "corpus.txt"
    path.write_text(text)
    out = tmp_path / "run"
    res = CliRunner().invoke(command, [
        "run", "--scenario", "partially-synthetic", "--synthetic-fraction", "0.5",
        "--generations", "2", "--preset", "tiny", "--device", "cpu", "--out", str(out),
        "--corpus", str(path), "--max-iters", "20", "--no-progress"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["preset"] == "tiny"
    assert [g["generation"] for g in summary["generations"]] == [0, 1, 2]
    assert summary["generations"][1]["l1_to_first"] == 0.0
    assert (out / "gen_02" / "model.pt").exists()


def test_lm_run_bad_input_is_one_line_and_exit_2(tmp_path, text):
    path = tmp_path / "corpus.txt"
    path.write_text(text)
    runner = CliRunner()
    for args, message in [
        (["--preset", "huge"], "Preset 'huge' unknown"),
        (["--scenario", "partially-synthetic"], "'synthetic_fraction'"),
        (["--scenario", "random-pool"], "'scenario' parameter"),
        (["--real", "web"], "'real' parameter"),
        (["--top-p", "1.5"], "'top_p' parameter"),
    ]:
        res = runner.invoke(command, ["run", "--out", str(tmp_path / "x"), "--corpus", str(path),
                                      "--device", "cpu", *args])
        assert res.exit_code == 2, (args, res.output)
        assert message in res.output
    assert not (tmp_path / "x").exists()


def test_figure5_writes_plot_and_numbers(tmp_path, corpus):
    preset = get_preset(TINY, max_iters=25)
    res = run_figure5(tmp_path / "a", preset=preset, corpus=corpus, n_generations=2, workers=1)
    assert res.figure.stat().st_size > 10_000
    numbers = json.loads(res.numbers.read_text())
    assert set(numbers["scenarios"]) == {"synthetic", "synthetic 50% - real 50%",
                                         "synthetic 20% - real 80%"}
    full = numbers["scenarios"]["synthetic"]["l1_to_first"]
    assert full["generation"] == [1, 2] and full["mean"][0] == 0.0
    assert np.isfinite(full["se"][1]) and full["lo"][1] <= full["mean"][1] <= full["hi"][1]
    gaps = numbers["gap_at_last_generation"]["fully_synthetic_minus"]
    assert set(gaps) == {"synthetic 50% - real 50%", "synthetic 20% - real 80%"}
    # Shared generations are computed once: p(0), p(1) and two fully-synthetic models, one
    # model per mixture; five trainings instead of nine.
    assert numbers["seconds"]["trainings"] == 5


def test_figure5_in_worker_processes_equals_one_process(tmp_path, corpus):
    preset = get_preset(TINY, max_iters=15)
    one = run_figure5(tmp_path / "one", preset=preset, corpus=corpus, n_generations=2,
                      workers=1)
    many = run_figure5(tmp_path / "many", preset=preset, corpus=corpus, n_generations=2,
                       workers=3)
    assert many.summary["workers"] == 3
    for label, runs in one.runs.items():
        assert np.array_equal(runs[0].probs, many.runs[label][0].probs)
