"""Every bad ``lm run`` input is refused in one line, exit code 2, before any work or write.

Each case runs the CLI in-process and checks: exit code 2, exactly one line on stderr, no
traceback, the parameter named in it, nothing created, and well under 5 s. The size
estimate behind the memory and disk refusals is checked against what runs really write and
allocate.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from modelcollapse import lm
from modelcollapse.cli import main
from modelcollapse.lm import footprint
from modelcollapse.lm.checks import check_run, request_footprint
from modelcollapse.lm.plan import data_plan, make_lm_scenario
from modelcollapse.lm.train import WindowSampler

#: A refusal must come long before this (the CLI's own start-up is not counted in-process).
REFUSED_WITHIN_S = 5.0


@pytest.fixture
def corpus_file(tmp_path, text) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return path


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


def _refused(capsys, tmp_path, argv: list[str], field: str) -> str:
    """Run the CLI; check the refusal's shape; return its line."""
    before = _files(tmp_path)
    start = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - start
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert code == 2, (argv, out.err)
    assert len(lines) == 1, out.err
    assert "Traceback" not in out.err and out.out == ""
    assert field in lines[0], lines[0]
    assert _files(tmp_path) == before, "something was written"
    assert seconds < REFUSED_WITHIN_S
    return lines[0]


CASES = [
    (["--generations", "0"], "'generations'"),
    (["--generations", "x"], "'--generations'"),
    (["--device", "tpu"], "'device'"),
    (["--device", "cuda:99"], "'device'"),
    (["--K", "3"], "'K'"),
    (["--scenario", "most-recent", "--K", "0"], "'K'"),
    (["--synthetic-fraction", "0.5"], "'synthetic_fraction'"),
    (["--scenario", "accumulate", "--synthetic-fraction", "0.5"], "'synthetic_fraction'"),
    (["--scenario", "most-recent", "--K", "2", "--synthetic-fraction", "0.5"],
     "'synthetic_fraction'"),
    (["--scenario", "partially-synthetic", "--synthetic-fraction", "0.5", "--K", "2"], "'K'"),
    (["--scenario", "partially-synthetic", "--synthetic-fraction", "1.5"],
     "'synthetic_fraction'"),
    (["--scenario", "random-pool"], "'scenario'"),
    (["--top-k", "0"], "'top_k'"),
    (["--top-k", "1000"], "'top_k'"),
    (["--top-p", "0"], "'top_p'"),
    (["--top-p", "1.5"], "'top_p'"),
    (["--temperature", "0"], "'temperature'"),
    (["--temperature", "-1"], "'temperature'"),
    (["--temperature", "nan"], "'temperature'"),
    (["--corpus-tokens", "0"], "'corpus_tokens'"),
    (["--max-iters", "0"], "'max_iters'"),
    (["--preset", "paper", "--max-iters", "50"], "'max_iters'"),  # below its 100 warm-up steps
    (["--stream-length", "0"], "'stream_length'"),
    (["--preset", "huge"], "Preset 'huge'"),
    (["--real", "web"], "'real'"),
    (["--seed", "-1"], "'seed'"),
    (["--real", "text", "--generations", "1", "--temperature", "0.5"], "'sampling'"),
    (["--real", "text", "--scenario", "fresh-real", "--synthetic-fraction", "0.5",
      "--generations", "40", "--preset", "tiny"], "'real'"),
]


