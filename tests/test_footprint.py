"""The memory estimate of a plan (engine/footprint.py) against what the engine really
allocates, and the refusals it makes before any work."""

from __future__ import annotations

import re
import tracemalloc

import numpy as np
import pytest

from modelcollapse import plan, simulate
from modelcollapse.engine.footprint import MEMORY_VARIABLE, available_memory, estimate
from modelcollapse.scenarios import make_scenario

CASES = {
    "tokens, trajectories kept": dict(n=10, runs=1000, generations=200),
    "counts": dict(n=2000, runs=500, generations=100),
    "several contexts, wide support": dict(vocab=3000, support=2000, S0=0.01, n=100, runs=200,
                                           generations=30, contexts=3),
    "many runs, nothing kept": dict(n=10, runs=10_000, generations=200, trajectories="none"),
    "accumulate": dict(n=10, N=20, scenario="accumulate", runs=300, generations=300),
    "random pool": dict(n=10, scenario="random-pool", runs=300, generations=200),
    "fixed corpus": dict(n=10, N=100, scenario="partially-synthetic", runs=2000,
                         generations=200),
}


@pytest.mark.parametrize("fields", CASES.values(), ids=CASES.keys())
def test_estimate_bounds_the_measured_peak_within_a_small_factor(fields):
    """Never below what numpy allocates (else a refusal could let through a run that does not
    fit), and at most 3 times it (else it would refuse runs that fit)."""
    fields = {"seed": 1, **fields}
    the_plan = plan(**fields)
    scenario = make_scenario(fields.get("scenario", "fully-synthetic"), n=fields["n"],
                             N=fields.get("N"))
    predicted = estimate(the_plan, scenario, fields.get("vocab", 600)).total
    tracemalloc.start()
    try:
        simulate(**fields)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= predicted <= 3 * peak


def test_accumulate_holds_its_data_once():
    """Models trained on each other's data (accumulate) share it: the memory grows with the
    data, N + m·n tokens per row, not with the sum over every model."""
    peaks = []
    for generations in (100, 400):
        tracemalloc.start()
        simulate(n=10, N=20, scenario="accumulate", runs=200, generations=generations,
                 seed=3, trajectories="none")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 6 * peaks[0]  # 4× the data; a sum over models would be 16×


@pytest.mark.parametrize("fields, part", [
    (dict(runs=10**9), "per-run outcomes"),
    (dict(generations=10**9), "per-generation statistics"),
    (dict(contexts=10**7), "p(0)"),
    (dict(vocab=10**9), "p(0)"),
    (dict(n=10**12, representation="tokens"), "models"),
])
def test_requests_larger_than_the_machine_are_refused_before_any_work(monkeypatch, fields,
                                                                      part):
    monkeypatch.setenv(MEMORY_VARIABLE, "16")
    pattern = r"would need about .* of memory \(" + re.escape(part)
    with pytest.raises(ValueError, match=pattern) as info:
        plan(**fields)
    assert "choose" in str(info.value) and "\n" not in str(info.value)


def test_the_memory_cap_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv(MEMORY_VARIABLE, "0.5")
    assert available_memory() == pytest.approx(0.5e9)
    with pytest.raises(ValueError, match="would need"):
        plan(runs=2_000_000, generations=10)
    monkeypatch.setenv(MEMORY_VARIABLE, "lots")
    with pytest.raises(ValueError, match=MEMORY_VARIABLE):
        plan(runs=10)


def test_counts_too_large_for_tokens_still_run_as_counts(monkeypatch):
    """n = 10¹² is refused on tokens but runs on counts, which cost O(support)."""
    monkeypatch.setenv(MEMORY_VARIABLE, "16")
    result = simulate(n=10**12, runs=4, generations=3, seed=0)
    assert result.data.attrs["representation"] == "counts"
    assert np.all(result.mean("sigma")[0][1:] > 0)
