"""The torch loop writes every cell of its result arrays itself: whatever the arrays held
before the run — here a sentinel float and either boolean — the Result is the same. So the
loop can leave them uninitialised (filling hundreds of megabytes with NaN first costs the
host page faults on the critical path).

Covered: both routes (the fused one in Triton's interpreter on a CPU), runs that stop and
runs that go on after absorption, absorbed runs dropped at checks, several log windows,
chunks, and a chunk run again after running out of device memory.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from modelcollapse import loop as numpy_loop  # noqa: E402
from modelcollapse.metrics import resolve_metrics  # noqa: E402
from modelcollapse.rng import RUN_BLOCK  # noqa: E402
from modelcollapse.scenarios import (  # noqa: E402
    FullySynthetic,
    MostRecent,
    PartiallySynthetic,
    RandomPool,
)
from modelcollapse.torch_backend import fused, run_loop_torch  # noqa: E402
from modelcollapse.torch_backend import loop as torch_loop  # noqa: E402

SENTINEL = -7.25


def _poisoned(value: float, flag: bool):
    class Poisoned(numpy_loop._Store):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.table.fill(value)
            self.arrays["collapsed"].fill(flag)
    return Poisoned


def _same_whatever_the_arrays_held(monkeypatch, run):
    """The Result of ``run()`` over arrays that held NaN and False, a sentinel and True, or
    a sentinel and False; returns the first."""
    results = []
    for value, flag in ((np.nan, False), (SENTINEL, True), (SENTINEL, False)):
        with monkeypatch.context() as patch:
            patch.setattr(torch_loop, "_Store", _poisoned(value, flag))
            results.append(run())
    for name in resolve_metrics(None):
        assert not np.any(results[1].data[name].values == SENTINEL), name
    for other in results[1:]:
        for name in results[0].data.data_vars:
            np.testing.assert_array_equal(other.data[name].values,
                                          results[0].data[name].values, err_msg=name)
    return results[0]


@pytest.fixture(autouse=True)
def _short_windows(monkeypatch):
    monkeypatch.setattr(torch_loop, "LOG_WIDTH", 3)  # several copies to the host per run
    monkeypatch.setitem(torch_loop.CHECK_EVERY, "cpu", 2)  # drops between them


@pytest.mark.parametrize("scenario", [FullySynthetic(4), PartiallySynthetic(3, 2),
                                      MostRecent(4, 2), RandomPool(4)],
                         ids=lambda s: s.describe())
@pytest.mark.parametrize("stop", [True, False], ids=["stop", "go-on"])
def test_generic_route_writes_every_cell(p0_small, scenario, stop, monkeypatch):
    """Over 60 generations every fully synthetic run is absorbed, so the loop stops early
    there (with no log window left to write the generations after)."""
    p0 = np.stack([p0_small, np.eye(p0_small.size)[2]])  # the second context starts absorbed
    result = _same_whatever_the_arrays_held(monkeypatch, lambda: run_loop_torch(
        p0, scenario, n_runs=2 * RUN_BLOCK + 300, n_generations=60, entropy=4,
        names=resolve_metrics(None), chunk_runs=RUN_BLOCK, stop_when_absorbed=stop,
        progress=False))
    if isinstance(scenario, FullySynthetic):
        assert np.isfinite(result.data["absorption_time"].values).all()


@pytest.mark.skipif(not fused.available(torch.device("cpu")),
                    reason="needs Triton's interpreter")
@pytest.mark.parametrize("scenario", [FullySynthetic(4), PartiallySynthetic(3, 2)],
                         ids=lambda s: s.describe())
def test_fused_route_writes_every_cell(p0_small, scenario, monkeypatch):
    monkeypatch.setattr(torch_loop, "FUSED_DROP_SHARE", 0.0)
    _same_whatever_the_arrays_held(monkeypatch, lambda: run_loop_torch(
        np.atleast_2d(p0_small), scenario, n_runs=30, n_generations=11, entropy=4,
        names=resolve_metrics(None), fused=True, progress=False))


def test_a_chunk_run_again_writes_every_cell(p0_small, monkeypatch, device_memory_for):
    device_memory_for(RUN_BLOCK, generation=6)
    with pytest.warns(RuntimeWarning, match="did not fit"):
        _same_whatever_the_arrays_held(monkeypatch, lambda: run_loop_torch(
            np.atleast_2d(p0_small), FullySynthetic(4), n_runs=2 * RUN_BLOCK,
            n_generations=11, entropy=4, names=resolve_metrics(None), progress=False))
