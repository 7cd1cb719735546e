"""Common checks over every registered scenario, and the engine against a slow reference."""

import numpy as np
import pytest
from scipy import stats

from modelcollapse import simulate
from modelcollapse.engine.numpy.history import TokenHistory
from modelcollapse.engine.numpy.sampling import RowStreams
from modelcollapse.rng import RUN_BLOCK
from modelcollapse.scenarios import (
    Accumulate,
    AccumulateSubsample,
    Custom,
    FreshReal,
    FullySynthetic,
    MostRecent,
    PartiallySynthetic,
    RandomPool,
)
from result_tables import full

ALL = [
    FullySynthetic(6), PartiallySynthetic(6, 20), MostRecent(6, 3), MostRecent(6, 2, "literal"),
    RandomPool(6), Accumulate(6, 20), AccumulateSubsample(6, 20), FreshReal(6, 20),
    Custom(lambda m: np.r_[3, np.zeros(m - 2, int), 3][:m] if m > 1 else np.array([6])),
]
IDS = [s.name + str(i) for i, s in enumerate(ALL)]


@pytest.mark.parametrize("scenario", ALL, ids=IDS)
def test_same_seed_same_result_and_chunking_invariance(scenario, p0_small):
    runs = 2 * RUN_BLOCK + 37
    a = simulate(p0=p0_small, scenario=scenario, runs=runs, generations=15, seed=3)
    b = simulate(p0=p0_small, scenario=scenario, runs=runs, generations=15, seed=3,
                 chunk_runs=RUN_BLOCK)
    c = simulate(p0=p0_small, scenario=scenario, runs=runs, generations=15, seed=4)
    for name in ("sigma", "l1_to_first", "entropy", "collapse_time", "absorbed_token"):
        assert np.array_equal(full(a)[name].values, full(b)[name].values, equal_nan=True), name
    assert not np.array_equal(full(a)["sigma"].values, full(c)["sigma"].values)


@pytest.mark.parametrize("scenario", ALL, ids=IDS)
def test_metrics_stay_on_the_simplex(scenario, p0_small):
    res = simulate(p0=p0_small, scenario=scenario, runs=300, generations=25, seed=5)
    ds = full(res)
    sigma, sup, support = ds["sigma"].values, ds["sup"].values, ds["support"].values
    assert np.all((sigma >= 1 / 5 - 1e-12) & (sigma <= 1 + 1e-12))
    assert np.all((sup >= sigma - 1e-12) & (sup <= np.sqrt(sigma) + 1e-12))  # σ ≤ ‖p‖∞ ≤ ‖p‖₂
    assert np.all((support >= 1) & (support <= 5))
    assert np.all((ds["entropy"].values >= -1e-12) & (ds["entropy"].values <= np.log(5) + 1e-12))
    for name in ("l1_to_first", "l1_to_true"):
        assert np.all((ds[name].values >= 0) & (ds[name].values <= 2 + 1e-12))
    assert np.array_equal(ds["collapsed"].values, np.isclose(sup, 1.0))
    assert ds["l1_to_first"].values[:, :, 1].max() == 0.0


def test_collapse_is_absorbing_in_the_fully_synthetic_loop(p0_small):
    res = simulate(p0=p0_small, scenario=FullySynthetic(5), runs=400, generations=60, seed=6,
                   stop_when_absorbed=False)
    ds = full(res)
    collapsed = ds["collapsed"].values[:, 0, :]
    T = ds["collapse_time"].values[:, 0]
    for run in range(400):
        if np.isnan(T[run]):
            assert not collapsed[run].any()
            continue
        t = int(T[run])
        assert not collapsed[run, :t].any() and collapsed[run, t:].all()
        assert np.all(ds["sigma"].values[run, 0, t:] == 1.0)
        # The same Dirac mass forever: its distance to p(1) never moves again.
        assert np.unique(ds["l1_to_first"].values[run, 0, t:]).size == 1
    assert np.array_equal(T, ds["absorption_time"].values[:, 0], equal_nan=True)


