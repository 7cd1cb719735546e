"""Random bad values for every verb's flags, and random bad p(0) files: each is refused with exit
code 2 and one line naming a field, or (when the value happens to be valid) runs; never a
traceback, never exit code 1, never a file written by a refusal."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_runner import run_in
from modelcollapse.engine.footprint import MEMORY_VARIABLE

#: Small enough that a value which happens to be valid still runs in a moment.
BASE = {
    "simulate": ["simulate", "--runs", "3", "--generations", "3", "--no-progress"],
    "theory": ["theory", "--n", "5"],
    "budget": ["budget", "--N", "50", "--epsilon", "0.2", "--runs", "2", "--no-simulate"],
}
#: Each verb's flags that take a value, and what the value is meant to be.
FLAGS = {
    "simulate": {"--vocab": "int", "--support": "int", "--S0": "float", "--contexts": "int",
                 "--n": "int", "--N": "int", "--K": "int", "--generations": "int",
                 "--runs": "int", "--seed": "int", "--scenario": "word", "--family": "word",
                 "--metrics": "word", "--trajectories": "word",
                 "--trajectory-memory-mb": "float", "--representation": "word",
                 "--backend": "word", "--device": "word", "--threads": "int",
                 "--window-split": "word"},
    "theory": {"--vocab": "int", "--support": "int", "--S0": "float", "--n": "int",
               "--N": "int", "--generations": "int", "--epsilon": "float", "--family": "word",
               "--p0-seed": "int"},
    "budget": {"--N": "int", "--epsilon": "float", "--generations": "int", "--runs": "int",
               "--seed": "int", "--vocab": "int", "--support": "int", "--S0": "float"},
}
#: Values wrong for every flag of their kind (ints: none is ≤ 0 or beyond any machine).
BAD_NUMBER = st.one_of(
    st.integers(max_value=0).map(str),
    st.integers(min_value=13, max_value=30).map(lambda k: str(10**k)),
    st.sampled_from(["nan", "inf", "-inf", "", " ", "1e400", "0x10", "½", "1,5", "ten"]),
    st.text(min_size=1, max_size=12).filter(lambda s: not _is_number(s)),
)
BAD_FLOAT = st.one_of(
    st.floats(max_value=0.0).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "", "1e400", "ten", "--", "1/2"]),
    st.text(min_size=1, max_size=12).filter(lambda s: not _is_number(s)),
)
BAD_WORD = st.one_of(st.text(min_size=0, max_size=16),
                     st.sampled_from(["", "cuda:x", "tpu", "all,none", "-1", "fully_synthetic",
                                      "sigma,,bogus", "Zipf"]))


def _is_number(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value > 0


def _bad_value(kind: str):
    return {"int": BAD_NUMBER, "float": BAD_FLOAT, "word": BAD_WORD}[kind]


@st.composite
def bad_flag(draw):
    verb = draw(st.sampled_from(sorted(FLAGS)))
    flag, kind = draw(st.sampled_from(sorted(FLAGS[verb].items())))
    return verb, flag, draw(_bad_value(kind))


def _check(outcome, args) -> None:
    assert "Traceback" not in outcome.err, args
    assert outcome.code in (0, 2), (args, outcome.err)
    if outcome.code == 2:
        assert outcome.refused_in_one_line, (args, outcome.err)
        assert "'" in outcome.err, (args, outcome.err)  # the field is named, quoted
        assert outcome.written == [], (args, outcome.written)


@pytest.fixture(autouse=True)
def small_machine(monkeypatch):
    """A 1 GB machine: a huge value that happens to be valid is refused, not run for hours."""
    monkeypatch.setenv(MEMORY_VARIABLE, "1")


@settings(max_examples=250, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad_flag())
def test_bad_flag_values_are_refused_in_one_line(case):
    verb, flag, value = case
    args = [*BASE[verb], flag, value]
    with tempfile.TemporaryDirectory() as folder:
        _check(run_in(Path(folder), *args), args)


#: p(0) file contents: arrays that are no distribution, and bytes that are no array.
BAD_ARRAYS = st.one_of(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=6).map(np.array),
    st.lists(st.lists(st.floats(-1, 2), min_size=1, max_size=4), min_size=1, max_size=4)
    .map(lambda rows: np.array(rows, dtype=object)),
)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(suffix=st.sampled_from([".npy", ".txt", ".csv", ".json", ".dat", ""]),
       content=st.one_of(st.binary(max_size=64), BAD_ARRAYS),
       verb=st.sampled_from(["simulate", "theory", "budget"]))
def test_bad_p0_files_are_refused_in_one_line(suffix, content, verb):
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        path = folder / f"p0{suffix}"
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif suffix == ".npy":
            with open(path, "wb") as fh:
                np.save(fh, content, allow_pickle=True)
        else:
            path.write_text(repr(content.tolist()))
        args = [*BASE[verb], "--p0", path.name]
        outcome = run_in(folder, *args)
        _check(outcome, args)
        if outcome.code == 0:  # only a true distribution may run
            from modelcollapse.distributions import load_distribution

            load_distribution(path)


#: Sweep specs: TOML keys of a simulation or a sweep with values of the wrong kind or size.
SWEEP_KEYS = ["runs", "generations", "seed", "trajectories", "n", "N", "K", "vocab",
              "support", "S0", "scenario", "family", "contexts", "metrics", "name"]
TOML_VALUES = st.one_of(
    st.integers(max_value=0), st.integers(min_value=10**12, max_value=10**19),
    st.sampled_from(['"ten"', "nan", "-inf", "[]", "{}", "true", '"fully_synthetic"',
                     "1.5", '["sigma", 3]', '{ start = 1, stop = 10 }']),
).map(str)


@st.composite
def bad_sweep_spec(draw) -> str:
    key, value = draw(st.sampled_from(SWEEP_KEYS)), draw(TOML_VALUES)
    axis = draw(st.sampled_from(["n = [1, 2]", f"{key} = [{value}]", f"{key} = {value}",
                                 "n = { start = 1, stop = 1e12, num = 1000000 }"]))
    head = "" if axis.startswith(f"{key} =") else f"{key} = {value}\n"
    return f"runs = 2\ngenerations = 2\n{head}[axes]\n{axis}\n"


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad_sweep_spec())
def test_bad_sweep_specs_are_refused_in_one_line(text):
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "spec.toml").write_text(text)
        args = ["sweep", "spec.toml", "--out", "out", "--workers", "1", "--no-progress"]
        outcome = run_in(folder, *args)
        _check(outcome, [*args, text])
        if outcome.code == 2:
            assert not (folder / "out").exists(), text


#: ``lm run``'s flags. Huge values are left out here: a valid one (``--max-iters 10¹³``) would
#: train for ever, and lm run refuses only what does not fit, not what takes long.
LM_FLAGS = {"--generations": "int", "--synthetic-fraction": "float", "--K": "int",
            "--device": "word", "--seed": "int", "--real": "word", "--corpus-tokens": "int",
            "--max-iters": "int", "--stream-length": "int", "--temperature": "float",
            "--top-k": "int", "--top-p": "float", "--scenario": "word", "--preset": "word"}
NOT_POSITIVE = st.one_of(
    st.integers(max_value=0).map(str),
    st.sampled_from(["nan", "inf", "-inf", "", "ten", "1e400", "0x10"]),
    st.text(min_size=1, max_size=12).filter(lambda s: not _is_number(s)),
)


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flag=st.sampled_from(sorted(LM_FLAGS.items())), data=st.data())
def test_bad_lm_run_values_are_refused_in_one_line(flag, data):
    pytest.importorskip("torch")
    name, kind = flag
    value = data.draw(BAD_WORD if kind == "word" else NOT_POSITIVE)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "corpus.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 400)
        args = ["lm", "run", "--out", "run", "--corpus", "corpus.txt", "--preset", "tiny",
                "--generations", "1", "--device", "cpu", "--no-progress", name, value]
        _check(run_in(folder, *args), args)


def test_the_fuzz_covers_every_verb_with_value_flags():
    """A verb gaining flags should gain fuzzing: the table names every verb that takes
    numbers, and no flag it names is gone."""
    from click.testing import CliRunner

    from modelcollapse.cli import cli

    for verb, flags in [*FLAGS.items(), ("lm run", LM_FLAGS)]:
        help_text = CliRunner().invoke(cli, [*verb.split(), "--help"]).output
        for flag in flags:
            assert flag in help_text, (verb, flag)
    assert os.environ[MEMORY_VARIABLE] == "1"
