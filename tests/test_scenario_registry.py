"""Common checks for every registered scenario: what a scenario states about itself (eq. 5
counts, lag, real data, capabilities) agrees with what it does in the engine.

A scenario added to :data:`modelcollapse.scenarios.SCENARIOS` without an example here fails
:func:`test_every_registered_scenario_has_an_example`, so none escapes these checks.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from modelcollapse import simulate
from modelcollapse.distributions import target_distribution
from modelcollapse.engine.loop import live_support
from modelcollapse.engine.numpy.history import TokenHistory
from modelcollapse.engine.numpy.sampling import RowStreams, rows_per_block
from modelcollapse.scenarios import (
    SCENARIOS,
    Accumulate,
    AccumulateSubsample,
    Custom,
    FreshReal,
    FullySynthetic,
    MostRecent,
    PartiallySynthetic,
    RandomPool,
    Scenario,
)

EXAMPLES: dict[str, Scenario] = {
    "fully-synthetic": FullySynthetic(6),
    "partially-synthetic": PartiallySynthetic(5, 4),
    "most-recent": MostRecent(7, 3),
    "random-pool": RandomPool(6),
    "accumulate": Accumulate(3, 4),
    "accumulate-subsample": AccumulateSubsample(4, 5),
    "fresh-real": FreshReal(5, 3),
    "custom": Custom(lambda m: np.r_[2, np.zeros(m - 2, dtype=int), 4][:m] if m > 1
                     else np.array([6]), N=6, real_mode="corpus", lag_models=1),
}
GENERATIONS = 8
RUNS = 60


def test_every_registered_scenario_has_an_example():
    assert sorted(EXAMPLES) == sorted(SCENARIOS)
    for name, scenario in EXAMPLES.items():
        assert type(scenario) is SCENARIOS[name]


@pytest.fixture(scope="module")
def p0() -> np.ndarray:
    return target_distribution(12, 5, 0.3, seed=4)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_stated_attributes_are_consistent(name):
    scenario = EXAMPLES[name]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(scenario, dataclasses.fields(scenario)[0].name, 1)
    assert scenario.name == name and scenario.describe().startswith(f"{name}(")
    assert scenario.real in ("fresh", "corpus")
    assert (scenario.corpus_size() > 0) == (scenario.real == "corpus")
    assert scenario.lag is None or (isinstance(scenario.lag, int) and scenario.lag >= 1)
    assert isinstance(scenario.uses_real, bool) and isinstance(scenario.needs_token_order, bool)
    assert isinstance(scenario.keeps_published, bool)
    if scenario.real == "corpus" or scenario.lag is None:
        assert scenario.uses_real  # real data in reach of every model
    for m in range(1, GENERATIONS + 1):
        counts = np.asarray(scenario.counts(m))
        assert counts.shape == (m,) and np.all(counts >= 0) and counts.sum() > 0
        if not scenario.uses_real and m > scenario.lag:
            # Without real data only the last `lag` models are in reach (absorption rests
            # on it).
            assert np.all(counts[1: m - scenario.lag] == 0)
    step = scenario.fixed_step
    if step is not None:
        assert step.corpus == scenario.corpus_size()
        for m in range(2, GENERATIONS + 1):
            expected = np.zeros(m)
            expected[0] += step.corpus
            expected[m - 1] += step.draws
            np.testing.assert_array_equal(scenario.counts(m), expected)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_training_sets_have_the_sizes_eq5_gives(name, p0):
    """Model m is fitted on Σ_t n_t^(m) samples (the expected counts sum to the same)."""
    scenario = EXAMPLES[name]
    p_live, _ = live_support(p0[None])
    rows = 4
    streams = RowStreams(7, 0, rows_per_block(rows, 1))
    history = TokenHistory(scenario, p_live, np.zeros(rows, dtype=np.int64), streams,
                           GENERATIONS)
    for m in range(1, GENERATIONS + 1):
        model = scenario.training_set(m, history)
        history.store(m, model)
        assert model.size == round(float(np.sum(scenario.counts(m))))
        assert model.tokens.shape == (rows, model.size)
        assert model.tokens.min() >= 0 and model.tokens.max() < p_live.shape[1]


def _representations(scenario: Scenario) -> list[str]:
    return ["tokens"] if scenario.needs_token_order else ["tokens", "counts"]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_runs_on_every_representation_it_claims(name, backend, p0):
    """Properties of the metrics through the engine: the simplex (σ ∈ [1/support, 1],
    support ≤ that of p(0)), collapse is absorbing without real data, seeds reproduce."""
    if backend == "torch":
        pytest.importorskip("torch")
    scenario = EXAMPLES[name]
    for representation in _representations(scenario):
        kw = dict(p0=p0, scenario=scenario, runs=RUNS, generations=GENERATIONS, seed=11,
                  backend=backend, representation=representation, trajectories="all",
                  stop_when_absorbed=False)
        res = simulate(**kw)
        assert res.data.attrs["representation"] == representation
        traj = res.trajectories
        sigma, support = traj["sigma"].values, traj["support"].values
        assert np.all(sigma <= 1 + 1e-12) and np.all(sigma >= 1 / support - 1e-12)
        assert np.all(support <= np.count_nonzero(p0) + 1e-9)
        collapsed = traj["collapsed"].values
        if not scenario.uses_real and scenario.lag == 1:
            # Proposition 1: a Dirac model trained on its own samples stays one.
            assert np.all(collapsed[..., 1:] >= collapsed[..., :-1])
        again = simulate(**kw)
        np.testing.assert_array_equal(again.trajectories["sigma"].values, sigma)