def test_stopping_early_fills_exactly_what_running_on_would_give(p0_small):
    # Stopped runs leave the batch; the filled-in metrics must equal those of a Dirac mass.
    res = simulate(p0=p0_small, scenario=FullySynthetic(5), runs=300, generations=80, seed=7)
    ds = full(res)
    for run in range(300):
        t = ds["collapse_time"].values[run, 0]
        token = ds["absorbed_token"].values[run, 0]
        if np.isnan(t):
            continue
        tail = slice(int(t), None)
        assert np.all(ds["support"].values[run, 0, tail] == 1)
        dirac_distance = 2 * (1 - ds["p0"].values[0, token])
        assert np.allclose(ds["l1_to_true"].values[run, 0, tail], dirac_distance)


def test_window_of_one_equals_fully_synthetic_run_for_run(p0_fig6):
    a = simulate(p0=p0_fig6, scenario=FullySynthetic(10), runs=500, generations=100, seed=8)
    b = simulate(p0=p0_fig6, scenario=MostRecent(10, 1), runs=500, generations=100, seed=8)
    for name in ("sigma", "l1_to_first", "collapse_time", "absorption_time", "absorbed_token"):
        assert np.array_equal(full(a)[name].values, full(b)[name].values, equal_nan=True)


def test_window_absorption_is_K_equal_dirac_models_in_a_row(p0_small):
    K = 3
    res = simulate(p0=p0_small, scenario=MostRecent(4, K), runs=500, generations=400, seed=9,
                   stop_when_absorbed=False)
    ds = full(res)
    collapsed = ds["collapsed"].values[:, 0, :]
    for run in range(500):
        a = ds["absorption_time"].values[run, 0]
        if np.isnan(a):
            continue
        a = int(a)
        assert collapsed[run, a: a + K].all()
        assert ds["collapse_time"].values[run, 0] <= a
        assert collapsed[run, a:].all()  # absorbed: a Dirac mass from then on


def test_random_pool_draws_each_source_generation_uniformly():
    # Model t (t ≥ 1) is a Dirac mass on token t and p(0) one on token 0, so a drawn token
    # names the generation it came from.
    m, n, rows = 6, 50, 400
    p_live = np.zeros((1, m))
    p_live[0, 0] = 1.0
    streams = RowStreams(123, 0, [rows])
    history = TokenHistory(RandomPool(n), p_live, np.zeros(rows, dtype=np.int64), streams, m)
    for t in range(1, m):
        history.store(t, history.model(np.full((rows, n), t)))
    sources = history.draw_pooled(m, n).ravel()
    observed = np.bincount(sources, minlength=m)
    assert stats.chisquare(observed).pvalue > 1e-3


def _reference_window_collapse_times(p0, n, K, runs, generations, seed):
    """Slow, obviously correct most-recent-K loop (even split) on probability vectors."""
    rng = np.random.default_rng(seed)
    scenario = MostRecent(n, K)
    times = np.full(runs, np.nan)
    for r in range(runs):
        models = [p0]
        for m in range(1, generations + 1):
            counts = scenario.counts(m)
            data = sum(rng.multinomial(c, models[t]) for t, c in enumerate(counts) if c)
            models.append(data / data.sum())
            if models[-1].max() == 1.0:
                times[r] = m
                break
    return times


def test_window_engine_agrees_with_the_slow_reference(p0_small):
    ref = _reference_window_collapse_times(p0_small, 6, 3, 1500, 2000, seed=1)
    res = simulate(p0=p0_small, scenario=MostRecent(6, 3), runs=3000, generations=2000, seed=2,
                   metrics=("sigma",))
    fast = full(res)["collapse_time"].values.ravel()
    assert not np.isnan(ref).any() and not np.isnan(fast).any()
    se = np.sqrt(ref.var(ddof=1) / ref.size + fast.var(ddof=1) / fast.size)
    assert abs(ref.mean() - fast.mean()) / se < 4
    assert stats.ks_2samp(ref, fast).pvalue > 1e-3


