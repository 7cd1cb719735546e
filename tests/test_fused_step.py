"""The fused spans of the fully and partially synthetic loops (engine.torch.fused) against
independent truth.

Without a CUDA device the kernel runs in Triton's interpreter (conftest sets it up), which
executes the same kernel source on CPU tensors, one program at a time: slow, so the cases are
small. With a device the compiled kernel is checked, and the ``cuda`` cases run too.

Truth: the sparse metric route (itself checked against the metric definitions in
test_torch_backend), the uniform law of the positions (chi-square), one launch per generation
for a span, Theorem 1 eq. 6 (written out again here), Theorem 2 eq. 9, the absorbing property
of collapse (Proposition 1), and the numpy engine in distribution.
"""

from __future__ import annotations

import collections
import functools
import os
import warnings

import numpy as np
import pytest
from scipy import stats

torch = pytest.importorskip("torch")

from modelcollapse import simulate  # noqa: E402
from modelcollapse.engine import plan as engine_plan  # noqa: E402
from modelcollapse.engine.torch import backend as torch_engine  # noqa: E402
from modelcollapse.engine.torch import fused  # noqa: E402
from modelcollapse.engine.torch.metrics import CountScratch, Truth, sparse_metrics  # noqa: E402
from modelcollapse.metrics import resolve_metrics  # noqa: E402
from modelcollapse.scenarios import FullySynthetic, MostRecent, PartiallySynthetic  # noqa: E402
from modelcollapse.theory.paper import expected_sigma_partial  # noqa: E402
from result_tables import assert_same_result, full  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
pytestmark = pytest.mark.skipif(not fused.available(DEVICE),
                                reason="needs Triton (compiled on CUDA, else its interpreter)")
ALL = resolve_metrics(None)
P_MIN = 1e-3
Z_MAX = 4.0


