"""The recursive loop: data plans from scenarios (eq. 5), checkpoints and exact resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelcollapse.lm import TINY, get_preset, load_run, run
from modelcollapse.lm.checkpoint import load_weights
from modelcollapse.lm.loop import (
    RunDirectoryMismatch,
    Segment,
    data_plan,
    make_lm_scenario,
)
from modelcollapse.lm.result import gen_dir
from modelcollapse.scenarios import Accumulate, MostRecent, PartiallySynthetic, RandomPool


def test_fully_synthetic_model_m_reads_generation_m_minus_1():
    scen = make_lm_scenario("fully-synthetic", tokens=1000)
    plan = data_plan(scen, 4, unit=lambda t: 10)
    assert plan.segments[1] == (Segment(0, 0, 1000),)
    assert plan.segments[3] == (Segment(2, 0, 1000),)
    assert plan.demand == {0: 1000, 1: 1000, 2: 1000, 3: 1000, 4: 0}


@pytest.mark.parametrize("fraction", [0.5, 0.2])
def test_mixture_reuses_the_real_corpus_with_the_right_share(fraction):
    scen = make_lm_scenario("partially-synthetic", tokens=1000, synthetic_fraction=fraction)
    assert isinstance(scen, PartiallySynthetic) and scen.N == 1000
    assert scen.n / (scen.N + scen.n) == pytest.approx(fraction)
    plan = data_plan(scen, 3, unit=lambda t: 1)
    assert plan.segments[1] == (Segment(0, 0, 1000),)
    for m in (2, 3):
        real, synthetic = plan.segments[m]
        assert real == Segment(0, 0, 1000)  # the same corpus every generation
        assert synthetic == Segment(m - 1, 0, scen.n)
        assert synthetic.tokens / (real.tokens + synthetic.tokens) == pytest.approx(fraction)


def test_most_recent_takes_fresh_disjoint_slices():
    plan = data_plan(MostRecent(n=600, K=3), 5, unit=lambda t: 1)
    # Generation 1 feeds models 2, 3 and 4 (300 + 200 + 200 tokens), each a fresh slice.
    assert plan.segments[2] == (Segment(0, 600, 900), Segment(1, 0, 300))
    assert plan.segments[4] == (Segment(1, 500, 700), Segment(2, 200, 400), Segment(3, 0, 200))
    assert plan.demand[1] == 700


def test_accumulate_reuses_what_each_generation_published():
    plan = data_plan(Accumulate(n=100, N=300), 4, unit=lambda t: 1)
    assert plan.segments[4] == (Segment(0, 0, 300), Segment(1, 0, 100), Segment(2, 0, 100),
                                Segment(3, 0, 100))
    assert plan.demand[1] == 100


def test_counts_round_up_to_whole_streams_and_random_counts_are_refused():
    plan = data_plan(make_lm_scenario("fully-synthetic", tokens=95), 2, unit=lambda t: 17)
    assert plan.segments[2] == (Segment(1, 0, 102),)
    with pytest.raises(ValueError, match="fixed counts"):
        data_plan(RandomPool(n=10), 3, unit=lambda t: 1)
    with pytest.raises(ValueError, match="synthetic_fraction"):
        make_lm_scenario("partially-synthetic", tokens=10)


def _run(out, corpus, **kw):
    args = {"n_generations": 3, "preset": TINY, "seed": 7, "corpus": corpus} | kw
    return run("fully-synthetic", out=out, **args)


class Interrupt(Exception):
    pass


def _stop_at(stage, gen):
    def hook(s, m):
        if (s, m) == (stage, gen):
            raise Interrupt
    return hook


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("reference")
    return _run(out, corpus)


def test_run_writes_every_generation(reference_run, corpus):
    res = reference_run
    assert [g.generation for g in res.generations] == [0, 1, 2, 3]
    assert res.probs.shape == (4, TINY.n_contexts, res.settings["vocab_size"])
    np.testing.assert_allclose(res.probs.sum(-1), 1.0, atol=1e-9)
    assert np.all(res.l1_to_first[1] == 0) and res.l1_to_first[3].mean() > 0
    assert res.contexts.shape == (TINY.n_contexts, TINY.block_size)
    corpus1 = np.load(gen_dir(res.out, 1) / "corpus.npy")
    assert corpus1.shape == (TINY.corpus_tokens // (TINY.block_size + 1), TINY.block_size + 1)
    assert not (gen_dir(res.out, 3) / "corpus.npy").exists()  # nobody trains on it
    state = load_weights(gen_dir(res.out, 2) / "model.pt")
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert (res.out / "result.json").exists()
    assert (res.out / "run.png").stat().st_size > 10_000
    samples = (res.out / "samples.txt").read_text(encoding="utf-8")
    assert "=== generation 1 " in samples and "=== generation 3 " not in samples
    first = np.load(gen_dir(res.out, 1) / "corpus.npy")[0]
    assert corpus.tokenizer.decode(first[:50]) in samples  # decoded text, not token ids


@pytest.mark.parametrize("stop", [("model", 2), ("corpus", 1), ("model", 0)])
def test_resume_after_interruption_gives_identical_results(tmp_path, corpus, reference_run,
                                                           stop):
    with pytest.raises(Interrupt):
        _run(tmp_path, corpus, on_event=_stop_at(*stop))
    resumed = _run(tmp_path, corpus)
    ref = reference_run
    assert np.array_equal(resumed.probs, ref.probs)
    assert [g.val_loss for g in resumed.generations] == [g.val_loss for g in ref.generations]
    for m in range(3):
        a = np.load(gen_dir(tmp_path, m) / "corpus.npy")
        assert np.array_equal(a, np.load(gen_dir(ref.out, m) / "corpus.npy"))
    for m in range(4):
        a, b = (load_weights(gen_dir(d, m) / "model.pt") for d in (tmp_path, ref.out))
        assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("damage", ["truncate model.pt of 2", "garbage corpus.npy of 1",
                                    "delete probs.npy of 1", "garbage model.json of 2"])
def test_a_damaged_checkpoint_is_made_again_by_a_plain_rerun(tmp_path, corpus, reference_run,
                                                             damage):
    """A stage counts as finished only when its files match what its JSON recorded."""
    import shutil

    shutil.copytree(reference_run.out, tmp_path / "run")
    action, name, _, m = damage.split()
    path = gen_dir(tmp_path / "run", int(m)) / name
    if action == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif action == "garbage":
        path.write_bytes(b"\x00garbage" * 10)
    else:
        path.unlink()
    rerun = _run(tmp_path / "run", corpus)
    assert np.array_equal(rerun.probs, reference_run.probs)
    a, b = (load_weights(gen_dir(d, 2) / "model.pt") for d in (tmp_path / "run",
                                                              reference_run.out))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert np.array_equal(np.load(gen_dir(tmp_path / "run", 1) / "corpus.npy"),
                          np.load(gen_dir(reference_run.out, 1) / "corpus.npy"))


def test_directory_of_another_run_is_refused(corpus, reference_run):
    with pytest.raises(RunDirectoryMismatch, match="different run"):
        _run(reference_run.out, corpus, seed=8)


def test_mixture_reuses_shared_generations(tmp_path, corpus, reference_run):
    """p(0), its text and p(1) are the same for fully synthetic and the 50 % mixture."""
    calls = []
    res = run("partially-synthetic", synthetic_fraction=0.5, out=tmp_path, n_generations=2,
              preset=TINY, seed=7, corpus=corpus, reuse_from=[reference_run.out],
              on_event=lambda s, m: calls.append((s, m)))
    assert np.array_equal(res.probs[:2], reference_run.probs[:2])
    assert not np.array_equal(res.probs[2], reference_run.probs[2])
    assert load_run(tmp_path).generations[2].sources == [
        {"generation": 0, "start": 0, "stop": 3400, "kind": "samples"},
        {"generation": 1, "start": 0, "stop": 3400, "kind": "samples"}]


def test_real_text_as_generation_zero(tmp_path, corpus):
    preset = get_preset(TINY, max_iters=10)
    res = run("partially-synthetic", synthetic_fraction=0.2, out=tmp_path, n_generations=2,
              preset=preset, seed=1, corpus=corpus, real="text")
    real, synthetic = res.generations[2].sources
    assert real == {"generation": 0, "start": 0, "stop": 3400, "kind": "text"}
    assert synthetic["stop"] == 850  # n = N f / (1 − f), 50 streams of 17 tokens
    assert not (gen_dir(tmp_path, 0) / "corpus.npy").exists()
    with pytest.raises(ValueError, match="real tokens"):
        run("fresh-real", synthetic_fraction=0.5, out=tmp_path / "x", n_generations=40,
            preset=get_preset(preset, corpus_tokens=len(corpus.train) // 4), corpus=corpus,
            real="text")
