"""Pinned outputs: for a fixed seed the engines' draws never change.

``tests/data/regression_pin.npz`` holds, for each case below, the per-run outcomes and the
per-generation means and standard errors of every metric, as the engines computed them
before their results were streamed into per-generation statistics (commit 36540a3). Every
outcome must stay bit-identical and every mean equal to 1e-12: a change of the recording
may change how sums are rounded, never which tokens were drawn.

Regenerate only on purpose (a deliberate change of the draws), with
``python tests/test_regression_pin.py --write``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from modelcollapse import simulate
from modelcollapse.distributions import target_distribution
from modelcollapse.metrics import METRICS
from modelcollapse.scenarios import (
    Accumulate,
    AccumulateSubsample,
    FreshReal,
    FullySynthetic,
    MostRecent,
    PartiallySynthetic,
    RandomPool,
)

PIN = Path(__file__).parent / "data" / "regression_pin.npz"
OUTCOMES = ("collapse_time", "absorption_time", "absorbed_token")

SCENARIOS = {
    "fully": FullySynthetic(8),
    "partially": PartiallySynthetic(5, 7),
    "recent": MostRecent(9, 3),
    "pool": RandomPool(6),
    "accumulate": Accumulate(4, 5),
    "subsample": AccumulateSubsample(5, 6),
    "fresh": FreshReal(5, 3),
}


def _p0(contexts: int) -> np.ndarray:
    rows = [target_distribution(10, 6, 0.35, seed=c) for c in range(contexts)]
    return np.stack(rows)


#: name → (scenario, simulate keywords). The token route is pinned (the count route draws
#: otherwise), whatever the plan's "auto" would pick. Two contexts for some, more than one run
#: block for the fully and partially synthetic loops (the threaded compiled route), both numpy
#: metric routes, and the torch backend's representations and routes.
CASES: dict[str, tuple[str, dict]] = {}
for _name in SCENARIOS:
    CASES[f"numpy-{_name}"] = (_name, dict(n_runs=40, n_generations=30, contexts=2))
    CASES[f"numpy-plain-{_name}"] = (_name, dict(n_runs=40, n_generations=30, contexts=1,
                                                 compiled=False))
for _name in ("fully", "partially", "recent", "pool", "fresh"):
    CASES[f"torch-{_name}"] = (_name, dict(n_runs=40, n_generations=30, contexts=2,
                                           backend="torch"))
CASES.update({
    "numpy-fully-blocks": ("fully", dict(n_runs=2100, n_generations=60, contexts=1,
                                         chunk_runs=1000)),
    "numpy-partially-blocks": ("partially", dict(n_runs=2100, n_generations=60, contexts=1)),
    "numpy-fully-no-stop": ("fully", dict(n_runs=30, n_generations=25, contexts=2,
                                          stop_when_absorbed=False)),
    "torch-fully-counts": ("fully", dict(n_runs=40, n_generations=30, contexts=2,
                                         backend="torch", representation="counts")),
    "torch-partially-counts": ("partially", dict(n_runs=40, n_generations=30, contexts=1,
                                                 backend="torch", representation="counts")),
    "torch-fully-blocks": ("fully", dict(n_runs=1100, n_generations=40, contexts=1,
                                         backend="torch", chunk_runs=1000)),
    # The fused kernel, in Triton's interpreter without a CUDA device.
    "torch-fully-fused": ("fully", dict(n_runs=30, n_generations=20, contexts=2,
                                        backend="torch", fused=True)),
    "torch-partially-fused": ("partially", dict(n_runs=30, n_generations=20, contexts=1,
                                                backend="torch", fused=True)),
})


def outputs(case: str) -> dict[str, np.ndarray]:
    """The pinned arrays of one case: outcomes per (run, context), mean and se per generation."""
    scenario, kw = CASES[case]
    kw = dict(kw)
    contexts = kw.pop("contexts")
    if kw.get("backend") == "torch":
        pytest.importorskip("torch")
    if kw.get("fused"):
        pytest.importorskip("triton")
    kw.setdefault("representation", "tokens")
    res = simulate(p0=_p0(contexts), scenario=SCENARIOS[scenario], runs=kw.pop("n_runs"),
                   generations=kw.pop("n_generations"), seed=20261207, progress=False, **kw)
    out = {name: res.data[name].values for name in OUTCOMES}
    for metric in METRICS:
        out[f"{metric}_mean"], out[f"{metric}_se"] = res.mean(metric)
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_outputs_match_the_pinned_ones(case):
    pinned = np.load(PIN)
    got = outputs(case)
    for name, value in got.items():
        want = pinned[f"{case}/{name}"]
        if name in OUTCOMES:
            np.testing.assert_array_equal(value, want, err_msg=f"{case}: {name}")
        elif name.endswith("_mean"):
            np.testing.assert_allclose(value, want, rtol=1e-12, atol=1e-12,
                                       err_msg=f"{case}: {name}")
        else:  # a standard error: sums of squares round more than sums
            np.testing.assert_allclose(value, want, rtol=1e-9, atol=1e-12,
                                       err_msg=f"{case}: {name}")


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    arrays = {f"{case}/{name}": value for case in sorted(CASES)
              for name, value in outputs(case).items()}
    PIN.parent.mkdir(exist_ok=True)
    np.savez_compressed(PIN, **arrays)
    print(f"wrote {len(arrays)} arrays to {PIN}")