def _random_case(rows: int, n: int, k: int, contexts: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, k, (rows, n), generator=gen)
    tokens[1] = k - 1  # a Dirac row
    p0 = torch.rand(contexts, k, dtype=torch.float64, generator=gen)
    p0 /= p0.sum(dim=1, keepdim=True)
    first = torch.rand(rows, k, dtype=torch.float64, generator=gen)
    first /= first.sum(dim=1, keepdim=True)
    row_context = torch.arange(contexts).repeat(rows // contexts + 1)[:rows]
    truth = Truth(p0.to(DEVICE), row_context.to(DEVICE))
    return tokens.to(DEVICE), first.to(DEVICE), truth


@pytest.mark.parametrize("n", [1, 7, 16, 37])
@pytest.mark.parametrize("contexts", [1, 3])
@pytest.mark.parametrize("names", [ALL, ("sigma", "collapsed"), ("l1_to_true", "collapsed")])
def test_step_gives_the_sparse_metrics_of_its_draws(n, contexts, names):
    rows, k = 12, 9
    tokens, first, truth = _random_case(rows, n, k, contexts, seed=n + contexts)
    row_ids = torch.arange(100, 100 + rows, device=DEVICE)
    span = fused.fused_steps(tokens, row_ids, [12345], names, first, truth.rows)
    new, dirac = span.tokens, span.dirac
    metrics = {name: value[:, 0] for name, value in span.metrics.items()}
    # Every draw is one of the row's previous tokens (an empirical distribution).
    for old_row, new_row in zip(tokens.tolist(), new.tolist()):
        assert set(new_row) <= set(old_row)
    assert new[1].eq(k - 1).all() and dirac[1] == k - 1  # a Dirac mass stays one
    scratch = CountScratch(rows, k, DEVICE)
    want, want_dirac = sparse_metrics(new, scratch, first, truth, names)
    assert set(metrics) == set(want)
    for name, value in want.items():
        if name == "collapsed":
            assert torch.equal(metrics[name], value)
        else:
            np.testing.assert_allclose(metrics[name].cpu(), value.cpu(), rtol=0, atol=1e-12)
    assert torch.equal(dirac, want_dirac)


@pytest.mark.parametrize("previous, draws, real", [(6, 9, 6), (15, 9, 6), (3, 1, 2),
                                                   (30, 20, 100)],
                         ids=["from-the-corpus", "from-corpus-and-draws", "one-draw", "wide"])
def test_partial_step_keeps_the_corpus_and_gives_the_sparse_metrics(previous, draws, real):
    """A model of ``draws`` tokens of the one before (of ``previous`` tokens: at m = 2 the
    corpus alone) and the corpus after them; its metrics are those of all its tokens."""
    rows, k = 12, 9
    tokens, first, truth = _random_case(rows, previous, k, 2, seed=previous + draws)
    corpus = torch.randint(0, k, (rows, real), generator=torch.Generator().manual_seed(1))
    corpus[1] = k - 1  # row 1: the model before and the corpus are the same Dirac mass
    corpus = corpus.to(DEVICE)
    row_ids = torch.arange(rows, device=DEVICE)
    span = fused.fused_steps(tokens, row_ids, [fused.generation_seed(3, 2)], ALL, first,
                             truth.rows, corpus=corpus, draws=draws)
    new = span.tokens
    assert new.shape == (rows, draws + real)
    assert torch.equal(new[:, draws:], corpus)
    for old_row, new_row in zip(tokens.tolist(), new[:, :draws].tolist()):
        assert set(new_row) <= set(old_row)
    assert new[1].eq(k - 1).all() and span.dirac[1] == k - 1
    want, want_dirac = sparse_metrics(new, CountScratch(rows, k, DEVICE), first, truth, ALL)
    for name, value in want.items():
        got = span.metrics[name][:, 0]
        if name == "collapsed":
            assert torch.equal(got, value)
        else:
            np.testing.assert_allclose(got.cpu(), value.cpu(), rtol=0, atol=1e-12)
    assert torch.equal(span.dirac, want_dirac)


def test_positions_are_uniform():
    """With distinct tokens 0 … n−1 a draw shows its position; over rows and draws the
    positions are uniform (chi-square), and draw 0 of each row alone is too."""
    rows, n = 96, 40
    tokens = torch.arange(n, device=DEVICE).repeat(rows, 1)
    row_ids = torch.arange(rows, device=DEVICE)
    new = fused.fused_steps(tokens, row_ids, [fused.generation_seed(7, 2)], ("sigma",), None,
                            torch.full((1, n), 1.0 / n, dtype=torch.float64,
                                       device=DEVICE)).tokens
    counts = np.bincount(new.cpu().numpy().ravel(), minlength=n)
    assert stats.chisquare(counts).pvalue > P_MIN
    per_row_first = np.bincount(new[:, 0].cpu().numpy(), minlength=n)
    assert stats.chisquare(per_row_first).pvalue > P_MIN
    # Fewer draws than the model has tokens, a corpus after them: still uniform over all n.
    corpus = torch.full((rows, 50), n, device=DEVICE)
    partial = fused.fused_steps(tokens, row_ids, [fused.generation_seed(7, 3)], ("sigma",),
                                None, torch.full((1, n + 1), 1.0 / (n + 1), dtype=torch.float64,
                                                 device=DEVICE), corpus=corpus, draws=30)
    counts = np.bincount(partial.tokens[:, :30].cpu().numpy().ravel(), minlength=n)
    assert counts.size == n and stats.chisquare(counts).pvalue > P_MIN


def test_draws_depend_only_on_seed_and_global_row():
    """What chunking and dropping rows rest on: a row's draws follow its global id."""
    tokens, first, truth = _random_case(10, 20, 6, 1, seed=3)
    row_ids = torch.arange(5000, 5010, device=DEVICE)
    seed = fused.generation_seed(11, 5)
    whole = fused.fused_steps(tokens, row_ids, [seed], ALL, first, truth.rows)
    subset = torch.tensor([7, 2, 9], device=DEVICE)
    part = fused.fused_steps(tokens[subset], row_ids[subset], [seed], ALL, first[subset],
                             truth.rows)
    assert torch.equal(part.tokens, whole.tokens[subset])
    for name in ALL:
        assert torch.equal(part.metrics[name], whole.metrics[name][subset])
    other = fused.fused_steps(tokens, row_ids, [fused.generation_seed(11, 6)], ALL, first,
                              truth.rows)
    assert not torch.equal(other.tokens, whole.tokens)


@pytest.mark.parametrize("real", [0, 2], ids=["fully", "partially"])
def test_a_span_equals_its_generations_one_at_a_time(real):
    """Several generations in one launch give exactly the tokens and metrics of one launch
    per generation, and report where each row first collapsed; with a corpus, the first
    step draws from the corpus alone (m = 2) and the later ones from corpus and draws. On
    CUDA this checks that a program reads back the tokens all its threads wrote (the barrier
    between steps)."""
    rows, n, k, steps = 24, 6, 3, 7
    tokens, first, truth = _random_case(rows, n, k, 2, seed=8)
    corpus = None
    if real:
        # Most rows' corpus is one token twice, so that some models collapse.
        corpus = torch.randint(0, k, (rows, 1), generator=torch.Generator().manual_seed(9))
        corpus = corpus.repeat(1, real).to(DEVICE)
        corpus[::5, 0] = (corpus[::5, 1] + 1) % k
        tokens = corpus
    row_ids = torch.arange(rows, device=DEVICE) * 3 + 1
    seeds = [fused.generation_seed(4, m) for m in range(2, 2 + steps)]
    span = fused.fused_steps(tokens, row_ids, seeds, ALL, first, truth.rows, corpus=corpus,
                             draws=n)
    current, onset = tokens, torch.full((rows,), -1, dtype=torch.int32, device=DEVICE)
    for s, seed in enumerate(seeds):
        one = fused.fused_steps(current, row_ids, [seed], ALL, first, truth.rows,
                                corpus=corpus, draws=n)
        for name, value in one.metrics.items():
            assert torch.equal(span.metrics[name][:, s], value[:, 0]), (name, s)
        onset = torch.where((onset < 0) & one.metrics["collapsed"][:, 0], s, onset)
        current = one.tokens
    assert torch.equal(span.tokens, current)
    assert torch.equal(span.dirac, one.dirac)
    assert torch.equal(span.onset, onset)
    assert (onset >= 0).any() and (onset < 0).any()  # the case shows both


def _loop(p0, n, runs, generations, **kw):
    return simulate(p0=p0, scenario=FullySynthetic(n), runs=runs, generations=generations,
                    backend="torch", seed=5, metrics=ALL, device=DEVICE.type, fused=True,
                    trajectories=runs, **kw)


def test_fused_loop_follows_theorem1_and_absorbs(p0_small):
    n, runs, generations = 6, 120 if not CUDA else 20_000, 10
    res = _loop(p0_small, n, runs, generations)
    assert res.data.attrs["route"] == "fused"
    mean, se = res.mean("sigma")
    m = np.arange(generations + 1)
    expected = 1 - (1 - 1 / n) ** m * (1 - np.sum(p0_small ** 2))  # eq. 6
    live = se[1:] > 0
    assert np.all(np.abs((mean[1:] - expected[1:])[live] / se[1:][live]) < Z_MAX)
    sigma = full(res)["sigma"].values.reshape(runs, -1)
    collapsed = full(res)["collapsed"].values.reshape(runs, -1)
    # Collapse is absorbing: once collapsed, always collapsed, with σ = 1 from then on.
    assert np.all(np.diff(collapsed[:, 1:].astype(int), axis=1) >= 0)
    assert np.all(sigma[collapsed] == 1.0)
    first_collapse = np.where(collapsed.any(axis=1), collapsed.argmax(axis=1), np.nan)
    np.testing.assert_array_equal(full(res)["collapse_time"].values.ravel(), first_collapse)


def test_fused_collapse_times_and_sigma_match_the_numpy_engine(p0_small):
    """The fused route and the numpy engine draw different numbers and must agree in
    distribution: collapse times T and σ_3 by two-sample tests (chi-square on pooled-quantile
    bins, Kolmogorov–Smirnov)."""
    # The interpreter runs a program-generation in milliseconds: few runs on a CPU.
    n, runs, generations = 5, 250 if not CUDA else 20_000, 80
    fused_result = simulate(p0=p0_small, scenario=FullySynthetic(n), runs=runs,
                            generations=generations, backend="torch", seed=5,
                            metrics=("sigma", "collapsed"), device=DEVICE.type, fused=True,
                            trajectories=runs)
    numpy_result = simulate(p0=p0_small, scenario=FullySynthetic(n), runs=runs,
                            generations=generations, seed=9, metrics=("sigma",))
    t_fused = full(fused_result)["collapse_time"].values.ravel()
    t_numpy = full(numpy_result)["collapse_time"].values.ravel()
    assert np.isfinite(t_fused).all() and np.isfinite(t_numpy).all()
    assert _two_sample_chi2(t_fused, t_numpy) > P_MIN
    assert stats.ks_2samp(t_fused, t_numpy).pvalue > P_MIN
    sigma_fused = full(fused_result)["sigma"].values.reshape(runs, -1)[:, 3]
    sigma_numpy = full(numpy_result)["sigma"].values.reshape(runs, -1)[:, 3]
    assert _two_sample_chi2(sigma_fused, sigma_numpy) > P_MIN


def test_fused_partially_synthetic_loop_follows_theorem2_and_numpy(p0_small):
    """The partially synthetic loop on the fused route: mean σ_m against Theorem 2 eq. 9
    (|z| < 4), and σ_3 and σ_12 against the numpy engine by two-sample chi-square. Models
    are n + N = 7 tokens: the fixed corpus of N = 3 and n = 4 draws (at m = 2 from the
    corpus alone)."""
    n, N, runs, generations = 4, 3, 300 if not CUDA else 20_000, 12
    scenario = PartiallySynthetic(n, N)
    fused_result = simulate(p0=p0_small, scenario=scenario, runs=runs, generations=generations,
                            backend="torch", seed=6, metrics=("sigma", "collapsed"),
                            device=DEVICE.type, fused=True, trajectories=runs)
    assert fused_result.data.attrs["route"] == "fused"
    mean, se = fused_result.mean("sigma")
    s0 = float(np.sum(p0_small ** 2))
    for m in range(1, generations + 1):
        z = (mean[m] - expected_sigma_partial(s0, n, N, m)) / se[m]
        assert abs(z) < Z_MAX, (m, mean[m], z)
    numpy_result = simulate(p0=p0_small, scenario=scenario, runs=runs, generations=generations,
                            seed=9, metrics=("sigma",))
    for m in (3, generations):
        sigma_fused = full(fused_result)["sigma"].values.reshape(runs, -1)[:, m]
        sigma_numpy = full(numpy_result)["sigma"].values.reshape(runs, -1)[:, m]
        assert _two_sample_chi2(sigma_fused, sigma_numpy) > P_MIN, m
    # A model is a Dirac mass exactly when its corpus is, from generation 1 on; no run is
    # absorbed, as p(0) (support 5) is not a Dirac mass and its corpus feeds every model.
    collapsed = full(fused_result)["collapsed"].values.reshape(runs, -1)
    assert np.all(collapsed[:, 1:] == collapsed[:, 1:2])
    times = full(fused_result)["collapse_time"].values.ravel()
    np.testing.assert_array_equal(times, np.where(collapsed[:, 1], 1.0, np.nan))
    assert np.isnan(full(fused_result)["absorption_time"].values).all()


def _two_sample_chi2(a: np.ndarray, b: np.ndarray) -> float:
    """p-value that two samples of a discrete variable share one law (chi-square on the
    pooled values' table, values seen fewer than 5 times pooled into one cell)."""
    a, b = np.round(a, 9), np.round(b, 9)
    values, counts = np.unique(np.concatenate([a, b]), return_counts=True)
    common = values[counts >= 5]
    table = np.array([[np.sum(x == v) for v in common] + [np.sum(~np.isin(x, common))]
                      for x in (a, b)])
    table = table[:, table.sum(axis=0) > 0]
    return stats.chi2_contingency(table)[1]


def test_fused_loop_is_reproducible_and_fills_absorbed_runs_exactly(p0_small):
    kept = _loop(p0_small, 5, 40, 8, stop_when_absorbed=False)
    dropped = _loop(p0_small, 5, 40, 8)
    assert_same_result(kept, dropped)


@pytest.mark.parametrize("lagged", [False, True])
def test_spans_and_drops_keep_every_value(p0_small, monkeypatch, lagged):
    """Spans of 3 generations and absorption checks every 2, read at once or one span late:
    stopped runs keep their metrics in every later generation, and the results equal those
    of a run that never stops (the fused route draws by global row, so both see the same
    numbers)."""
    monkeypatch.setitem(torch_engine.LAGGED_CHECKS, DEVICE.type, lagged)
    runs = 40
    monkeypatch.setattr(torch_engine, "SPAN_GENERATIONS", 3)
    monkeypatch.setitem(engine_plan.CHECK_EVERY, "torch", 2)
    monkeypatch.setattr(torch_engine, "FUSED_DROP_SHARE", 0.0)  # drop at every check
    kept = _loop(p0_small, 4, runs, 11, stop_when_absorbed=False)
    dropped = _loop(p0_small, 4, runs, 11)
    assert np.isfinite(full(dropped)["absorption_time"].values).any()
    assert_same_result(kept, dropped)


@pytest.mark.parametrize("lagged", [False, True])
@pytest.mark.parametrize("share", [0.0, 0.5])
def test_when_runs_are_dropped_does_not_change_results(p0_small, monkeypatch, share, lagged):
    """Absorbed runs are dropped at once (share 0) or only once they are half the runs, at
    the check that sees them or at the next (lagged); every value equals that of a loop that
    never drops any."""
    monkeypatch.setitem(torch_engine.LAGGED_CHECKS, DEVICE.type, lagged)
    monkeypatch.setitem(engine_plan.CHECK_EVERY, "torch", 2)
    monkeypatch.setattr(torch_engine, "FUSED_DROP_SHARE", share)
    # With n = 10, 55% of runs are absorbed by generation 13 (numpy engine, 4000 runs): 30
    # runs hold both kinds on every device's draws, bar a chance below 1e-7.
    kept = _loop(p0_small, 10, 30, 13, stop_when_absorbed=False)
    dropped = _loop(p0_small, 10, 30, 13)
    absorbed = np.isfinite(full(dropped)["absorption_time"].values)
    assert absorbed.any() and not absorbed.all()
    assert_same_result(kept, dropped)


@pytest.mark.parametrize("lagged", [False, True])
def test_partially_synthetic_runs_settle_only_on_a_dirac_p0(p0_small, monkeypatch, lagged):
    """With a corpus only a context whose p(0) is a Dirac mass settles (at generation 1, into
    that token); dropping those runs, at once or a span late, changes no value."""
    monkeypatch.setitem(torch_engine.LAGGED_CHECKS, DEVICE.type, lagged)
    monkeypatch.setitem(engine_plan.CHECK_EVERY, "torch", 2)
    monkeypatch.setattr(torch_engine, "FUSED_DROP_SHARE", 0.0)
    p0 = np.stack([np.eye(p0_small.size)[3], p0_small])
    results = [simulate(p0=p0, scenario=PartiallySynthetic(3, 2), runs=20, generations=7,
                        backend="torch", seed=8, metrics=ALL, device=DEVICE.type, fused=True,
                        trajectories=20, stop_when_absorbed=stop) for stop in (False, True)]
    assert_same_result(*results)
    data = full(results[1])
    assert np.all(data["absorption_time"].values[:, 0] == 1)
    assert np.all(data["absorbed_token"].values[:, 0] == 3)
    assert np.isnan(data["absorption_time"].values[:, 1]).all()
    assert np.all(data["sigma"].values[:, 0, 1:] == 1.0)


def test_lagged_checks_drop_the_runs_settled_one_check_before(p0_small, monkeypatch):
    """Read one span late, each check drops the runs the check before saw settled: every
    span simulates as many rows as the span before it did when checks are read at once, and
    the lagged loop, which learns one span late that every run stopped, runs one span more."""
    monkeypatch.setitem(engine_plan.CHECK_EVERY, "torch", 2)
    monkeypatch.setattr(torch_engine, "FUSED_DROP_SHARE", 0.0)
    rows_per_span = {}
    for lagged in (False, True):
        monkeypatch.setitem(torch_engine.LAGGED_CHECKS, DEVICE.type, lagged)
        spans = rows_per_span[lagged] = []

        def counting(tokens, *args, spans=spans, **kwargs):
            spans.append(tokens.shape[0])
            return fused.fused_steps(tokens, *args, **kwargs)

        monkeypatch.setattr(torch_engine, "fused_steps", counting)
        result = _loop(p0_small, 2, 30, 40)
        assert np.isfinite(full(result)["absorption_time"].values).all()  # all stop early
    at_once, late = rows_per_span[False], rows_per_span[True]
    assert at_once[0] == 30 and at_once[-1] < 30
    assert late == [30, *at_once]


def test_a_span_keeps_only_the_model_it_ends_with(p0_small):
    """The history lets go of every model no later generation trains on, also when spans
    store one model per several generations."""
    seen = []
    original = torch_engine.TorchChunk.span

    def spy(self, loop, m, last):
        original(self, loop, m, last)
        seen.append(sorted(self.history._models))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch_engine.TorchChunk, "span", spy)
        _loop(p0_small, 40, 6, 20)
    assert seen == [[8], [16], [20]]


