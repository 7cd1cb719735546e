"""The one door: simulate and plan, what they accept and refuse, and what reaches the engine."""

from __future__ import annotations

import numpy as np
import pytest

import modelcollapse as mc
from modelcollapse.experiments.figure_spec import Cell
from modelcollapse.experiments.runner import simulate_cell
from modelcollapse.scenarios import FullySynthetic, PartiallySynthetic
from modelcollapse.spec import SimulationSpec


def test_plan_is_what_simulate_runs(p0_small):
    kw = dict(p0=p0_small, scenario=PartiallySynthetic(5, 20), runs=50, generations=10, seed=3)
    plan = mc.plan(**kw)
    res = mc.simulate(**kw, progress=False)
    assert res.data.attrs["representation"] == plan.representation
    assert res.data.attrs["route"] == plan.route
    assert res.seed_entropy == plan.entropy == 3


def test_counts_are_picked_where_draws_outnumber_the_live_support():
    two = np.array([0.999, 0.001])
    assert mc.plan(p0=two, scenario=FullySynthetic(10_000), runs=10).representation == "counts"
    assert mc.plan(p0=two, scenario=FullySynthetic(4), runs=10).representation == "tokens"
    wide = np.full(600, 1 / 600)
    assert mc.plan(p0=wide, scenario=FullySynthetic(1000), runs=10).representation == "tokens"


@pytest.mark.parametrize("fields, clash", [
    ({"vocab": 10}, "vocab"), ({"family": "uniform"}, "family"), ({"contexts": 2}, "contexts"),
])
def test_a_p0_array_and_p0_fields_conflict(p0_small, fields, clash):
    with pytest.raises(ValueError, match=f"'p0' argument of simulate and the spec field '{clash}'"):
        mc.simulate(p0=p0_small, runs=2, generations=2, **fields)


def test_a_scenario_object_and_scenario_fields_conflict(p0_small):
    with pytest.raises(ValueError, match="'scenario' argument of simulate and the spec field 'n'"):
        mc.simulate(p0=p0_small, scenario=FullySynthetic(5), n=7, runs=2, generations=2)
    with pytest.raises(TypeError, match="must be a Scenario object"):
        mc.simulate(p0=p0_small, scenario=3, runs=2, generations=2)


def test_python_values_of_numpy_types_are_taken():
    res = mc.simulate(runs=np.int64(20), generations=np.int32(5), metrics=["sigma"], seed=2,
                      progress=False)
    assert res.metrics == ("sigma", "collapsed") and res.data.sizes["run"] == 20


def test_a_result_from_arrays_records_no_spec_and_from_a_spec_records_it(p0_small):
    import json

    from_arrays = mc.simulate(p0=p0_small, scenario=FullySynthetic(5), runs=5, generations=3,
                              seed=1, progress=False)
    assert json.loads(from_arrays.data.attrs["spec"]) == {}
    from_spec = mc.simulate(runs=5, generations=3, seed=1, progress=False)
    assert json.loads(from_spec.data.attrs["spec"])["runs"] == 5


@pytest.mark.parametrize("stop", [True, False])
def test_snapshots_are_the_fitted_models_whether_runs_stop_or_not(p0_small, stop):
    """p(m) of the kept runs at the snapshot generations: σ of each equals the recorded σ_m,
    a run absorbed before a snapshot being its Dirac mass."""
    res = mc.simulate(p0=p0_small, scenario=FullySynthetic(3), runs=40, generations=30, seed=5,
                      snapshots=[0, 2, 10, 30], trajectories=12, stop_when_absorbed=stop,
                      progress=False)
    snaps = res.data["p_snapshot"].values  # (run, context, snapshot, token)
    assert snaps.shape[:3] == (12, 1, 4)
    assert np.allclose(snaps.sum(axis=-1), 1.0)
    kept = res.trajectories
    for j, m in enumerate(res.data["snapshot"].values):
        sigma = (snaps[:, :, j] ** 2).sum(axis=-1)
        np.testing.assert_allclose(sigma, kept["sigma"].sel(generation=m).values, atol=1e-12)
    assert np.allclose(snaps[:, :, 0], p0_small[None])
    assert np.allclose(snaps[:, :, 1:] * 3, np.round(snaps[:, :, 1:] * 3))  # n = 3 samples
    if stop:  # some kept run was absorbed before generation 30: its snapshot is δ_token
        absorbed = res.data["absorption_time"].values[:12, 0] < 30
        assert absorbed.any()
        token = res.data["absorbed_token"].values[:12, 0]
        assert np.all(snaps[absorbed, 0, 3, token[absorbed]] == 1.0)


def test_snapshots_out_of_range_are_refused(p0_small):
    with pytest.raises(ValueError, match="'snapshots' parameter of simulate"):
        mc.plan(p0=p0_small, scenario=FullySynthetic(3), runs=4, generations=5, snapshots=[6])


def test_a_figure_cell_runs_on_the_backend_its_spec_names():
    pytest.importorskip("torch")
    spec = SimulationSpec(backend="torch", runs=20, generations=5, seed=4, trajectories="none")
    res = simulate_cell(Cell(key="c", label="c", spec=spec))
    assert res.data.attrs["backend"] == "torch"
    assert res.data.attrs["experiment_fingerprint"]
