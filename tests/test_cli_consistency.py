"""One name and one default per quantity across the verbs, shown in --help, and specs that
store only what their p(0) has as a parameter."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli_runner import run_in
from modelcollapse.cli import cli
from modelcollapse.spec import TARGET_S0, SimulationSpec


def help_of(*verb: str) -> str:
    return CliRunner().invoke(cli, [*verb, "--help"], terminal_width=200).output


@pytest.mark.parametrize("verb", [["simulate"], ["theory"], ["budget"]])
def test_p0_defaults_are_the_specs_and_shown(verb):
    text = help_of(*verb)
    for field in ("vocab", "support", "family"):
        default = SimulationSpec.model_fields[field].default
        assert f"[default: {default}]" in text, (verb, field)
    assert f"[default: {TARGET_S0} for family target]" in text


def test_simulate_shows_its_defaults():
    text = help_of("simulate")
    for field in ("n", "generations", "runs", "scenario", "backend", "contexts"):
        assert f"[default: {SimulationSpec.model_fields[field].default}]" in text, field


def test_every_verb_names_the_real_sample_size_N():
    for verb in (["simulate"], ["theory"], ["budget"]):
        assert "--N " in help_of(*verb), verb


def test_the_top_level_help_gives_each_verb_a_whole_line():
    text = help_of()
    budget = next(line for line in text.splitlines() if line.strip().startswith("budget"))
    assert not budget.rstrip().endswith(("eq.", "eq", "…", "...")), budget


@pytest.mark.parametrize("family, S0", [("target", TARGET_S0), ("uniform", None),
                                        ("zipf", None), ("dirichlet", None)])
def test_a_spec_stores_S0_only_where_it_is_a_parameter(family, S0):
    spec = SimulationSpec(family=family, support=20)
    assert spec.S0 == S0 and spec.model_dump()["S0"] == S0
    assert "S0" not in spec.model_fields_set  # a default, not the user's


def test_the_realised_S0_is_in_the_summary(tmp_path):
    outcome = run_in(tmp_path, "simulate", "--family", "uniform", "--support", "20", "--runs",
                     "5", "--generations", "3", "--format", "json", "--seed", "1")
    assert outcome.code == 0, outcome.err
    assert json.loads(outcome.out)["S0"] == pytest.approx(1 / 20)


def test_sweeping_support_with_the_target_family_points_to_uniform():
    with pytest.raises(ValueError, match="family 'uniform'"):
        SimulationSpec(support=5)


def test_theory_puts_each_quantity_under_its_loop(tmp_path):
    text = run_in(tmp_path, "theory", "--n", "10", "--N", "100").out
    fully = text.index("fully synthetic loop")
    partial = text.index("partially synthetic loop")
    assert fully < text.index("E[T] exact") < partial < text.index("S_m (eq. 9)")


def test_the_transformer_preset_follows_the_device():
    pytest.importorskip("torch")
    from modelcollapse.lm.presets import preset_for_device

    assert preset_for_device("auto", "cpu") == "cpu"
    assert preset_for_device("auto", "cuda:1") == "paper"
    assert preset_for_device("tiny", "cuda") == "tiny"
    assert "[default: auto]" in help_of("lm", "run") and "[default: auto]" in help_of("reproduce")
