"""The ``theory``, ``budget`` and ``verify`` verbs, run in-process through the house entry
point (one line on stderr and exit code 2 for bad input). Their p(0) flags build p(0) as
``simulate`` does (a SimulationSpec), so the verbs accept and refuse the same inputs."""

from __future__ import annotations

import json

import click
import numpy as np
import pydantic
import pytest

from modelcollapse.cli import _common
from modelcollapse.cli import budget as budget_cli
from modelcollapse.cli import theory as theory_cli
from modelcollapse.cli import verify as verify_cli
from modelcollapse.distributions import sigma
from modelcollapse.spec import SimulationSpec
from modelcollapse.theory import theory_report


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
    # The verb prints the theory package's report for the p(0) simulate would build.
    p0 = SimulationSpec(vocab=600, support=29, S0=0.1).build_p0()
    assert report == json.loads(json.dumps(theory_report(p0, n=10)))


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
    (("theory", "--vocab", "10", "--support", "20", "--n", "5"),
     "The 'support' parameter of theory must be at most"),
    (("theory", "--vocab", "600", "--p0", "p0.npy", "--n", "5"),
     "The 'p0' and 'vocab' parameters of theory conflict"),
    (("theory", "--family", "normal", "--n", "5"), "'--family'"),
    (("budget", "--vocab", "600", "--N", "100", "--epsilon", "-1"), "'epsilon' parameter"),
    (("budget", "--vocab", "600", "--N", "100", "--epsilon", "0.1", "--generations", "1"),
     "'generations' parameter of budget"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, fragment):
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_budget_json_and_table(capsys):
    code, out, _ = run(capsys, "budget", "--vocab", "600", "--support", "600", "--family",
                       "uniform", "--N", "100", "--epsilon", "0.1", "--runs", "100",
                       "--format", "json")
    assert code == 0
    result = json.loads(out)
    assert result["n_prediction"] == 5 and result["n_eq11"] == 0 and result["consistent"]
    assert [s["n"] for s in result["simulation"]] == [5, 6]
    code, out, _ = run(capsys, "budget", "--vocab", "600", "--support", "600", "--family",
                       "uniform", "--N", "100000", "--epsilon", "0.1", "--no-simulate")
    assert code == 0 and "unlimited" in out


def test_verify_quick_exit_code_and_json(capsys):
    code, out, err = run(capsys, "verify", "--quick", "--format", "json")
    assert code == 0 and "running fully-synthetic" in err
    report = json.loads(out)
    assert report["passed"] and all(c["passed"] for c in report["checks"])


# --- p(0) as simulate builds it ---------------------------------------------------------------

P0_CASES = [
    {},                                                     # simulate's default p(0)
    {"vocab": 40},                                          # its support and S0 defaults
    {"vocab": 40, "support": 10, "S0": 0.3},
    {"vocab": 40, "support": 10, "family": "uniform"},
    {"vocab": 40, "family": "zipf", "support": 12},
    {"vocab": 40, "support": 10, "family": "dirichlet", "distribution_seed": 3},
    {"vocab": 40, "support": 10, "S0": 0.3, "distribution_seed": 7},
    {"vocab": 10, "support": 20},                           # support > vocab
    {"vocab": 10, "support": 4, "S0": 0.1},                 # S0 < 1/support
    {"vocab": 10, "support": 4, "S0": 1.0},                 # S0 = 1 needs support 1
    {"vocab": 0},
    {"support": 0, "family": "uniform"},
    {"S0": -0.2},
    {"p0": "missing.npy"},
    {"p0": "p0.npy", "vocab": 3},                           # a file and p(0) fields conflict
    {"p0": "p0.npy"},
    {"p0": "bad.npy"},                                      # does not sum to 1
]

FLAG = {"vocab": "--vocab", "support": "--support", "S0": "--S0", "family": "--family",
        "p0": "--p0", "distribution_seed": "--p0-seed"}


def _flags(fields: dict) -> list[str]:
    return [part for key, value in fields.items() for part in (FLAG[key], str(value))]


def _case_id(fields: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in fields.items()) or "defaults"


@pytest.mark.parametrize("fields", P0_CASES, ids=_case_id)
def test_theory_and_budget_take_p0_flags_as_simulate_does(capsys, tmp_path, monkeypatch, fields):
    monkeypatch.chdir(tmp_path)
    np.save("p0.npy", np.array([0.5, 0.3, 0.2]))
    np.save("bad.npy", np.array([0.5, 0.3, 0.3]))
    try:
        expected = SimulationSpec(**fields).build_p0()
    except (ValueError, pydantic.ValidationError):
        expected = None
    code, out, err = run(capsys, "theory", *_flags(fields), "--n", "5", "--format", "json")
    budget = run(capsys, "budget", *_flags(fields), "--N", "50", "--epsilon", "0.5",
                 "--no-simulate", "--format", "json")
    if expected is None:  # refused by simulate: refused by both verbs, in one line
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
        assert budget[0] == 2 and budget[1] == ""
        return
    assert code == 0 and budget[0] == 0, err
    report = json.loads(out)
    assert report["vocab"] == expected.size
    assert report["support"] == int(np.count_nonzero(expected))
    assert report["S0"] == float(np.sum(expected * expected)) == pytest.approx(sigma(expected))
    assert json.loads(budget[1])["vocab"] == expected.size


def test_budget_p0_seed_defaults_to_the_simulation_seed(capsys):
    """As for simulate: without --p0-seed, p(0) of a random family is drawn from --seed."""
    common = ("budget", "--vocab", "40", "--support", "10", "--S0", "0.3", "--N", "50",
              "--epsilon", "0.5", "--no-simulate", "--format", "json")
    default = json.loads(run(capsys, *common)[1])
    seeded = json.loads(run(capsys, *common, "--seed", "4")[1])
    pinned = json.loads(run(capsys, *common, "--seed", "4", "--p0-seed", "0")[1])
    assert default == pinned != seeded


def test_a_two_dimensional_p0_is_refused_by_the_one_context_verbs(capsys, tmp_path):
    path = tmp_path / "rows.npy"
    np.save(path, np.array([[0.5, 0.5], [0.2, 0.8]]))
    code, out, err = run(capsys, "theory", "--p0", str(path), "--n", "5")
    assert code == 2 and out == "" and "must hold one distribution (vocab,)" in err