def test_multi_context_rows_are_independent_chains():
    from modelcollapse.distributions import random_context_distributions

    p0 = random_context_distributions(9, 3, seed=1)
    res = simulate(p0=p0, scenario=FullySynthetic(50), runs=200, generations=30, seed=3)
    assert full(res)["sigma"].shape == (200, 9, 31)
    sigma0 = np.sum(p0**2, axis=1)
    assert np.allclose(full(res)["sigma"].values[0, :, 0], sigma0)
    mean = full(res)["sigma"].values[:, :, 10].mean(axis=0)
    se = full(res)["sigma"].values[:, :, 10].std(axis=0, ddof=1) / np.sqrt(200)
    expected = 1 - (1 - 1 / 50) ** 10 * (1 - sigma0)  # eq. 6, per context
    assert np.all(np.abs(mean - expected) < 4 * se + 1e-12)


@pytest.mark.parametrize("kwargs, message", [
    ({"runs": 0}, r"runs\s+Input should be greater than or equal to 1"),
    ({"generations": 0}, r"generations\s+Input should be greater than or equal to 1"),
    ({"runs": 2500, "chunk_runs": 700}, "must be a multiple of 1000"),
    ({"metrics": ("sigma", "nope")}, "'metrics' parameter of simulate must be among"),
    ({"backend": "jax"}, r"backend\s+Input should be 'numpy' or 'torch'"),
])
def test_loop_rejects_bad_arguments(kwargs, message, p0_small):
    args = {"runs": 10, "generations": 5, "seed": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        simulate(p0=p0_small, scenario=FullySynthetic(5), **args)


@pytest.mark.parametrize("p0, message", [
    ([0.5, 0.6], "must sum to 1"), ([1.2, -0.2], "must be non-negative"),
    ([np.nan, 1.0], "finite"), ([[[1.0]]], "must be a non-empty vector"),
])
def test_loop_rejects_invalid_p0(p0, message):
    with pytest.raises(ValueError, match=message):
        simulate(p0=p0, scenario=FullySynthetic(5), runs=2, generations=2, seed=1)


@pytest.mark.parametrize("draws_per_row, k", [(3, 12), (40, 12), (3, 60)])
def test_delta_metrics_equal_full_recount(draws_per_row, k):
    # Both ways of counting repeated draws: over the vocabulary, and within sorted rows.
    from modelcollapse.metrics import METRICS, DeltaMetrics, count_metrics

    rng = np.random.default_rng(0)
    rows, N = 50, 30
    base = rng.multinomial(N, np.full(k, 1 / k), size=rows)
    base[0] = 0
    base[0, 3] = N  # a Dirac corpus: draws of the same token give a collapsed model
    draws = rng.integers(0, k, size=(rows, draws_per_row))
    draws[0] = 3
    total = N + draws_per_row
    first = base / N
    true = rng.dirichlet(np.ones(k), size=rows)
    counts = base + np.array([np.bincount(d, minlength=k) for d in draws])
    want = count_metrics(counts, total, first, true, METRICS)
    got, dirac = DeltaMetrics(base, total, first, true, METRICS)(draws)
    for name in METRICS:
        assert np.allclose(got[name], want[name], rtol=0, atol=1e-12), name
    assert np.array_equal(dirac, np.where(want["collapsed"], counts.argmax(1), -1))
    assert dirac[0] == 3


@pytest.mark.parametrize("scenario", ALL, ids=IDS)
def test_compiled_and_numpy_metric_routes_agree(scenario, p0_small):
    from modelcollapse.engine.numpy import kernels

    if not kernels.AVAILABLE:
        pytest.skip("numba is not installed")
    runs = RUN_BLOCK + 20
    a = simulate(p0=p0_small, scenario=scenario, runs=runs, generations=20, seed=6,
                 compiled=True)
    b = simulate(p0=p0_small, scenario=scenario, runs=runs, generations=20, seed=6,
                 compiled=False)
    for name in ("collapse_time", "absorption_time", "absorbed_token", "collapsed", "support"):
        assert np.array_equal(full(a)[name].values, full(b)[name].values, equal_nan=True), name
    for name in ("sigma", "sup", "l1_to_first", "l1_to_true", "entropy"):
        assert np.allclose(full(a)[name].values, full(b)[name].values, rtol=0, atol=1e-12), name
    assert np.all(full(a)["l1_to_first"].values[:, :, 1] == 0.0)
