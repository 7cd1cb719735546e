"""``modelcollapse ngram run`` and ``reproduce fig5-ngram`` from the command line: what they
write, and bad input refused in one line before any work."""

from __future__ import annotations

import json

import pytest

from cli_runner import run_in
from modelcollapse.engine.footprint import MEMORY_VARIABLE
from text_corpus import corpus_text


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv(MEMORY_VARIABLE, "16")
    (tmp_path / "corpus.txt").write_text(corpus_text(120_000), encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9 " * 100)
    (tmp_path / "tiny.txt").write_text("abc", encoding="utf-8")
    (tmp_path / "a_file").write_text("not a folder")
    return tmp_path


def test_run_writes_its_folder_and_resumes_from_it(folder):
    args = ["ngram", "run", "--corpus", "corpus.txt", "--runs", "10", "--generations", "3",
            "--out", "run", "--format", "json"]
    first = run_in(folder, *args)
    assert first.code == 0, first.err
    summary = json.loads(first.out)
    assert len(summary["metrics"]["collapsed_share"]["mean"]) == 4
    assert summary["predicted"]["collapsed_share"][0] == pytest.approx(
        summary["metrics"]["collapsed_share"]["mean"][0])
    for name in ("result.nc", "run.png", "samples.txt", "summary.json", "spec.json",
                 "state.npz"):
        assert (folder / "run" / name).is_file(), name
    again = run_in(folder, *args)
    assert again.code == 0 and "resuming after generation 3" in again.err
    assert json.loads(again.out)["metrics"] == summary["metrics"]


def test_text_output_names_the_model(folder):
    done = run_in(folder, "ngram", "run", "--corpus", "corpus.txt", "--loop", "generative",
                  "--tokens", "20000", "--generations", "2", "--order", "1")
    assert done.code == 0, done.err
    assert "generative loop" in done.out and "order 1" in done.out


REFUSED = {
    "ratio 0": (["--ratio", "0"], "'ratio' parameter of ngram must be > 0"),
    "tokens with fixed": (["--tokens", "10"], "applies to the generative loop only"),
    "ratio with generative": (["--loop", "generative", "--ratio", "0.1"],
                              "applies to the fixed loop only"),
    "fraction without mixture": (["--synthetic-fraction", "0.5"],
                                 "applies to 'partially-synthetic' and 'fresh-real' only"),
    "mixture without fraction": (["--scenario", "partially-synthetic"],
                                 "'synthetic_fraction' parameter of ngram is required"),
    "fraction 1": (["--scenario", "partially-synthetic", "--synthetic-fraction", "1"],
                   "must be < 1"),
    "K without window": (["--K", "3"], "applies to 'most-recent' only"),
    "unknown scenario": (["--scenario", "fully"], "'scenario' parameter of ngram"),
    "unknown tokenizer": (["--tokenizer", "bytes"], "'tokenizer' parameter of ngram"),
    "vocab size with chars": (["--vocab-size", "500"], "apply to the bpe tokenizer only"),
    "order too high": (["--order", "17"], "'order' parameter of ngram must be ≤ 16"),
    "negative generations": (["--generations", "-1"], "'generations' parameter of ngram"),
    "runs beyond memory": (["--runs", "100000", "--order", "3"], "would need about"),
    "not UTF-8": (["--corpus", "latin1.txt"], "UTF-8"),
    "no such file": (["--corpus", "missing.txt"], "existing text file"),
    "too short": (["--corpus", "tiny.txt"], "must hold more than"),
    "out is a file": (["--out", "a_file"], "is a file"),
}


@pytest.mark.parametrize("name", REFUSED)
def test_bad_input_is_refused_in_one_line_with_nothing_written(folder, name):
    extra, message = REFUSED[name]
    args = ["ngram", "run", "--generations", "2", *extra]
    if "--corpus" not in extra:
        args += ["--corpus", "corpus.txt"]
    done = run_in(folder, *args)
    assert done.refused_in_one_line, (done.code, done.err)
    assert message in done.err, done.err
    assert done.written == [], done.written


def test_reproduce_fig5_ngram_quick(folder):
    done = run_in(folder, "reproduce", "fig5-ngram", "--quick", "--corpus", "corpus.txt",
                  "--out", "out")
    assert done.code == 0, done.err
    assert "fig5-ngram" in done.out and "k = 3" in done.out
    numbers = json.loads((folder / "out" / "fig5-ngram" / "fig5_ngram.json").read_text())
    assert set(numbers["orders"]) == {"1", "2", "3"}
    assert (folder / "out" / "fig5-ngram" / "fig5_ngram.png").is_file()
    report = (folder / "out" / "report.md").read_text()
    assert "## fig5-ngram" in report and "| k = 3, 20 % synthetic |" in report


def test_reproduce_refuses_text_flags_without_a_text_figure(folder):
    done = run_in(folder, "reproduce", "fig1", "--corpus", "corpus.txt", "--quick")
    assert done.refused_in_one_line
    assert "applies to fig5 and fig5-ngram only" in done.err