@pytest.mark.parametrize(("args", "field"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_flag_is_one_line_exit_2_and_nothing_written(capsys, tmp_path, corpus_file, args,
                                                         field):
    _refused(capsys, tmp_path, ["lm", "run", "--out", str(tmp_path / "run"), "--corpus",
                                str(corpus_file), "--no-progress", *args], field)


def test_missing_corpus_file_names_the_parameter(capsys, tmp_path):
    line = _refused(capsys, tmp_path, ["lm", "run", "--out", str(tmp_path / "run"),
                                       "--corpus", str(tmp_path / "nope.txt")], "'corpus'")
    assert "existing text file" in line


def test_no_corpus_and_none_cached_names_the_parameter(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MODELCOLLAPSE_CACHE", str(tmp_path / "cache"))
    line = _refused(capsys, tmp_path, ["lm", "run", "--out", str(tmp_path / "run")],
                    "'corpus'")
    assert "--download" in line


@pytest.mark.parametrize("content", [b"\xff\xfe not text", b"tiny", b"a" * 200],
                         ids=["not-utf8", "too-short", "shorter-than-a-window"])
def test_unusable_corpus_file_names_the_parameter(capsys, tmp_path, content):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    _refused(capsys, tmp_path, ["lm", "run", "--out", str(tmp_path / "run"), "--corpus",
                                str(path)], "'corpus'")


def test_download_with_a_corpus_file_does_nothing_so_is_refused(capsys, tmp_path,
                                                                  corpus_file):
    _refused(capsys, tmp_path, ["lm", "run", "--out", str(tmp_path / "run"), "--corpus",
                                str(corpus_file), "--download"], "'download'")


def test_out_under_a_file_is_refused(capsys, tmp_path, corpus_file):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    _refused(capsys, tmp_path, ["lm", "run", "--out", str(blocker / "run"), "--corpus",
                                str(corpus_file)], "'out'")


def test_out_on_a_read_only_filesystem_is_refused(capsys, tmp_path, corpus_file,
                                                  monkeypatch):
    """What the filesystem answers when the folder's probe file cannot be made (a read-only
    mount; root ignores permission bits, so this is how a test can see it)."""
    import modelcollapse._files as files

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(files, "tempfile", type("ReadOnly", (), {"mkstemp": read_only}))
    line = _refused(capsys, tmp_path, ["lm", "run", "--out", str(tmp_path / "run"),
                                       "--corpus", str(corpus_file)], "'out'")
    assert "not writable" in line


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs a user that read-only permissions apply to")
def test_read_only_out_is_refused(capsys, tmp_path, corpus_file):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        _refused(capsys, tmp_path, ["lm", "run", "--out", str(locked / "run"), "--corpus",
                                    str(corpus_file)], "'out'")
    finally:
        locked.chmod(0o700)


def test_a_billion_generations_are_refused_on_disk(capsys, tmp_path, corpus_file):
    line = _refused(capsys, tmp_path, ["lm", "run", "--generations", "1000000000", "--out",
                                       str(tmp_path / "run"), "--corpus", str(corpus_file)],
                    "'generations'")
    assert "1,000,000,001 models" in line and "free on the disk" in line


def test_accumulate_beyond_memory_is_refused(capsys, tmp_path, corpus_file, monkeypatch):
    monkeypatch.setenv("MODELCOLLAPSE_MEMORY_GB", "16")
    line = _refused(capsys, tmp_path, ["lm", "run", "--scenario", "accumulate",
                                       "--generations", "100000", "--out",
                                       str(tmp_path / "run"), "--corpus", str(corpus_file)],
                    "'generations'")
    assert "of memory" in line and "model 100,000 trains on" in line


@pytest.mark.parametrize(("args", "field"), [
    (["--device", "tpu"], "'device'"),
    (["--corpus", "nope.txt"], "'corpus'"),
    (["--quick", "--preset", "paper"], "'preset'"),
])
def test_reproduce_fig5_refuses_before_any_work(capsys, tmp_path, corpus_file, args, field):
    corpus = [] if "--corpus" in args else ["--corpus", str(corpus_file)]
    _refused(capsys, tmp_path, ["reproduce", "fig5", "--out", str(tmp_path / "results"),
                                *corpus, *args], field)


def test_python_callers_get_the_same_checks(tmp_path, corpus):
    out = tmp_path / "run"
    for kwargs, field in [({"n_generations": 0}, "'n_generations'"),
                          ({"device": "tpu"}, "'device'"),
                          ({"K": 2}, "'K'"),
                          ({"corpus": tmp_path / "nope.txt"}, "'corpus'"),
                          ({"n_generations": 10**9}, "free on the disk")]:
        args = {"preset": "tiny", "corpus": corpus} | kwargs
        with pytest.raises((ValueError, TypeError), match=field):
            lm.run("fully-synthetic", out=out, **args)
    assert not out.exists()
    with pytest.raises(ValueError, match="'seeds'"):
        lm.run_figure5(tmp_path / "fig5", seeds=(), corpus=corpus)
    with pytest.raises(ValueError, match="'device'"):
        lm.run_figure5(tmp_path / "fig5", device="tpu", corpus=corpus)
    assert not (tmp_path / "fig5").exists()


def test_plan_costs_nothing_before_the_first_generation():
    """The plan is read as the loop reaches each model: a billion generations cost nothing
    up front, yet every slice is what the whole plan gives."""
    start = time.perf_counter()
    plan = data_plan(make_lm_scenario("fully-synthetic", tokens=1000), 10**9,
                     unit=lambda t: 10)
    acc = data_plan(make_lm_scenario("accumulate", tokens=1000), 10**6, unit=lambda t: 10)
    assert [s.stop for s in plan.segments[5]] == [1000] and plan.demand[4] == 1000
    assert plan.last_reader(7) == 8 and acc.last_reader(7) == 10**6
    assert len(acc.segments[4]) == 4 and acc.demand[3] == 1000 and acc.demand[0] == 1000
    assert time.perf_counter() - start < 1.0


def test_many_generations_start_writing_at_once(tmp_path, corpus, monkeypatch):
    """100,000 generations that fit: the first generation is written within seconds (the
    whole plan used to be built, and every generation's folder looked up, first)."""
    monkeypatch.setattr(footprint.shutil, "disk_usage",
                        lambda path: type("Usage", (), {"free": 10**18})())

    class Stop(Exception):
        pass

    def stop(stage, m):
        raise Stop

    start = time.perf_counter()
    with pytest.raises(Stop):
        lm.run("accumulate", out=tmp_path / "run", n_generations=100_000,
               preset=lm.get_preset("tiny", max_iters=5, corpus_tokens=170), corpus=corpus,
               on_event=stop)
    assert (tmp_path / "run" / "gen_00" / "model.pt").exists()
    assert time.perf_counter() - start < 15.0


@pytest.mark.parametrize(("scenario", "n_generations", "kwargs"), [
    ("fully-synthetic", 2, {}),
    ("accumulate", 3, {}),
    ("partially-synthetic", 2, {"synthetic_fraction": 0.2, "real": "text"}),
])
def test_disk_estimate_matches_what_a_run_writes(tmp_path, corpus, scenario, n_generations,
                                                 kwargs):
    preset = lm.get_preset("tiny", max_iters=5)
    out = tmp_path / "run"
    estimate = request_footprint(check_run(scenario, out=out, n_generations=n_generations,
                                           preset=preset, corpus=corpus, **kwargs))
    lm.run(scenario, out=out, n_generations=n_generations, preset=preset, corpus=corpus,
           **kwargs)
    written = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert 0.95 < estimate.disk / written < 1.05, (estimate.disk, written)
    weights = (out / "gen_00" / "model.pt").stat().st_size
    assert abs(footprint.weights_bytes(preset, corpus.vocab_size) - weights) < 0.02 * weights


def test_memory_estimate_per_training_token_matches_the_sampler():
    """The sampler's peak, with the corpora it is cut from, is the estimate's bytes per
    token (tracemalloc sees numpy's allocations, torch.from_numpy shares them)."""
    rng = np.random.default_rng(0)
    sources = [rng.integers(0, 65, size=(4000, 129), dtype=np.uint8) for _ in range(4)]
    tokens = sum(s.size for s in sources)
    tracemalloc.start()
    sampler = WindowSampler(sources, [1.0] * 4, 128, "cpu")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del sampler
    per_token = (peak + tokens) / tokens  # + the corpora, allocated before tracing
    assert 0.9 * per_token < footprint.SAMPLER_INT64_BYTES + 2 < 1.1 * per_token
