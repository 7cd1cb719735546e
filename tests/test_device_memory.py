"""The torch loop on a device that runs out of memory: it runs the same runs again in smaller
chunks, which gives the same Result (results do not depend on the chunking), and says so; when
not even one run block fits, the error says what to change.

Running out of memory is simulated (conftest's ``device_memory_for``): the generation loop
raises torch's out-of-memory error part-way through chunks larger than a given size, after
metrics have been copied to the host and absorbed runs dropped.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from modelcollapse import simulate  # noqa: E402
from modelcollapse.engine import plan as engine_plan  # noqa: E402
from modelcollapse.metrics import resolve_metrics  # noqa: E402
from modelcollapse.rng import RUN_BLOCK  # noqa: E402
from modelcollapse.scenarios import FullySynthetic  # noqa: E402
from result_tables import assert_same_result, full  # noqa: E402


def _run(p0, runs, **kw):
    return simulate(p0=p0, scenario=FullySynthetic(4), runs=runs, generations=12,
                    backend="torch", seed=3, metrics=resolve_metrics(None), progress=False,
                    trajectories=runs, **kw)


@pytest.fixture
def p0_two_contexts(p0_small):
    return np.stack([p0_small, p0_small[::-1]])


def test_out_of_memory_runs_again_in_smaller_chunks(p0_two_contexts, monkeypatch,
                                                   device_memory_for):
    # Absorbed runs dropped (settled in the chunk's sums) before the failure.
    monkeypatch.setitem(engine_plan.CHECK_EVERY, "torch", 2)
    runs = 3 * RUN_BLOCK
    reference = _run(p0_two_contexts, runs)
    device_memory_for(RUN_BLOCK * 2, generation=5)  # one run block of two contexts fits
    with pytest.warns(RuntimeWarning, match=f"{runs} runs at a time did not fit.*running "
                                            f"{RUN_BLOCK} at a time"):
        tight = _run(p0_two_contexts, runs)
    assert np.isfinite(full(reference)["absorption_time"].values).any()
    assert_same_result(tight, reference)


def test_out_of_memory_at_one_run_block_says_what_to_change(p0_small, device_memory_for):
    device_memory_for(0, generation=5)
    with pytest.raises(torch.cuda.OutOfMemoryError) as caught, \
            pytest.warns(RuntimeWarning, match=f"running {RUN_BLOCK} at a time"):
        _run(np.atleast_2d(p0_small), 2 * RUN_BLOCK)
    assert f"a run block is {RUN_BLOCK}" in str(caught.value)
    assert "simulated" in str(caught.value.__cause__)  # the device's own message is kept
