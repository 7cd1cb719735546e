"""The verification suite (modelcollapse.verify): its checks pass on the quick grid, fail when
theory and simulation disagree, and its table reports every check."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelcollapse import verify


def test_quick_suite_passes_and_reports_every_kind():
    checks = verify.run_verification(quick=True, seed=0)
    assert verify.all_passed(checks), verify.format_table([c for c in checks if not c.passed])
    kinds = {c.kind for c in checks}
    assert kinds >= {"exact", "lower bound", "upper bound", "prediction", "distribution"}
    scenarios = {c.case.split()[0] for c in checks}
    assert scenarios == {"fully-synthetic", "partially-synthetic", "most-recent", "random-pool"}
    table = verify.format_table(checks)
    assert "PASS" in table and f"{len(checks)} passed, 0 failed" in table
    names = {c.name for c in checks}
    assert {"E[T] (exact law)", "E[T] >= eq. 8 lower", "E[T] corrected diffusion",
            "law of T: KS vs exact law", "Proposition 1: absorbing token ~ p(0)"} <= names


def test_same_seed_same_checks():
    case = verify.Case("partially-synthetic", n=5, N=30, support=10, S0=0.3, n_runs=200,
                       n_generations=4)
    first = verify.run_verification(cases=[case], seed=3)
    again = verify.run_verification(cases=[case], seed=3)
    assert [c.simulated for c in first] == [c.simulated for c in again]


def test_comparisons_fail_when_they_should():
    values = np.random.default_rng(0).normal(1.0, 0.1, size=400)
    mean, se = verify._mean_se(values)
    assert verify._exact("x", "case", 1.0, mean, se).passed
    wrong = verify._exact("x", "case", 1.1, mean, se)
    assert not wrong.passed and wrong.z < -4
    assert verify._bound("lo", "case", "lower", 0.5, 1.0, 0.01).passed
    assert not verify._bound("lo", "case", "lower", 1.5, 1.0, 0.01).passed
    assert not verify._bound("hi", "case", "upper", 0.5, 1.0, 0.01).passed
    pred = verify._prediction("p", "case", 1.2, mean, se, 0.05)
    assert not pred.passed and math.isclose(pred.rel_error, 1.2 / values.mean() - 1)
    assert "FAIL" in verify.format_table([wrong])


def test_unknown_scenario_is_rejected():
    case = verify.Case("accumulate", n=5)
    try:
        case.build()
    except ValueError as exc:
        assert "has no verification checks" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("accumulate has no checks")


def test_checks_read_the_statistics_of_every_run():
    """A mean at generation m and its se are those of the per-run values; a proportion's se
    is floored at one success in R runs."""
    from modelcollapse import simulate
    from modelcollapse.scenarios import FullySynthetic

    p0 = verify.Case("fully-synthetic", n=5).p0()
    res = simulate(p0=p0, scenario=FullySynthetic(n=5), runs=300, generations=8, seed=2,
                   metrics=("sigma",), progress=False, trajectories="all")
    per_run = res.trajectories["sigma"].values[:, 0, 4]
    mean, se = verify._at(res, "sigma", 4)
    assert mean == pytest.approx(per_run.mean(), rel=1e-12)
    assert se == pytest.approx(per_run.std(ddof=1) / math.sqrt(per_run.size), rel=1e-9)
    assert verify._proportion(0.0, 100) == (0.0, pytest.approx(0.01))
    assert verify._proportion(0.5, 100) == (0.5, pytest.approx(0.05))
