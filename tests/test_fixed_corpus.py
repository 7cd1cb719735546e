"""The compiled partially synthetic route (engine/numpy/fixed_corpus.py) and the draws it
shares with the generic loop: positions, inverse-CDF draws from p(0), thread count."""

import numpy as np
import pytest
from scipy import stats

from modelcollapse import simulate
from modelcollapse._system import THREADS_VARIABLE, loop_threads
from modelcollapse.engine.numpy import kernels, sampling
from modelcollapse.metrics import METRICS
from modelcollapse.rng import RUN_BLOCK, block_generator
from modelcollapse.scenarios import PartiallySynthetic
from result_tables import assert_same_result, full

needs_numba = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed")
FLOAT_METRICS = ("sigma", "sup", "l1_to_first", "l1_to_true", "entropy")
EXACT = ("collapsed", "support", "collapse_time", "absorption_time", "absorbed_token")


def assert_same(a, b) -> None:
    """Same draws by two metric routes: float metrics agree to rounding, integer facts exactly,
    and so do the per-generation means."""
    ta, tb = full(a), full(b)
    for name in METRICS:
        if name in FLOAT_METRICS and name in ta:
            assert np.allclose(ta[name].values, tb[name].values, rtol=0, atol=1e-12,
                               equal_nan=True), name
    for name in EXACT:
        if name in ta:
            assert np.array_equal(ta[name].values, tb[name].values, equal_nan=True), name
    for name in a.metrics:
        assert np.allclose(a.mean(name)[0], b.mean(name)[0], rtol=1e-12, atol=1e-12), name


@pytest.fixture
def p0_with_dirac_context() -> np.ndarray:
    """Three contexts: ordinary, concentrated, and a Dirac mass (its runs settle at m = 1)."""
    p0 = np.zeros((3, 9))
    p0[0, [0, 2, 3, 5, 8]] = [0.4, 0.3, 0.1, 0.1, 0.1]
    p0[1, [1, 4]] = [0.9, 0.1]
    p0[2, 6] = 1.0
    return p0


@needs_numba
@pytest.mark.parametrize("stop", [True, False])
@pytest.mark.parametrize("metrics", [None, ("sigma", "l1_to_first"), ("support", "sup")])
def test_compiled_route_equals_numpy_route(p0_with_dirac_context, stop, metrics):
    # The numpy route fits every generation from counts; the compiled one runs rows through
    # all generations. Same draws, so same models: metrics to rounding, integer facts exactly.
    scenario = PartiallySynthetic(4, 6)
    kwargs = dict(runs=RUN_BLOCK + 13, generations=25, seed=11, metrics=metrics,
                  stop_when_absorbed=stop)
    a = simulate(p0=p0_with_dirac_context, scenario=scenario, compiled=True, **kwargs)
    b = simulate(p0=p0_with_dirac_context, scenario=scenario, compiled=False, **kwargs)
    assert (a.data.attrs["route"], b.data.attrs["route"]) == ("fixed-corpus", "numpy")
    assert_same(a, b)
    # The concentrated context's corpus is sometimes all one token: its models then collapse.
    assert np.isfinite(full(a)["collapse_time"].values[:, 1]).any()
    assert np.all(full(a)["collapse_time"].values[:, 2] == 1)


@needs_numba
@pytest.mark.parametrize("generations", [1, 2, 3])
def test_compiled_route_at_the_first_generations(p0_small, generations):
    scenario = PartiallySynthetic(3, 5)
    a = simulate(p0=p0_small, scenario=scenario, runs=50, generations=generations, seed=2,
                 compiled=True)
    b = simulate(p0=p0_small, scenario=scenario, runs=50, generations=generations, seed=2,
                 compiled=False)
    assert_same(a, b)


@needs_numba
def test_compiled_route_is_independent_of_threads_and_chunks(p0_fig6):
    scenario = PartiallySynthetic(10, 100)
    runs = 3 * RUN_BLOCK + 5
    one = simulate(p0=p0_fig6, scenario=scenario, runs=runs, generations=40, seed=5, threads=1)
    two = simulate(p0=p0_fig6, scenario=scenario, runs=runs, generations=40, seed=5, threads=2)
    chunked = simulate(p0=p0_fig6, scenario=scenario, runs=runs, generations=40, seed=5,
                       threads=2, chunk_runs=2 * RUN_BLOCK)
    for other in (two, chunked):
        assert_same_result(one, other)


@needs_numba
def test_many_generations_span_several_draw_calls(p0_small, monkeypatch):
    # Positions are drawn a slab of generations at a time; the slab size must not matter.
    from modelcollapse.engine.numpy import fixed_corpus

    scenario = PartiallySynthetic(3, 5)
    a = simulate(p0=p0_small, scenario=scenario, runs=40, generations=30, seed=8)
    monkeypatch.setattr(fixed_corpus, "DRAWS_PER_CALL", 40 * 3 * 4)
    b = simulate(p0=p0_small, scenario=scenario, runs=40, generations=30, seed=8)
    assert a.data.attrs["route"] == b.data.attrs["route"] == "fixed-corpus"
    assert_same(a, b)


