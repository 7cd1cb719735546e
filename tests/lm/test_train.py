"""Training: the schedule, window sampling from mixtures, and a loss that goes down."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from modelcollapse.lm.presets import PAPER, TINY, get_preset
from modelcollapse.lm.train import (
    Engine,
    WindowSampler,
    eval_points,
    lr_at,
    validation_windows,
)


def test_schedule_warms_up_then_decays_to_min_lr():
    p = PAPER
    lrs = np.array([lr_at(i, p) for i in range(p.max_iters)])
    assert lrs[0] == pytest.approx(p.learning_rate / (p.warmup_iters + 1))
    assert np.all(np.diff(lrs[: p.warmup_iters]) > 0)
    assert lrs.max() == pytest.approx(p.learning_rate)
    assert np.all(np.diff(lrs[p.warmup_iters:]) <= 0)
    assert lr_at(p.max_iters, p) == pytest.approx(p.min_lr)
    mid = p.warmup_iters + (p.max_iters - p.warmup_iters) // 2
    assert lrs[mid] == pytest.approx((p.learning_rate + p.min_lr) / 2, rel=1e-3)


def test_eval_points_are_log_spaced_and_end_at_max_iters():
    pts = eval_points(2000, 24)
    assert pts[0] == 1 and pts[-1] == 2000 and pts == sorted(set(pts))
    assert len(pts) >= 20


def test_windows_stay_inside_streams_and_follow_source_weights():
    """Every stream holds one repeated id, so a window that crossed two streams would hold
    two ids; sources are drawn in proportion to their weights (eq. 5 token shares)."""
    block = 4
    real = np.full((1, 400), 1, dtype=np.uint8)
    synthetic = np.repeat(np.arange(2, 52, dtype=np.uint8)[:, None], block + 1, axis=1)
    weights = [800.0, 200.0]  # N = 800 real tokens, n = 200 synthetic: share 0.2
    sampler = WindowSampler([real, synthetic], weights, block, "cpu")
    x, y = sampler.sample(20_000, torch.Generator().manual_seed(0))
    window = torch.cat([x, y[:, -1:]], dim=1)
    assert torch.all(window == window[:, :1])
    share = (window[:, 0] != 1).double().mean().item()
    assert abs(share - 0.2) < 4 * math.sqrt(0.2 * 0.8 / 20_000)
    used = torch.unique(window[window[:, 0] != 1][:, 0])
    assert len(used) == 50  # every synthetic stream is reachable


def test_sampler_rejects_short_streams():
    with pytest.raises(ValueError, match="block_size"):
        WindowSampler([np.zeros((3, 4), np.uint8)], [1.0], 4, "cpu")


def test_validation_windows_cover_the_split_without_overlap():
    val = np.arange(1000) % 251
    w = validation_windows(val, 10, None)
    assert w.shape == (99, 11)
    assert np.array_equal(w[1, :10], val[10:20])
    capped = validation_windows(val, 10, 200)
    assert capped.shape == (20, 11)


def test_training_lowers_validation_loss(corpus):
    preset = get_preset(TINY, max_iters=80)
    engine = Engine(preset, corpus.vocab_size)
    sampler = WindowSampler([corpus.train[None]], [1.0], preset.block_size, "cpu")
    val = torch.from_numpy(validation_windows(corpus.val, preset.block_size, 2048)
                           .astype(np.int64))
    before = engine.evaluate(val)
    rec = engine.train(sampler, entropy=0, generation=0, val_windows=val)
    assert before == pytest.approx(math.log(corpus.vocab_size), abs=0.1)
    assert rec.val_loss[-1] < before - 0.8
    assert rec.iters[-1] == 80 and len(rec.train_loss) == len(rec.val_loss)
    # Same seed, same generation: the same model, bit for bit (CPU).
    first = engine.state_dict()
    engine.train(sampler, entropy=0, generation=0, val_windows=val)
    assert all(torch.equal(first[k], v) for k, v in engine.state_dict().items())


def test_engine_rejects_an_unknown_compile_mode(corpus):
    with pytest.raises(ValueError, match=r"'compile_mode' parameter of lm\.Engine"):
        Engine(TINY, corpus.vocab_size, compile_mode="fastest")


def test_dropout_is_seeded_without_touching_the_caller_rng(corpus):
    preset = get_preset(TINY, dropout=0.3, max_iters=10)
    engine = Engine(preset, corpus.vocab_size)
    sampler = WindowSampler([corpus.train[None]], [1.0], preset.block_size, "cpu")
    val = torch.from_numpy(validation_windows(corpus.val, preset.block_size, 512)
                           .astype(np.int64))
    state = torch.get_rng_state()
    engine.train(sampler, entropy=1, generation=2, val_windows=val)
    assert torch.equal(state, torch.get_rng_state())
    a = engine.state_dict()
    torch.manual_seed(12345)  # a caller's global seed must not matter
    engine.train(sampler, entropy=1, generation=2, val_windows=val)
    assert all(torch.equal(a[k], v) for k, v in engine.state_dict().items())


def test_preset_validation_message():
    with pytest.raises(ValueError, match="The 'batch_size' parameter of preset"):
        get_preset("cpu", batch_size=0)
    with pytest.raises(ValueError, match="Preset 'huge' unknown"):
        get_preset("huge")
