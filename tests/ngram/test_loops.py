"""Both n-gram loops: exact predictions, the statistical loop in law, every scenario,
resume after a kill, and the output folder."""

from __future__ import annotations

import numpy as np
import pytest

from modelcollapse import api, ngram
from modelcollapse.ngram import runner as run_module
from modelcollapse.ngram.spec import NgramSpec
from modelcollapse.scenarios import SCENARIOS
from text_corpus import corpus_text

TEXT = corpus_text()


def test_fixed_contexts_agree_with_the_exact_per_context_prediction():
    """Order 2, characters, 200 runs: the share of contexts collapsed and the surviving
    vocabulary per context within 4 se of the exact law at every generation."""
    result = ngram.run(text=TEXT, order=2, runs=200, generations=8, ratio=0.02,
                       contexts=50, samples=0, progress=False)
    for metric in ("collapsed_share", "support_mean", "types"):
        mean, se = result.mean(metric)
        predicted = result.data[f"{metric}_predicted"].values
        assert mean[0] == pytest.approx(predicted[0])
        z = (mean[1:] - predicted[1:]) / se[1:]
        assert np.all(np.abs(z) < 4), (metric, z)


def test_order_zero_is_the_statistical_loop_on_the_unigram_in_law():
    """k = 0: one context, p(0) = the corpus's unigram, S = round(ratio · tokens); its support
    per generation against simulate's on the same p(0) and n (two-sample z < 4)."""
    ratio, runs, G = 2e-4, 300, 6
    result = ngram.run(text=TEXT, order=0, runs=runs, generations=G, ratio=ratio, contexts=1,
                       samples=0, progress=False)
    prepared = run_module.prepare(NgramSpec(order=0, ratio=ratio, generations=G), TEXT)
    p0 = prepared.p0.unigram() / prepared.p0.unigram().sum()
    n = int(max(1, round(ratio * prepared.p0.totals[0])))
    reference = api.simulate(p0=p0[p0 > 0], n=n, runs=runs, generations=G,
                             metrics=["support"], seed=5)
    ref_mean, ref_se = reference.mean("support")
    mean, se = result.mean("support_mean")
    z = (mean[1:] - ref_mean[1:]) / np.hypot(se[1:], ref_se[1:])
    assert np.all(np.abs(z) < 4), z


@pytest.mark.parametrize("scenario", sorted(k for k in SCENARIOS if k != "custom"))
@pytest.mark.parametrize("loop", ["fixed", "generative"])
def test_every_scenario_runs_in_both_loops(scenario, loop):
    extra = {"synthetic_fraction": 0.5} if scenario in ("partially-synthetic", "fresh-real") \
        else {"K": 2} if scenario == "most-recent" else {}
    sizes = {"runs": 4, "ratio": 0.05} if loop == "fixed" else {"tokens": 20_000,
                                                                  "streams": 50}
    result = ngram.run(text=TEXT, order=2, loop=loop, scenario=scenario, generations=4,
                       contexts=20, samples=1, progress=False, **extra, **sizes)
    for metric in ("l1_to_first", "cross_entropy", "collapsed_share", "entropy_rate"):
        mean, _ = result.mean(metric)
        assert np.all(np.isfinite(mean)), metric
    assert np.all(result.mean("l1_to_first")[0][:2] == 0)   # m = 0 and m = 1 are p(1) itself
    assert set(result.samples) == set(range(5))


def test_fully_synthetic_support_only_shrinks_and_mixtures_stay_closer():
    full = ngram.run(text=TEXT, order=2, runs=20, generations=6, samples=0, progress=False)
    types = full.mean("types")[0]
    assert np.all(np.diff(types) <= 0)       # a lost successor never comes back (eq. 2)
    mixed = ngram.run(text=TEXT, order=2, runs=20, generations=6, samples=0,
                      scenario="partially-synthetic", synthetic_fraction=0.5, progress=False)
    l1_full, se_full = full.mean("l1_to_first")
    l1_mixed, se_mixed = mixed.mean("l1_to_first")
    assert (l1_full[-1] - l1_mixed[-1]) / np.hypot(se_full[-1], se_mixed[-1]) > 4


def test_seeds_reproduce():
    a = ngram.run(text=TEXT, order=1, loop="generative", tokens=20_000, generations=3,
                  seed=3, progress=False)
    b = ngram.run(text=TEXT, order=1, loop="generative", tokens=20_000, generations=3,
                  seed=3, progress=False)
    c = ngram.run(text=TEXT, order=1, loop="generative", tokens=20_000, generations=3,
                  seed=4, progress=False)
    np.testing.assert_array_equal(a.data["l1_to_first_mean"], b.data["l1_to_first_mean"])
    assert not np.array_equal(a.data["cross_entropy_mean"], c.data["cross_entropy_mean"])


class _Killed(Exception):
    pass


@pytest.mark.parametrize("loop,scenario,kill_unit", [("fixed", "accumulate-subsample", 0),
                                                     ("fixed", "random-pool", 1),
                                                     ("generative", "accumulate", 0),
                                                     ("generative", "most-recent", 1)])
def test_resume_after_a_kill_gives_identical_results(tmp_path, monkeypatch, loop, scenario,
                                                     kill_unit):
    """Killed after generation 3 of the first or the second unit (a block of runs of the
    fixed loop, a run of the generative loop), the run resumes to the unbroken numbers."""
    if loop == "fixed":
        monkeypatch.setattr(run_module, "run_blocks", lambda runs: [(0, 3), (3, 3)])
    fields = dict(order=2, loop=loop, scenario=scenario, generations=5, contexts=30,
                  **({"runs": 6, "ratio": 0.05} if loop == "fixed"
                     else {"tokens": 30_000, "streams": 60, "runs": 2}),
                  **({"K": 2} if scenario == "most-recent" else {}))
    unbroken = ngram.run(text=TEXT, progress=False, **fields)
    original = run_module._Loop.checkpoint

    def kill_after_three(self, unit, m, state):
        original(self, unit, m, state)
        if (unit, m) == (kill_unit, 3):
            raise _Killed

    monkeypatch.setattr(run_module._Loop, "checkpoint", kill_after_three)
    with pytest.raises(_Killed):
        ngram.run(text=TEXT, out=tmp_path / "run", progress=False, **fields)
    monkeypatch.setattr(run_module._Loop, "checkpoint", original)
    resumed = ngram.run(text=TEXT, out=tmp_path / "run", progress=False, **fields)
    for name in unbroken.data.data_vars:
        np.testing.assert_array_equal(resumed.data[name].values, unbroken.data[name].values,
                                      err_msg=name)
    assert resumed.samples == unbroken.samples
    saved = ngram.load_result(tmp_path / "run")
    np.testing.assert_array_equal(saved.data["types_mean"], unbroken.data["types_mean"])
    for name in ("result.nc", "run.png", "samples.txt", "summary.json", "spec.json"):
        assert (tmp_path / "run" / name).is_file()


def test_a_folder_of_another_run_is_refused(tmp_path):
    ngram.run(text=TEXT, order=1, runs=2, generations=1, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="holds a run with other settings"):
        ngram.run(text=TEXT, order=2, runs=2, generations=1, out=tmp_path, progress=False)


def test_a_context_left_without_samples_is_refused_in_one_line():
    # S_j = 1 split over a window of three models: a third of a sample each, rounded to 0.
    with pytest.raises(ValueError, match="no training sample at generation 3"):
        ngram.run(text=TEXT, order=2, runs=2, generations=4, ratio=0.05, scenario="most-recent",
                  K=16, progress=False)
