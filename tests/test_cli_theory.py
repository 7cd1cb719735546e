"""The ``theory``, ``budget`` and ``verify`` verbs, run in-process through the house entry
point (one line on stderr and exit code 2 for bad input)."""

from __future__ import annotations

import json

import click
import pytest

from modelcollapse.cli import _common
from modelcollapse.cli import budget as budget_cli
from modelcollapse.cli import theory as theory_cli
from modelcollapse.cli import verify as verify_cli


@click.group()
def group() -> None:
    """The three verbs under test."""


for _module in (theory_cli, budget_cli, verify_cli):
    group.add_command(_module.command)


def run(capsys, *args):
    code = _common.run_main(group, list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_commands_have_the_documented_names():
    assert theory_cli.command.name == "theory"
    assert budget_cli.command.name == "budget"
    assert verify_cli.command.name == "verify"


def test_theory_json_has_the_exact_law_beside_the_bounds(capsys):
    code, out, _ = run(capsys, "theory", "--vocab", "600", "--support", "29", "--S0", "0.1",
                       "--n", "10", "--format", "json")
    assert code == 0
    report = json.loads(out)
    for key in ("collapse_time_exact_mean", "collapse_time_exact_sd", "collapse_prob",
                "expected_support", "collapse_time_lower_eq8", "collapse_time_upper_eq8",
                "collapse_time_littler", "collapse_time_prediction", "sigma_eq6"):
        assert key in report
    assert report["collapse_prob"][0] == 0.0 and report["expected_support"][0] == 29
    assert len(report["collapse_prob"]) == len(report["expected_support"])
    assert (report["collapse_time_lower_eq8"] < report["collapse_time_exact_mean"]
            < report["collapse_time_upper_eq8"])
    assert abs(report["collapse_time_prediction"] / report["collapse_time_exact_mean"] - 1) < 0.01
    assert abs(report["S0"] - 0.1) < 1e-9


def test_theory_partial_quantities_and_table(capsys):
    code, out, _ = run(capsys, "theory", "--vocab", "600", "--support", "52", "--S0", "0.1",
                       "--n", "10", "--N", "100", "--generations", "5", "--epsilon", "0.1",
                       "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert report["l1_deviation_prediction"] < report["l1_deviation_jensen_upper"]
    assert report["log_theorem3_bound"] > 0 and report["G_regime_eq10"] == 1
    assert len(report["collapse_prob"]) == 6  # m = 0 … 5
    assert report["eq11_max_n"] < 0
    code, out, _ = run(capsys, "theory", "--vocab", "600", "--n", "10", "--N", "100")
    assert code == 0 and "E‖p(m)−p(1)‖₁ prediction" in out and "E[T] exact" in out


@pytest.mark.parametrize(("args", "fragment"), [
    (("theory", "--vocab", "600", "--n", "0"), "'n' parameter of theory"),
    (("theory", "--vocab", "10", "--support", "4", "--S0", "0.1", "--n", "5"), "'S0'"),
    (("theory", "--n", "5"), "'vocab' parameter of theory is required"),
    (("budget", "--vocab", "600", "--real", "100", "--epsilon", "-1"), "'epsilon' parameter"),
    (("budget", "--vocab", "600", "--real", "100", "--epsilon", "0.1", "--generations", "1"),
     "'generations' parameter of budget"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, fragment):
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_budget_json_and_table(capsys):
    code, out, _ = run(capsys, "budget", "--vocab", "600", "--real", "100", "--epsilon", "0.1",
                       "--runs", "100", "--format", "json")
    assert code == 0
    result = json.loads(out)
    assert result["n_prediction"] == 5 and result["n_eq11"] == 0 and result["consistent"]
    assert [s["n"] for s in result["simulation"]] == [5, 6]
    code, out, _ = run(capsys, "budget", "--vocab", "600", "--real", "100000", "--epsilon",
                       "0.1", "--no-simulate")
    assert code == 0 and "unlimited" in out


def test_verify_quick_exit_code_and_json(capsys):
    code, out, err = run(capsys, "verify", "--quick", "--format", "json")
    assert code == 0 and "running fully-synthetic" in err
    report = json.loads(out)
    assert report["passed"] and all(c["passed"] for c in report["checks"])