def test_generic_route_without_fused(p0_small):
    res = simulate(p0=p0_small, scenario=FullySynthetic(5), runs=10, generations=3,
                   backend="torch", seed=5, metrics=ALL, device=DEVICE.type, fused=False,
                   trajectories="none")
    assert res.data.attrs["route"] == "generic"


def test_fused_argument_is_validated(p0_small):
    kw = dict(runs=4, generations=2, backend="torch", seed=0, metrics=ALL, device=DEVICE.type,
              fused=True, trajectories="none")
    for scenario in (MostRecent(5, 2), FullySynthetic(fused.MAX_N + 1),
                     PartiallySynthetic(fused.MAX_N - 9, 10)):
        with pytest.raises(ValueError, match="fully and partially synthetic"):
            simulate(p0=p0_small, scenario=scenario, **kw)
    with pytest.raises(ValueError, match="as counts"):
        simulate(p0=p0_small, scenario=FullySynthetic(5), representation="counts", **kw)


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("scenario", [FullySynthetic(5), PartiallySynthetic(4, 3)],
                         ids=lambda s: s.describe())
def test_cuda_picks_the_fused_route(p0_small, scenario):
    res = simulate(p0=p0_small, scenario=scenario, runs=10, generations=3, backend="torch",
                   seed=5, metrics=ALL, device="cuda", trajectories="none")
    assert res.data.attrs["route"] == "fused"


@pytest.mark.cuda
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_cuda_checks_and_drops_do_not_wait_for_the_device(p0_small):
    """With checks read one span late and rows dropped by index, the host waits for the
    device a fixed number of times per loop (the first generation, the end), not at checks:
    torch's sync debug mode counts the same synchronising calls at 3 checks as at 11, though
    the longer loop drops runs at several of them."""
    assert torch_engine.LAGGED_CHECKS["cuda"]
    run = functools.partial(simulate, p0=p0_small, scenario=FullySynthetic(30), runs=20_000,
                            backend="torch", seed=3, metrics=("sigma", "l1_to_first"),
                            device="cuda", trajectories="none")
    run(generations=8)  # compiles the kernel
    syncs = {}
    for generations in (24, 88):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                result = run(generations=generations)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        # Where each one was called from, so that a failure names the calls to look at.
        syncs[generations] = collections.Counter(
            f"{os.path.basename(w.filename)}:{w.lineno}" for w in caught
            if "called a synchronizing CUDA operation" in str(w.message))
    absorbed = np.isfinite(result.data["absorption_time"].values)
    assert 0.1 < absorbed.mean() < 1.0
    assert syncs[88] == syncs[24], syncs
