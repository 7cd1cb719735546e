"""The torch backend against theory, against the numpy engine, and against itself.

Theory checks (Theorem 1 eq. 6, Theorem 2 eq. 9, Proposition 1) run on every backend with
tolerances |z| < 4 from Monte Carlo standard errors; numpy and torch are compared by
two-sample tests (chi-square on binned values, Kolmogorov–Smirnov) at p > 1e-3; torch is
reproducible and independent of chunking. CUDA variants are marked ``cuda`` and skipped
without a device. The formulas are written here again from the paper, independently of
modelcollapse.theory.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

torch = pytest.importorskip("torch")

import modelcollapse as mc  # noqa: E402
from modelcollapse.engine import plan as engine_plan  # noqa: E402
from modelcollapse.engine.torch.draws import BinomialTree  # noqa: E402
from modelcollapse.engine.torch.metrics import (  # noqa: E402
    CountScratch,
    Truth,
    dense_metrics,
    sparse_metrics,
)
from modelcollapse.engine.torch.streams import TorchRowStreams  # noqa: E402
from modelcollapse.metrics import count_metrics, resolve_metrics  # noqa: E402
from modelcollapse.scenarios import (  # noqa: E402
    SCENARIOS,
    Accumulate,
    AccumulateSubsample,
    Custom,
    FreshReal,
    FullySynthetic,
    MostRecent,
    PartiallySynthetic,
    RandomPool,
)
from modelcollapse.theory.paper import expected_sigma_fully, expected_sigma_partial  # noqa: E402
from result_tables import full  # noqa: E402

Z_MAX = 4.0
P_MIN = 1e-3
CUDA = torch.cuda.is_available()
cuda = pytest.mark.cuda
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
BACKENDS = [("numpy", "cpu"), ("torch", "cpu"),
            pytest.param(("torch", "cuda"), marks=[cuda, needs_cuda])]
DEVICES = ["cpu", pytest.param("cuda", marks=[cuda, needs_cuda])]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: the checks are small, and thread start-up dominates them."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def simulate(p0, scenario, backend_device, *, n_runs, n_generations, representation="auto",
             metrics=None, **kw):
    backend, device = backend_device
    return mc.simulate(p0=p0, scenario=scenario, runs=n_runs, generations=n_generations,
                       backend=backend, device=device, metrics=metrics,
                       representation=representation, **kw)


def S_fully(m, n, S0):
    """Theorem 1, eq. 6 (checked against first principles in tests/theory)."""
    return float(expected_sigma_fully(S0, n, m))


def S_partial(m, n, N, S0):
    """Theorem 2, eq. 9 with its sign corrected (see tests/test_loop_theory.py)."""
    return float(expected_sigma_partial(S0, n, N, m))


def two_sample_chi2(a: np.ndarray, b: np.ndarray, bins: int = 12) -> float:
    """p-value of a chi-square test that ``a`` and ``b`` come from one distribution, on bins
    at the pooled quantiles (discrete values: ties stay in one bin, rounding aside)."""
    a, b = np.round(a, 9), np.round(b, 9)
    pooled = np.concatenate([a, b])
    edges = np.unique(np.quantile(pooled, np.linspace(0, 1, bins + 1)))
    edges[-1] = np.inf
    table = np.array([np.histogram(x, np.concatenate([[-np.inf], edges[1:]]))[0]
                      for x in (a, b)])
    table = table[:, table.sum(axis=0) > 0]
    return stats.chi2_contingency(table)[1]


# --- theory, on every backend ----------------------------------------------------------------

@pytest.mark.parametrize("backend_device", BACKENDS)
def test_theorem1_eq6_sigma(p0_fig6, backend_device):
    n = 20
    res = simulate(p0_fig6, FullySynthetic(n), backend_device, n_runs=3000, n_generations=30,
                   seed=21, metrics=("sigma",))
    mean, se = res.mean("sigma")
    for m in (1, 2, 5, 10, 20, 30):
        z = (mean[m] - S_fully(m, n, 0.1)) / se[m]
        assert abs(z) < Z_MAX, (m, mean[m], S_fully(m, n, 0.1), z)


@pytest.mark.parametrize("backend_device", BACKENDS)
def test_theorem2_eq9_sigma(p0_fig6, backend_device):
    for n, N in ((10, 100), (100, 20)):
        res = simulate(p0_fig6, PartiallySynthetic(n, N), backend_device, n_runs=2000,
                       n_generations=20, seed=22, metrics=("sigma",))
        mean, se = res.mean("sigma")
        for m in (1, 2, 3, 10, 20):
            z = (mean[m] - S_partial(m, n, N, 0.1)) / se[m]
            assert abs(z) < Z_MAX, (n, N, m, mean[m], S_partial(m, n, N, 0.1), z)


@pytest.mark.parametrize("mode", ["tokens", "counts"])
def test_theory_in_both_representations(p0_small, mode):
    """n ≫ support: the binomial-tree draws (counts) and the gathers (tokens) both give
    eq. 6 and eq. 9."""
    S0 = float(np.sum(p0_small ** 2))
    n = 64
    res = simulate(p0_small, FullySynthetic(n), ("torch", "cpu"), representation=mode, n_runs=3000,
                   n_generations=40, seed=23, metrics=("sigma",))
    assert res.data.attrs["representation"] == mode
    mean, se = res.mean("sigma")
    for m in (1, 5, 20, 40):
        assert abs((mean[m] - S_fully(m, n, S0)) / se[m]) < Z_MAX, (m, mean[m])
    res = simulate(p0_small, PartiallySynthetic(n, 40), ("torch", "cpu"), representation=mode,
                   n_runs=3000, n_generations=10, seed=24, metrics=("sigma",))
    mean, se = res.mean("sigma")
    for m in (1, 2, 10):
        assert abs((mean[m] - S_partial(m, n, 40, S0)) / se[m]) < Z_MAX, (m, mean[m])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["tokens", "counts"])
def test_proposition1_absorbed_token(p0_small, mode, device):
    """P(p(m) → δ_i) = p_i: chi-square goodness of fit of the absorbed tokens."""
    res = simulate(p0_small, FullySynthetic(4), ("torch", device), representation=mode, n_runs=4000,
                   n_generations=400, seed=25, metrics=("sigma",))
    tokens = full(res)["absorbed_token"].values.ravel()
    assert np.all(tokens >= 0)
    support = np.flatnonzero(p0_small)
    observed = np.array([np.sum(tokens == i) for i in support])
    assert observed.sum() == tokens.size
    assert stats.chisquare(observed, p0_small[support] * tokens.size).pvalue > P_MIN


# --- numpy and torch agree in distribution ---------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
def test_collapse_time_and_sigma_distributions_match_numpy(p0_fig6, device):
    kw = dict(n_runs=3000, n_generations=300, metrics=("sigma", "l1_to_first"))
    ref = simulate(p0_fig6, FullySynthetic(10), ("numpy", "cpu"), seed=31, **kw)
    new = simulate(p0_fig6, FullySynthetic(10), ("torch", device), seed=32, **kw)
    t_ref = full(ref)["collapse_time"].values.ravel()
    t_new = full(new)["collapse_time"].values.ravel()
    assert not np.isnan(t_ref).any() and not np.isnan(t_new).any()
    assert two_sample_chi2(t_ref, t_new) > P_MIN
    assert stats.ks_2samp(t_ref, t_new).pvalue > P_MIN
    for m in (3, 10):
        for name in ("sigma", "l1_to_first"):
            a = full(ref)[name].values[:, 0, m]
            b = full(new)[name].values[:, 0, m]
            assert two_sample_chi2(a, b) > P_MIN, (name, m)


def test_partially_synthetic_sigma_distribution_matches_numpy(p0_fig6):
    kw = dict(n_runs=3000, n_generations=10, metrics=("sigma", "l1_to_true"))
    ref = simulate(p0_fig6, PartiallySynthetic(50, 50), ("numpy", "cpu"), seed=33, **kw)
    new = simulate(p0_fig6, PartiallySynthetic(50, 50), ("torch", "cpu"), seed=34, **kw)
    for name in ("sigma", "l1_to_true"):
        a, b = full(ref)[name].values[:, 0, 10], full(new)[name].values[:, 0, 10]
        assert stats.ks_2samp(a, b).pvalue > P_MIN, name


def _scenarios():
    rule = np.array([[12, 0, 0], [4, 8, 0], [4, 0, 8]])
    return [FullySynthetic(10), PartiallySynthetic(10, 20), MostRecent(12, 3),
            MostRecent(12, 3, split="literal"), RandomPool(10), Accumulate(10, 20),
            AccumulateSubsample(10, 20), FreshReal(10, 20),
            Custom(rule, N=30, real_mode="corpus"), Custom(rule)]


def test_every_registered_scenario_is_covered():
    assert {type(s) for s in _scenarios()} == set(SCENARIOS.values())


@pytest.mark.parametrize("mode", ["auto", "counts"])
@pytest.mark.parametrize("scenario", _scenarios(), ids=lambda s: s.describe())
def test_every_scenario_agrees_with_numpy(p0_fig6, scenario, mode):
    """Same result layout; valid metrics; mean σ, l1_to_true and support at the last
    generation agree with numpy (two-sample z-test), in both representations where the
    scenario allows counts."""
    if mode == "counts" and scenario.needs_token_order:
        pytest.skip("needs the order of the tokens")
    kw = dict(n_runs=1500, n_generations=3)
    ref = simulate(p0_fig6, scenario, ("numpy", "cpu"), seed=41, **kw)
    new = simulate(p0_fig6, scenario, ("torch", "cpu"), representation=mode, seed=42, **kw)
    assert set(new.data.data_vars) == set(ref.data.data_vars)
    assert full(new)["sigma"].shape == full(ref)["sigma"].shape
    ds = full(new)
    sigma, sup = ds["sigma"].values, ds["sup"].values
    assert np.all((sigma >= 1 / 52 - 1e-12) & (sigma <= 1 + 1e-12))
    assert np.array_equal(ds["collapsed"].values, np.isclose(sup, 1.0))
    assert np.allclose(ds["entropy"].values[ds["collapsed"].values], 0.0, atol=1e-12)
    for name in ("sigma", "l1_to_true", "support"):
        a, b = full(ref)[name].values[:, 0, -1], ds[name].values[:, 0, -1]
        se = np.hypot(a.std(ddof=1) / np.sqrt(a.size), b.std(ddof=1) / np.sqrt(b.size))
        assert abs(a.mean() - b.mean()) < Z_MAX * se + 1e-12, (name, a.mean(), b.mean())


@pytest.mark.parametrize("mode", ["tokens", "counts"])
def test_multi_context_matches_numpy(mode):
    rng = np.random.default_rng(3)
    p0 = rng.dirichlet(np.ones(6), size=3)
    p0[1, :3] = 0
    p0 /= p0.sum(axis=1, keepdims=True)
    kw = dict(n_runs=2000, n_generations=4, metrics=("sigma", "l1_to_true"))
    ref = simulate(p0, PartiallySynthetic(8, 5), ("numpy", "cpu"), seed=51, **kw)
    new = simulate(p0, PartiallySynthetic(8, 5), ("torch", "cpu"), representation=mode, seed=52,
                   **kw)
    assert new.data.attrs["representation"] == mode
    for name in ("sigma", "l1_to_true"):
        a, b = full(ref)[name].values[:, :, -1], full(new)[name].values[:, :, -1]
        se = np.hypot(a.std(0, ddof=1), b.std(0, ddof=1)) / np.sqrt(a.shape[0])
        assert np.all(np.abs(a.mean(0) - b.mean(0)) < Z_MAX * se), name


# --- the pieces: metrics, draws, streams -----------------------------------------------------

@pytest.mark.parametrize("k", [30, 8], ids=["n<k", "n>k"])
def test_metric_routes_equal_numpy_definitions(k):
    """Sparse (from tokens), dense (from counts) and the scratch route all give the numpy
    definitions; the scratch array is left zero."""
    rng = np.random.default_rng(4)
    n, rows = 12, 200
    tokens = rng.integers(0, 8, size=(rows, n))
    tokens[:5] = 3  # collapsed rows
    first = rng.dirichlet(np.ones(k), size=rows)
    true = rng.dirichlet(np.ones(k), size=1)
    counts = np.stack([np.bincount(t, minlength=k) for t in tokens])
    names = resolve_metrics(None)
    expect = count_metrics(counts, n, first, np.repeat(true, rows, 0), names)
    t_tokens, t_first = torch.as_tensor(tokens), torch.as_tensor(first)
    truth = Truth(torch.as_tensor(true), torch.zeros(rows, dtype=torch.int64))
    scratch = CountScratch(rows, k, torch.device("cpu"))
    routes = [sparse_metrics(t_tokens, scratch, t_first, truth, names),
              dense_metrics(torch.as_tensor(counts), n, t_first, truth, names),
              scratch.token_metrics(t_tokens, t_first, truth, names)]
    assert not scratch.counts.any()
    for got, dirac in routes:
        for name in names:
            assert got[name].dtype == (torch.bool if name == "collapsed" else torch.float64)
            assert np.allclose(got[name].numpy(), expect[name], rtol=1e-12, atol=1e-12), name
        assert dirac[:5].tolist() == [3] * 5 and np.all(dirac[5:].numpy() == -1)


def test_binomial_tree_is_multinomial():
    """Counts sum to the draw size; chi-square of pooled counts against n·p."""
    p = np.array([0.5, 0.2, 0.0, 0.15, 0.1, 0.05])
    streams = TorchRowStreams(7, 0, [2000, 500], torch.device("cpu"))
    tree = BinomialTree(torch.as_tensor(p)[None])
    counts = tree.draw(30, 2500, streams).numpy()
    assert np.all(counts.sum(axis=1) == 30) and np.all(counts[:, 2] == 0)
    live = p > 0
    total = counts.sum(axis=0)[live]
    assert stats.chisquare(total, p[live] * total.sum()).pvalue > P_MIN
    # Variance of one coordinate: n p (1 − p), within sampling error.
    var = counts[:, 0].var(ddof=1)
    assert abs(var / (30 * 0.25) - 1) < Z_MAX * np.sqrt(2 / 2500)


def test_streams_blocks_are_independent_of_each_other():
    """A block draws the same numbers whatever the other blocks of its chunk do."""
    dev = torch.device("cpu")
    alone = TorchRowStreams(9, 1, [700], dev)
    paired = TorchRowStreams(9, 0, [1000, 700], dev)
    for size in (3, 50, 1):
        a = alone.integers(17, size)
        b = paired.integers(17, size)[1000:]
        assert torch.equal(a, b)
    mask = np.ones(1700, dtype=bool)
    mask[:400] = False  # runs of block 0 stop; block 1 must not notice
    paired.keep(mask)
    assert torch.equal(alone.random(5), paired.random(5)[600:])


def test_streams_are_uniform():
    streams = TorchRowStreams(11, 0, [1000], torch.device("cpu"))
    ints = streams.integers(7, 700).numpy().ravel()
    assert stats.chisquare(np.bincount(ints, minlength=7)).pvalue > P_MIN
    u = streams.random(200).numpy().ravel()
    assert u.min() >= 0 and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > P_MIN


# --- reproducibility, chunking, validation ---------------------------------------------------

def _arrays(result):
    table = full(result)
    return {name: table[name].values for name in table.data_vars}


def _assert_same(a, b):
    for name in a:
        assert np.array_equal(a[name], b[name], equal_nan=True) or np.allclose(
            a[name], b[name], rtol=1e-12, atol=1e-14, equal_nan=True), name


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scenario", [FullySynthetic(6), MostRecent(8, 2), RandomPool(6)],
                         ids=lambda s: s.name)
def test_same_seed_same_numbers_whatever_the_chunking(p0_small, scenario, device):
    kw = dict(runs=2300, generations=40, seed=61, backend="torch", device=device)
    whole = _arrays(mc.simulate(p0=p0_small, scenario=scenario, **kw))
    again = _arrays(mc.simulate(p0=p0_small, scenario=scenario, **kw))
    chunked = _arrays(mc.simulate(p0=p0_small, scenario=scenario, chunk_runs=1000, **kw))
    for name in whole:
        assert np.array_equal(whole[name], again[name], equal_nan=True), name
    _assert_same(whole, chunked)
    other = _arrays(mc.simulate(p0=p0_small, scenario=scenario, **{**kw, "seed": 62}))
    assert not np.array_equal(whole["sigma"], other["sigma"])


def test_counts_representation_chunking(p0_small):
    kw = dict(n_runs=2100, n_generations=30, seed=63, representation="counts")
    whole = simulate(p0_small, FullySynthetic(40), ("torch", "cpu"), **kw)
    chunked = simulate(p0_small, FullySynthetic(40), ("torch", "cpu"), chunk_runs=1000, **kw)
    _assert_same(_arrays(whole), _arrays(chunked))


@pytest.fixture(params=[1, 8], ids=["check-1", "check-8"])
def check_every(request, monkeypatch):
    """Look at the device every generation (the CPU default) or every 8 (the CUDA default:
    absorbed runs are then simulated as Dirac masses until the next look)."""
    monkeypatch.setitem(engine_plan.CHECK_EVERY, "torch", request.param)
    return request.param


def test_deferred_checks_keep_theory_and_chunking(p0_fig6, p0_small, check_every):
    n = 10
    res = mc.simulate(p0=p0_fig6, scenario=FullySynthetic(n), runs=3000, generations=40,
                      seed=65, metrics=("sigma",), backend="torch")
    mean, se = res.mean("sigma")
    for m in (1, 5, 9, 20, 40):
        assert abs((mean[m] - S_fully(m, n, 0.1)) / se[m]) < Z_MAX, (m, mean[m])
    kw = dict(runs=2100, generations=30, seed=66, backend="torch")
    whole = mc.simulate(p0=p0_small, scenario=MostRecent(6, 2), **kw)
    _assert_same(_arrays(whole), _arrays(mc.simulate(p0=p0_small, scenario=MostRecent(6, 2),
                                                     chunk_runs=1000, **kw)))


def test_absorbed_runs_are_filled_exactly(p0_small, check_every):
    """Runs that stop early carry the Dirac metrics of their absorbed token."""
    res = mc.simulate(p0=p0_small, scenario=FullySynthetic(3), runs=300, generations=60,
                      seed=64, backend="torch")
    ds = full(res)
    t = ds["absorption_time"].values[:, 0]
    assert np.isfinite(t).all()
    p0 = ds["p0"].values[0]
    for r in range(0, 300, 37):
        m = int(t[r])
        token = int(ds["absorbed_token"].values[r, 0])
        assert np.all(ds["sigma"].values[r, 0, m:] == 1.0)
        assert np.allclose(ds["l1_to_true"].values[r, 0, m:], 2 * (1 - p0[token]))
        assert ds["collapse_time"].values[r, 0] == m


def test_runs_can_go_on_after_absorption(p0_small):
    """stop_when_absorbed=False simulates absorbed runs to the end: the same outcomes law,
    and the simulated Dirac metrics equal the filled-in ones."""
    names = resolve_metrics(None)
    kw = dict(runs=400, generations=40, backend="torch", seed=67, metrics=names,
              trajectories=400)
    ds = full(mc.simulate(p0=p0_small, scenario=FullySynthetic(3), stop_when_absorbed=False,
                          **kw))
    t = ds["absorption_time"].values[:, 0]
    assert np.array_equal(t, ds["collapse_time"].values[:, 0], equal_nan=True)
    p0 = ds["p0"].values[0]
    for r in np.flatnonzero(np.isfinite(t))[:20]:
        m, token = int(t[r]), int(ds["absorbed_token"].values[r, 0])
        assert np.allclose(ds["sigma"].values[r, 0, m:], 1.0)
        assert np.allclose(ds["l1_to_true"].values[r, 0, m:], 2 * (1 - p0[token]))
    stopped = mc.simulate(p0=p0_small, scenario=FullySynthetic(3), **kw).data
    a, b = t[np.isfinite(t)], stopped["absorption_time"].values[:, 0]
    assert stats.ks_2samp(a, b[np.isfinite(b)]).pvalue > P_MIN


def test_bad_arguments_are_rejected(p0_small):
    with pytest.raises(ValueError, match="'device' parameter of simulate"):
        mc.simulate(p0=p0_small, scenario=FullySynthetic(5), runs=2, generations=2,
                    backend="torch", device="tpu")
    if not CUDA:
        with pytest.raises(ValueError, match="no CUDA device"):
            mc.simulate(p0=p0_small, scenario=FullySynthetic(5), runs=2, generations=2,
                        backend="torch", device="cuda")
    # The numpy backend holds models as tokens or counts too (it rejected both before the
    # engine had one plan): it takes the representation asked for.
    for mode in ("tokens", "counts"):
        assert mc.plan(p0=p0_small, scenario=FullySynthetic(5), runs=2, generations=2,
                       representation=mode).representation == mode
    with pytest.raises(ValueError, match=r"representation\s+Input should be 'auto', 'tokens'"):
        mc.simulate(p0=p0_small, scenario=FullySynthetic(5), runs=2, generations=2,
                    backend="torch", representation="sparse")
    with pytest.raises(ValueError, match="'representation' parameter of simulate cannot be"):
        simulate(p0_small, RandomPool(5), ("torch", "cpu"), representation="counts", n_runs=2,
                 n_generations=2, seed=1)
    with pytest.raises(ValueError, match="'representation' parameter of simulate cannot be"):
        simulate(p0_small, RandomPool(5), ("numpy", "cpu"), representation="counts", n_runs=2,
                 n_generations=2, seed=1)
    with pytest.raises(ValueError, match="'chunk_runs' parameter"):
        mc.simulate(p0=p0_small, scenario=FullySynthetic(5), runs=2000, generations=2,
                    chunk_runs=300, backend="torch")
