"""CUDA paths (bf16 autocast, torch.compile); skipped without a CUDA device."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelcollapse.lm import TINY, get_preset, run
from modelcollapse.lm.generate import reference_logprobs, sample_streams
from modelcollapse.lm.train import Engine, WindowSampler, validation_windows

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compiled_bf16_training_lowers_loss(corpus, mode):
    # reduce-overhead replays CUDA graphs: every step must be marked as a new one.
    preset = get_preset(TINY, max_iters=80)
    engine = Engine(preset, corpus.vocab_size, device="cuda", compile_mode=mode)
    assert engine.use_autocast and engine.compiled is not engine.model
    sampler = WindowSampler([corpus.train[None]], [1.0], preset.block_size, "cuda")
    val = torch.from_numpy(validation_windows(corpus.val, preset.block_size, 2048)
                           .astype(np.int64)).cuda()
    # The warm-up's backward passes must not accumulate into a replay's gradients.
    engine.warmup(sampler)
    before = engine.evaluate(val)
    rec = engine.train(sampler, entropy=0, generation=0, val_windows=val)
    assert rec.val_loss[-1] < before - 0.8


def test_cuda_sampling_matches_reference_under_autocast(corpus):
    engine = Engine(TINY, corpus.vocab_size, device="cuda")
    res = sample_streams(engine.model, 64, TINY.block_size + 4, start_probs=np.ones(
        corpus.vocab_size), seed=0, autocast=engine.autocast, return_logprobs=True)
    with engine.autocast():
        ref = reference_logprobs(engine.model, torch.from_numpy(
            res.tokens.astype(np.int64)).cuda())
    np.testing.assert_allclose(res.logprobs, ref.float().cpu().numpy(), atol=3e-2)


def test_cuda_run_resumes_from_checkpoints(tmp_path, corpus):
    preset = get_preset(TINY, max_iters=20)
    a = run("fully-synthetic", out=tmp_path, n_generations=2, preset=preset, device="cuda",
            corpus=corpus)
    b = run("fully-synthetic", out=tmp_path, n_generations=2, preset=preset, device="cuda",
            corpus=corpus)
    assert np.array_equal(a.probs, b.probs)