@pytest.mark.parametrize("high", [7, 110, 1 << 16, (1 << 16) + 1])
def test_positions_are_uniform(high):
    # Chi-square over [0, high) folded into 20 equal-probability cells (high divisible by 20
    # is not needed: the cell of x is ⌊20 x / high⌋ with its exact probability).
    draws = sampling.draw_positions(block_generator(3, 0), high, (200_000,)).astype(np.int64)
    assert draws.min() >= 0 and draws.max() < high
    cells = min(high, 20)
    observed = np.bincount(draws * cells // high, minlength=cells)
    edges = -(-np.arange(cells + 1) * high // cells)  # first x of each cell
    expected = np.diff(edges) / high * draws.size
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_row_streams_positions_per_block():
    streams = sampling.RowStreams(1, 0, [3, 2])
    for high in (3, 70_000):  # uint16 and int64 draws
        draws = streams.integers(high, 1000)
        assert draws.dtype == np.int64 and draws.shape == (5, 1000)
        assert draws.min() >= 0 and draws.max() < high
    assert draws.max() > 1 << 16


@needs_numba
def test_inverse_cdf_kernel_equals_numpy_and_clamps_rounding():
    rng = np.random.default_rng(0)
    p_live = rng.dirichlet(np.ones(7), size=3)
    p_live[1, 5:] = 0.0  # context 1 has a shorter support (padded coordinates)
    p_live[1] /= p_live[1].sum()
    sampler = sampling.InverseCDF(p_live)
    table, last = sampler.table, sampler.last
    assert list(last) == [6, 4, 6] and sampler.guide.shape == (3, 8)
    row_context = np.tile(np.arange(3), 200)
    u = rng.random((600, 40))
    u[:, 0] = 0.0
    u[:, 1] = np.nextafter(1.0, 0.0)  # u + context rounds up to context + 1 for context ≥ 1
    u[:, 2] = (table.reshape(3, 7) - np.arange(3)[:, None])[row_context, 2]  # on a CDF step
    u[:, 3:11] = np.arange(8) / 8  # on the guide's bucket edges
    got = sampler(u, row_context, compiled=True)
    flat = np.searchsorted(table, u + row_context[:, None], side="right")
    want = np.minimum(flat - row_context[:, None] * 7, last[row_context][:, None])
    assert np.array_equal(got, want)
    assert np.array_equal(sampler(u, row_context, compiled=False), want)
    assert np.all(p_live[row_context[:, None], got] > 0)  # never a token p(0) cannot produce
    assert np.array_equal(got[:, 1], last[row_context])


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=needs_numba)])
def test_draws_from_p0_follow_p0(p0_with_dirac_context, compiled):
    p_live = p0_with_dirac_context  # zeros inside the support too: never drawn
    sampler = sampling.InverseCDF(p_live)
    u = sampling.RowStreams(4, 0, [3]).random(50_000)
    draws = sampler(u, np.arange(3), compiled=compiled)
    for context in (0, 1):
        support = np.flatnonzero(p_live[context])
        observed = np.bincount(draws[context], minlength=9)
        assert observed.sum() == observed[support].sum()
        expected = p_live[context, support] * draws.shape[1]
        assert stats.chisquare(observed[support], expected).pvalue > 1e-3
    assert np.all(draws[2] == 6)


def test_loop_threads(monkeypatch):
    monkeypatch.delenv(THREADS_VARIABLE, raising=False)
    assert loop_threads(3) == 3
    assert loop_threads(None) >= 1
    monkeypatch.setenv(THREADS_VARIABLE, "1")
    assert loop_threads(None) == 1
    monkeypatch.setenv(THREADS_VARIABLE, "two")
    with pytest.raises(ValueError, match="MODELCOLLAPSE_THREADS environment variable"):
        loop_threads(None)


def test_simulate_rejects_bad_threads(p0_small):
    with pytest.raises(ValueError, match="'threads' parameter"):
        simulate(p0=p0_small, scenario=PartiallySynthetic(3, 5), runs=5, generations=3,
                 threads=0)


@needs_numba
def test_an_error_in_one_block_reaches_the_caller(p0_small, monkeypatch):
    from modelcollapse.engine.numpy import fixed_corpus

    def broken(*args, **kwargs):
        raise RuntimeError("block failed")

    monkeypatch.setattr(fixed_corpus.kernels, "fixed_corpus_loop", broken)
    with pytest.raises(RuntimeError, match="block failed"):
        simulate(p0=p0_small, scenario=PartiallySynthetic(3, 5), runs=3 * RUN_BLOCK,
                 generations=4, seed=1, threads=2)
