"""Trajectories larger than memory stream to the result's Zarr store, window by window."""

from __future__ import annotations

import numpy as np
import pytest

from modelcollapse import simulate
from modelcollapse.engine.recorder import run_bytes
from modelcollapse.rng import RUN_BLOCK
from modelcollapse.scenarios import FullySynthetic, PartiallySynthetic


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("scenario", [FullySynthetic(4), PartiallySynthetic(3, 5)],
                         ids=lambda s: s.name)
def test_streamed_trajectories_equal_those_kept_in_memory(tmp_path, p0_small, backend,
                                                           scenario):
    if backend == "torch":
        pytest.importorskip("torch")
    p0 = np.stack([p0_small, p0_small[::-1]])
    kw = dict(runs=RUN_BLOCK + 200, generations=120, seed=1, progress=False,
              backend=backend, chunk_runs=RUN_BLOCK)
    memory = simulate(p0=p0, scenario=scenario, trajectories="all", trajectory_memory_mb=1e3,
                      **kw)
    kept = RUN_BLOCK + 100  # the windows cross the chunks' boundary
    budget = 0.5 * kept * run_bytes(7, 2, 120) / 1e6 / 10  # windows of ~6 generations
    streamed = simulate(p0=p0, scenario=scenario, trajectories=kept,
                        trajectory_memory_mb=budget, store=tmp_path / "result.zarr", **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.zarr"]
    for name in memory.trajectories.data_vars:
        want = memory.trajectories[name].values[:kept]
        got = streamed.trajectories[name].values
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want, err_msg=name)
    for name in memory.data.data_vars:
        if not name.endswith("_trajectory"):
            np.testing.assert_array_equal(streamed.data[name].values, memory.data[name].values)


def test_a_failed_run_leaves_no_store_behind(tmp_path, p0_small, monkeypatch):
    build = FullySynthetic.training_set

    def failing(self, m, history):
        if m == 30:
            raise RuntimeError("stopped")
        return build(self, m, history)

    monkeypatch.setattr(FullySynthetic, "training_set", failing)
    with pytest.raises(RuntimeError, match="stopped"):
        simulate(p0=p0_small, scenario=FullySynthetic(40), runs=50, generations=100, seed=1,
                 trajectories="all", trajectory_memory_mb=0.01, store=tmp_path / "r.zarr",
                 progress=False)
    assert list(tmp_path.iterdir()) == []
