"""The torch loop writes every cell of its result arrays itself: whatever the arrays held
before the run — here a sentinel float and either boolean — the Result is the same. So the
loop can leave them uninitialised (filling hundreds of megabytes with NaN first costs the
host page faults on the critical path).

Covered: both routes (the fused one in Triton's interpreter on a CPU), runs that stop and
runs that go on after absorption, absorbed runs dropped at checks, several log windows,
chunks, a chunk run again after running out of device memory, and copies on a worker thread
racing the store's fault-in. The fault-in itself maps the store's pages without changing a
value.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
@pytest.mark.parametrize("background", [False, True], ids=["inline", "worker"])
def test_generic_route_writes_every_cell(p0_small, scenario, stop, background, monkeypatch):
    """Over 60 generations every fully synthetic run is absorbed, so the loop stops early
    there (with no log window left to write the generations after)."""
    monkeypatch.setitem(torch_loop.BACKGROUND_COPIES, "cpu", background)
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


#: In a fresh interpreter (no freed memory for the allocator to hand out again): the share of
#: a new unfilled store's bytes that ``fault_in`` makes resident.
_RESIDENT_SHARE = """
import mmap
from pathlib import Path
from modelcollapse.loop import _Store
from modelcollapse.metrics import resolve_metrics

def resident():
    return int(Path("/proc/self/statm").read_text().split()[1]) * mmap.PAGESIZE

store = _Store(10_000, 79, resolve_metrics(None), filled=False)
size = store.table.nbytes + store.arrays["collapsed"].nbytes
before = resident()
store.fault_in()
print((resident() - before) / size)
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads Linux's /proc")
def test_fault_in_maps_every_page_of_a_cold_store():
    """An unfilled store of 40 MB (fresh pages: nothing resident) is resident afterwards."""
    share = subprocess.run([sys.executable, "-c", _RESIDENT_SHARE], check=True,
                           capture_output=True, text=True).stdout
    assert float(share) >= 0.95


@pytest.mark.parametrize("names", [resolve_metrics(None), ("collapsed",)],
                         ids=["all-metrics", "collapsed-only"])
def test_fault_in_changes_no_value(names):
    store = numpy_loop._Store(3000, 40, names, filled=False)
    gen = np.random.default_rng(0)
    store.table[...] = gen.standard_normal(store.table.shape)
    store.table[store.table > 2] = np.nan
    store.arrays["collapsed"][...] = gen.random(store.arrays["collapsed"].shape) < 0.5
    table, collapsed = store.table.copy(), store.arrays["collapsed"].copy()
    store.fault_in()
    np.testing.assert_array_equal(store.table, table)
    np.testing.assert_array_equal(store.arrays["collapsed"], collapsed)
