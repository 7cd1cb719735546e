"""The recorder: per-generation statistics equal those of the dense table, whatever arrives
when; trajectories of a fixed subset of runs; runs that stop cost nothing after."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelcollapse import simulate
from modelcollapse.distributions import target_distribution
from modelcollapse.engine.numpy import kernels
from modelcollapse.engine.recorder import Recorder, kept_runs
from modelcollapse.rng import RUN_BLOCK
from modelcollapse.scenarios import FullySynthetic, PartiallySynthetic
from modelcollapse.theory import collapse_time_law

NAMES = ("sigma", "l1_to_first", "collapsed")


def _feed(recorder: Recorder, table: np.ndarray, stops: np.ndarray, rng) -> None:
    """Hand ``table`` (metrics, rows, G + 1) to the recorder as an engine would: a window of
    generations or one at a time, rows leaving after their stop generation (their later
    values being their value at it)."""
    n_rows, columns = table.shape[1], table.shape[2]
    recorder.begin_chunk(slice(0, n_rows))
    m = 0
    while m < columns:
        alive = np.flatnonzero(stops >= m)
        if alive.size == 0:
            break
        steps = int(rng.integers(1, 4))
        steps = min(steps, columns - m, int(stops[alive].min()) - m + 1)
        if steps == 1 and rng.random() < 0.5:
            recorder.record(m, alive, {name: table[i, alive, m] for i, name in enumerate(NAMES)})
        else:
            rows = alive if len(alive) < n_rows else slice(0, n_rows)
            recorder.record_window(m, rows, table[:, alive, m:m + steps])
        last = m + steps - 1
        stopping = alive[stops[alive] == last]
        recorder.settle(stopping, last,
                        {name: table[i, stopping, last] for i, name in enumerate(NAMES)})
        m = last + 1
    recorder.end_chunk()


def _dense(table: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """The table as it reads when a row's values hold from its stop generation on."""
    out = table.copy()
    for row, stop in enumerate(stops):
        out[:, row, stop + 1:] = table[:, row, stop][:, None]
    return out


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize("contexts", [1, 3])
def test_statistics_equal_those_of_the_dense_table(contexts, compiled, monkeypatch):
    if compiled and not kernels.AVAILABLE:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(kernels, "AVAILABLE", compiled)
    rng = np.random.default_rng(1)
    runs, G = 50, 12
    rows = runs * contexts
    table = rng.random((len(NAMES), rows, G + 1))
    table[2] = table[2] > 0.5  # collapsed is 0/1
    stops = rng.integers(0, G + 1, size=rows)
    shift = rng.random((len(NAMES), contexts))
    recorder = Recorder(rows, contexts, G, NAMES, shift, kept_rows=7 * contexts)
    _feed(recorder, table, stops, rng)

    dense = _dense(table, stops)
    count, mean, m2 = recorder.statistics()
    by_context = dense.reshape(len(NAMES), runs, contexts, G + 1)
    assert np.all(count == runs)
    np.testing.assert_allclose(mean, by_context.mean(axis=1), rtol=1e-13)
    spread = ((by_context - by_context.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    np.testing.assert_allclose(m2, spread, rtol=1e-10, atol=1e-13)
    np.testing.assert_array_equal(recorder.final, dense[:, :, -1])
    np.testing.assert_array_equal(recorder.trajectories, dense[:, :7 * contexts])


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_sums_keep_their_digits_over_a_million_runs(compiled, monkeypatch):
    if compiled and not kernels.AVAILABLE:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(kernels, "AVAILABLE", compiled)
    rng = np.random.default_rng(2)
    values = 0.7 + 1e-6 * rng.standard_normal(10**6)
    recorder = Recorder(values.size, 1, 1, ("sigma",), np.array([[0.7]]))
    recorder.record(0, slice(0, values.size), {"sigma": values})
    recorder.record(1, slice(0, values.size), {"sigma": values[::-1]})
    _, mean, m2 = recorder.statistics()
    exact_mean = math.fsum(values) / values.size
    exact_m2 = math.fsum((values - exact_mean) ** 2)
    assert abs(mean[0, 0, 0] - exact_mean) <= 4 * np.finfo(float).eps * exact_mean
    assert abs(mean[0, 0, 1] - exact_mean) <= 4 * np.finfo(float).eps * exact_mean
    np.testing.assert_allclose(m2[0, 0], exact_m2, rtol=1e-9)


def test_kept_runs_follow_the_request_and_the_budget():
    size = dict(n_runs=100, n_contexts=2, n_generations=99, n_metrics=5)
    per_run = 8 * 5 * 2 * 100  # bytes: metrics × contexts × generations
    assert kept_runs("none", **size) == (0, None)
    assert kept_runs("all", **size) == (100, None)
    assert kept_runs(30, **size) == (30, None)
    assert kept_runs(300, **size) == (100, None)
    kept, note = kept_runs("auto", memory_mb=10 * per_run / 1e6, **size)
    assert kept == 10 and "keeping runs 0 … 9 of 100" in note
    with pytest.raises(ValueError, match=r"'trajectories'.*100 runs.*0.8 MB.*at most 10 runs"):
        kept_runs("all", memory_mb=10 * per_run / 1e6, **size)
    with pytest.raises(ValueError, match="asks for 11 runs"):
        kept_runs(11, memory_mb=10 * per_run / 1e6, **size)
    for bad in (-1, "some", 2.5, True):
        with pytest.raises(ValueError, match="'auto', 'all', 'none' or a number of runs"):
            kept_runs(bad, **size)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_kept_runs_are_the_first_runs_whatever_the_chunking(p0_small, backend):
    if backend == "torch":
        pytest.importorskip("torch")
    runs = RUN_BLOCK + 20
    kw = dict(runs=runs, generations=12, seed=5, backend=backend, progress=False)
    every = simulate(p0=p0_small, scenario=FullySynthetic(4), trajectories="all",
                     **kw).trajectories
    some = simulate(p0=p0_small, scenario=FullySynthetic(4), trajectories=7,
                    chunk_runs=RUN_BLOCK, **kw).trajectories
    assert list(some["run"].values) == list(range(7))
    for name in some.data_vars:
        np.testing.assert_array_equal(some[name].values, every[name].values[:7], err_msg=name)
    tail = simulate(p0=p0_small, scenario=FullySynthetic(4), trajectories=RUN_BLOCK + 5,
                    chunk_runs=RUN_BLOCK, **kw).trajectories
    np.testing.assert_array_equal(tail["sigma"].values, every["sigma"].values[:RUN_BLOCK + 5])


def test_auto_keeps_what_fits_and_says_so(p0_small, capsys):
    per_run = 8 * 7 * 21  # bytes: all 7 metrics, 21 generations, one context
    res = simulate(p0=p0_small, scenario=FullySynthetic(4), runs=50, generations=20, seed=1,
                   trajectories="auto", trajectory_memory_mb=12.5 * per_run / 1e6,
                   progress=False)
    assert res.trajectories.sizes["run"] == 12
    assert "keeping runs 0 … 11 of 50" in capsys.readouterr().err
    none = simulate(p0=p0_small, scenario=FullySynthetic(4), runs=50, generations=20, seed=1,
                    trajectories="none", progress=False)
    assert none.trajectories is None
    np.testing.assert_array_equal(none.mean("sigma")[0], res.mean("sigma")[0])


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_the_loop_stops_once_every_run_is_absorbed(p0_small, backend, monkeypatch):
    """A generous generation limit costs nothing once the runs are absorbed: the scenario is
    asked for as many models as the longest run lived, and every later generation holds the
    runs' Dirac masses."""
    if backend == "torch":
        pytest.importorskip("torch")
    asked = []
    build = FullySynthetic.training_set
    monkeypatch.setattr(FullySynthetic, "training_set",
                        lambda self, m, history: asked.append(m) or build(self, m, history))
    G = 100_000
    res = simulate(p0=p0_small, scenario=FullySynthetic(4), runs=300, generations=G, seed=2,
                   trajectories="none", backend=backend, progress=False)
    T = res.data["collapse_time"].values
    assert np.isfinite(T).all()
    assert max(asked) <= T.max() + 8  # the torch loop looks every 8 generations
    for metric in ("sigma", "sup", "support", "collapsed"):
        mean, se = res.mean(metric)
        np.testing.assert_allclose(mean[int(T.max()):], 1.0, rtol=1e-14)
        assert np.all(se[int(T.max()):] == 0.0)
    assert np.all(res.data["count"].values == 300)
    np.testing.assert_array_equal(res.data["sigma_final"].values, 1.0)


def test_collapse_time_over_a_long_horizon_follows_the_exact_law():
    """4,000 runs, 100,000 generations allowed: every run collapses, and the mean collapse
    time agrees with the exact law of T (Theorem 1's chain, theory.collapse_time_law)."""
    p0 = target_distribution(40, 40, 0.1, seed=0)
    res = simulate(p0=p0, scenario=FullySynthetic(20), runs=4000, generations=100_000, seed=3,
                   trajectories="none", progress=False)
    T = res.data["collapse_time"].values.ravel()
    assert np.isfinite(T).all()
    law = collapse_time_law(p0, n=20)
    z = (T.mean() - law.mean) / (T.std(ddof=1) / np.sqrt(T.size))
    assert abs(z) < 4, (T.mean(), law.mean)


def test_partially_synthetic_statistics_without_trajectories(p0_small):
    kw = dict(runs=300, generations=30, seed=4, progress=False)
    kept = simulate(p0=p0_small, scenario=PartiallySynthetic(4, 6), trajectories="all", **kw)
    none = simulate(p0=p0_small, scenario=PartiallySynthetic(4, 6), trajectories="none", **kw)
    for metric in kept.metrics:
        mean, se = none.mean(metric)
        values = kept.trajectories[metric].values[:, 0, :].astype(float)
        np.testing.assert_allclose(mean, values.mean(axis=0), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(se, values.std(axis=0, ddof=1) / np.sqrt(300), rtol=1e-8,
                                   atol=1e-15)
    np.testing.assert_array_equal(none.data["entropy_final"].values,
                                  kept.trajectories["entropy"].values[:, :, -1])
