"""The count representation of the numpy backend (engine/numpy/counts.py) and its metrics.

Statistical checks use fixed seeds and thresholds from the null distribution: a chi-square
p-value above ALPHA divided by the number of checks in the test (Bonferroni), and two-sample
z-scores below the normal quantile of the same corrected level.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from modelcollapse import simulate
from modelcollapse.engine.numpy import kernels
from modelcollapse.engine.numpy.counts import (
    CountHistory,
    CountModel,
    CountSample,
    CountsFromP0,
    conditional_table,
    draw_counts,
)
from modelcollapse.engine.numpy.history import TokenModel
from modelcollapse.engine.numpy.kernels import count_metrics as count_metrics_table
from modelcollapse.engine.numpy.meter import ModelMeter
from modelcollapse.engine.numpy.sampling import RowStreams, count_tokens, rows_per_block
from modelcollapse.metrics import METRICS, count_metrics
from modelcollapse.scenarios import (
    Accumulate,
    Custom,
    FreshReal,
    FullySynthetic,
    MostRecent,
    PartiallySynthetic,
    RandomPool,
)

#: Family-wise false-alarm rate of each statistical test.
ALPHA = 1e-3
ROUTES = [pytest.param(True, id="compiled", marks=pytest.mark.skipif(
    not kernels.AVAILABLE, reason="numba is not installed")), pytest.param(False, id="numpy")]


def _streams(rows: int, entropy: int = 7, first_run: int = 0) -> RowStreams:
    return RowStreams(entropy, first_run // 1000, rows_per_block(rows, 1, first_run))


def _chi_square_pvalue(observed: np.ndarray, expected: np.ndarray) -> float:
    """Pearson's test, cells with expected counts below 5 pooled into one."""
    small = expected < 5
    obs = np.append(observed[~small], observed[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    return float(stats.chi2.sf(((obs - exp) ** 2 / exp).sum(), obs.size - 1))


def _multinomial_pvalue(draws: np.ndarray, size: int, p: np.ndarray) -> float:
    cells = [c for c in itertools.product(range(size + 1), repeat=p.size) if sum(c) == size]
    index = {c: i for i, c in enumerate(cells)}
    observed = np.bincount([index[tuple(row)] for row in draws], minlength=len(cells))
    expected = stats.multinomial.pmf(np.array(cells), size, p) * draws.shape[0]
    return _chi_square_pvalue(observed, expected)


# --- the law of one draw ------------------------------------------------------------------------
@pytest.mark.parametrize("compiled", ROUTES)
def test_one_draw_follows_the_multinomial_pmf(compiled):
    """k = 3, size 5: the counts drawn from a fitted model and from p(0), over many rows,
    against the multinomial pmf."""
    rows, size = 20_000, 5
    counts = np.tile([2, 0, 3, 5], (rows, 1))  # a dead token inside the support
    model = draw_counts(counts, 10, size, _streams(rows), compiled=compiled)
    assert (model.sum(axis=1) == size).all() and (model[:, 1] == 0).all()
    p0 = np.array([[0.2, 0.3, 0.5]])
    real = CountsFromP0(p0)(np.zeros(rows, np.int64), size, _streams(rows, 8),
                            compiled=compiled)
    assert _multinomial_pvalue(model[:, [0, 2, 3]], size, np.array([0.2, 0.3, 0.5])) > ALPHA / 2
    assert _multinomial_pvalue(real, size, p0[0]) > ALPHA / 2


#: (size, success probability): the compiled route's inversion (small mean, either side of
#: 1/2), BTRS (either side), both sides of the switch at mean 10, and a large n.
BINOMIAL_CASES = [(30, 0.1), (1000, 0.995), (99, 0.1), (100, 0.1), (200, 0.3), (10_000, 0.9),
                  (7, 0.5), (1_000_000, 0.4)]


@pytest.mark.parametrize("compiled", ROUTES)
def test_binomial_draws_follow_the_binomial_pmf(compiled):
    """Two tokens: the first token's count is Binomial(size, c / total) in every regime of
    the samplers."""
    rows, total = 100_000, 1000
    for seed, (size, p) in enumerate(BINOMIAL_CASES):
        c = round(p * total)
        counts = np.tile([c, total - c], (rows, 1))
        x = draw_counts(counts, total, size, _streams(rows, seed), compiled=compiled)[:, 0]
        low, high = int(x.min()), int(x.max())
        support = np.arange(low, high + 1)
        expected = stats.binom.pmf(support, size, c / total) * rows
        # the mass outside the range seen is one more (empty) cell
        observed = np.append(np.bincount(x - low), 0)
        expected = np.append(expected, rows - expected.sum())
        pvalue = _chi_square_pvalue(observed, expected)
        assert pvalue > ALPHA / len(BINOMIAL_CASES), (size, p, pvalue)


def test_p0_draws_follow_each_rows_context():
    p_live = np.array([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7]])
    table = conditional_table(p_live)
    assert table[0, 1] == 1.0 and table[0, 2] == 0.0 and table[1, 2] == 1.0
    rows = 4000
    context = np.tile([0, 1], rows // 2)
    for compiled in (True, False) if kernels.AVAILABLE else (False,):
        x = CountsFromP0(p_live)(context, 50, _streams(rows), compiled=compiled)
        assert (x.sum(axis=1) == 50).all() and (x[context == 0, 2] == 0).all()
        for c in (0, 1):
            mean = x[context == c].mean(axis=0)
            se = np.sqrt(50 * p_live[c] * (1 - p_live[c]) / (rows // 2))
            z = np.abs(mean - 50 * p_live[c]) / np.where(se > 0, se, 1)
            assert (z < stats.norm.isf(ALPHA / 12)).all()


# --- reproducibility ------------------------------------------------------------------------------
@pytest.mark.parametrize("compiled", ROUTES)
def test_draws_are_reproducible_and_independent_of_chunking(compiled):
    rng = np.random.default_rng(0)
    counts = rng.multinomial(40, np.full(6, 1 / 6), size=3000)
    whole = draw_counts(counts, 40, 100, _streams(3000), compiled=compiled)
    again = draw_counts(counts, 40, 100, _streams(3000), compiled=compiled)
    np.testing.assert_array_equal(whole, again)
    parts = [draw_counts(counts[a:b], 40, 100, _streams(b - a, first_run=a), compiled=compiled)
             for a, b in ((0, 1000), (1000, 3000))]
    np.testing.assert_array_equal(whole, np.concatenate(parts))
    other = draw_counts(counts, 40, 100, _streams(3000, entropy=8), compiled=compiled)
    assert not np.array_equal(whole, other)


def test_simulate_is_reproducible_and_independent_of_chunking():
    p0 = np.array([0.5, 0.3, 0.2])
    run = dict(p0=p0, scenario=FullySynthetic(20), runs=3000, generations=40, seed=3,
               representation="counts", trajectories="none", progress=False)
    one, again, chunked = simulate(**run), simulate(**run), simulate(**run, chunk_runs=1000)
    assert one.data.attrs["representation"] == "counts"
    for other in (again, chunked):
        np.testing.assert_array_equal(one.data["collapse_time"], other.data["collapse_time"])
        np.testing.assert_array_equal(one.data["absorbed_token"], other.data["absorbed_token"])
        np.testing.assert_allclose(one.mean("sigma")[0], other.mean("sigma")[0], rtol=1e-12)


# --- the history ----------------------------------------------------------------------------------
def _history(scenario, rows=6, k=4):
    p_live = np.full((1, k), 1 / k)
    return CountHistory(scenario, p_live, np.zeros(rows, np.int64), _streams(rows), 10)


def test_history_fits_stores_and_keeps_rows():
    history = _history(MostRecent(12, 2))
    sample = history.draw(0, 12)
    assert isinstance(sample, CountSample) and sample.size == 12
    first = history.model(sample)
    assert isinstance(first, CountModel) and first.tokens is None and first.base is None
    assert first.size == 12 and (first.counts.sum(axis=1) == 12).all()
    for m in (1, 2, 3):
        history.store(m, first)
    assert sorted(history._models) == [2, 3]  # lag 2
    joined = history.concat([history.draw(2, 5), history.draw(3, 7)])
    assert joined.size == 12 and (joined.counts.sum(axis=1) == 12).all()
    grown = history.model(joined, base=first)
    np.testing.assert_array_equal(grown.counts, first.counts + joined.counts)
    assert grown.size == 24

    mask = np.array([True, False, True, True, False, True])
    history.keep(mask, mask)
    assert history.row_context.size == 4 and history.stored(3).counts.shape == (4, 4)
    assert history.draw(3, 9).counts.shape == (4, 4)
    np.testing.assert_array_equal(first.keep(mask).counts, first.counts[mask])

    unbounded = _history(Custom(lambda m: np.eye(m, dtype=int)[-1] * 3))
    for m in (1, 2, 3):
        unbounded.store(m, first)
    assert sorted(unbounded._models) == [1, 2, 3]  # lag None keeps every model


def test_corpus_is_drawn_once_and_token_order_is_refused():
    history = _history(PartiallySynthetic(5, 9))
    corpus = history.corpus_model()
    assert history.corpus_model() is corpus and corpus.size == 9
    model = history.model(history.draw(0, 5), base=corpus)
    assert model.size == 14
    for call in (history.corpus, lambda: history.draw_pooled(2, 3),
                 lambda: history.publish(1, None), lambda: history.subsample_published(3)):
        with pytest.raises(ValueError, match="representation='tokens'"):
            call()
    with pytest.raises(TypeError, match="CountSample"):
        history.model(np.zeros((6, 5), dtype=np.int32))
    with pytest.raises(ValueError, match="order of the tokens"):
        simulate(p0=np.array([0.5, 0.5]), scenario=RandomPool(5), runs=10, generations=3,
                 seed=1, representation="counts", progress=False)


# --- metrics ----------------------------------------------------------------------------------
def _token_and_count_models(rng, rows=300, k=7, size=40):
    p = rng.dirichlet(np.full(k, 0.3), size=rows)
    tokens = np.stack([rng.choice(k, size=size, p=row) for row in p]).astype(np.int32)
    tokens[:5] = tokens[:5, :1]  # Dirac masses
    tokens[5:9, :] = np.arange(size) % 2  # two tokens
    return TokenModel(k, tokens), CountModel(count_tokens(tokens, k), size, k)


@pytest.mark.parametrize("compiled", ROUTES)
def test_count_models_measure_as_token_models(compiled):
    rng = np.random.default_rng(4)
    first_tokens, first_counts = _token_and_count_models(rng)
    tokens, counts = _token_and_count_models(rng)
    true = np.broadcast_to(rng.dirichlet(np.ones(7)), (300, 7))
    by_tokens = ModelMeter(true, METRICS, compiled=compiled)
    by_counts = ModelMeter(true, METRICS, compiled=compiled)
    by_tokens(first_tokens)
    by_counts(first_counts)  # p(1), taken from a count model
    np.testing.assert_array_equal(by_counts.first_counts, first_counts.counts)
    for a, b in ((by_tokens(tokens), by_counts(tokens)), (by_tokens(tokens), by_counts(counts))):
        (values_a, dirac_a), (values_b, dirac_b) = a, b
        np.testing.assert_array_equal(dirac_a, dirac_b)
        assert (dirac_b[:5] >= 0).all() and (dirac_b[5:9] == -1).all()
        for name in METRICS:
            np.testing.assert_allclose(values_b[name], values_a[name], rtol=0, atol=1e-12,
                                       err_msg=name)


def test_compiled_count_metrics_equal_count_metrics():
    if not kernels.AVAILABLE:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(5)
    for total in (37, 70_000):  # c log c looked up, and computed past the table
        counts = rng.multinomial(total, rng.dirichlet(np.full(9, 0.2), size=200))
        counts[0] = 0
        counts[0, 3] = total
        first = rng.multinomial(50, np.full(9, 1 / 9), size=200)
        true = rng.dirichlet(np.ones(9), size=200)
        for names in (METRICS, ("sigma", "collapsed"), ("entropy", "l1_to_first", "collapsed")):
            table, dirac = count_metrics_table(counts, total, first, np.arange(200), 50, true,
                                               names)
            expected = count_metrics(counts, total, first / 50, true, names)
            for i, name in enumerate(kernels.KERNEL_COLUMNS):
                if name in names:
                    np.testing.assert_allclose(table[:, i], expected[name], rtol=0,
                                               atol=1e-12, err_msg=name)
            np.testing.assert_array_equal(dirac >= 0, expected["collapsed"])
            assert dirac[0] == 3


# --- the count route against the token route, through the loop -------------------------------
#: Every scenario whose training sets need no token order, on a case where runs collapse.
LOOP_SCENARIOS = {
    "fully-synthetic": FullySynthetic(12),
    "partially-synthetic": PartiallySynthetic(12, 6),
    "most-recent": MostRecent(12, 3),
    "accumulate": Accumulate(6, 6),
    "fresh-real": FreshReal(10, 2),
}
LOOP_P0 = np.array([0.5, 0.3, 0.2, 0.0])
LOOP_RUNS, LOOP_GENERATIONS = 3000, 25


def _restricted_mean(times: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of min(T, G + 1): censored runs count as G + 1."""
    t = np.nan_to_num(times.ravel(), nan=LOOP_GENERATIONS + 1)
    return float(t.mean()), float(t.std(ddof=1) / np.sqrt(t.size))


def test_count_route_matches_token_route_in_law():
    """Per-generation means of sigma and the (restricted) mean collapse time of the two
    representations agree within their standard errors, for every such scenario."""
    comparisons = len(LOOP_SCENARIOS) * (LOOP_GENERATIONS + 1)
    z_max = stats.norm.isf(ALPHA / 2 / comparisons)
    for seed, (name, scenario) in enumerate(LOOP_SCENARIOS.items()):
        assert not scenario.needs_token_order
        results = [simulate(p0=LOOP_P0, scenario=scenario, runs=LOOP_RUNS,
                            generations=LOOP_GENERATIONS, seed=100 + 2 * seed + i,
                            representation=rep, metrics=("sigma",), trajectories="none",
                            progress=False)
                   for i, rep in enumerate(("counts", "tokens"))]
        assert [r.data.attrs["representation"] for r in results] == ["counts", "tokens"]
        (m1, se1), (m2, se2) = (r.mean("sigma") for r in results)
        spread = np.sqrt(se1**2 + se2**2)[1:]  # generation 0 is p(0) itself for both
        z = np.abs(m1 - m2)[1:] / np.where(spread > 0, spread, np.inf)
        assert (z < z_max).all(), (name, z.max())
        (t1, e1), (t2, e2) = (_restricted_mean(r.data["collapse_time"].values)
                              for r in results)
        if e1 + e2 > 0:
            assert abs(t1 - t2) / np.hypot(e1, e2) < z_max, (name, t1, t2)


def test_count_route_runs_without_numba():
    """Without numba the draws are Generator.multinomial calls (other numbers, the same
    law): the per-generation means of sigma agree with the compiled route's."""
    if not kernels.AVAILABLE:
        pytest.skip("numba is not installed: every other test ran without it")
    code = (
        "import sys, json; sys.modules['numba'] = None\n"
        "import numpy as np\n"
        "from modelcollapse import simulate\n"
        "from modelcollapse.engine.numpy import kernels\n"
        "from modelcollapse.scenarios import FullySynthetic\n"
        "assert not kernels.AVAILABLE\n"
        "r = simulate(p0=np.array([0.5, 0.3, 0.2]), scenario=FullySynthetic(12), runs=3000,\n"
        "             generations=20, seed=1, representation='counts', metrics=('sigma',),\n"
        "             trajectories='none', progress=False)\n"
        "print(json.dumps([r.data.attrs['route'], *map(list, r.mean('sigma'))]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    route, m1, se1 = json.loads(done.stdout.splitlines()[-1])
    assert route == "numpy"
    m2, se2 = simulate(p0=np.array([0.5, 0.3, 0.2]), scenario=FullySynthetic(12), runs=3000,
                       generations=20, seed=2, representation="counts", metrics=("sigma",),
                       trajectories="none", progress=False).mean("sigma")
    spread = np.hypot(se1, se2)[1:]
    z = np.abs(np.array(m1) - m2)[1:] / spread
    assert (z < stats.norm.isf(ALPHA / 2 / 20)).all()
