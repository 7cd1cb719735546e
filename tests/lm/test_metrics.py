"""Metrics: L1 between next-token distributions, bands, diversity of generated text."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from modelcollapse.lm.gpt import GPT, GPTConfig
from modelcollapse.lm.metrics import context_probs, diversity, l1_per_context, mean_band, unigram


def test_l1_per_context():
    p = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    q = np.array([[0.25, 0.25, 0.5], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(l1_per_context(p, q), [1.0, 0.0])


def test_mean_band_uses_seeds_when_there_are_several():
    rng = np.random.default_rng(0)
    one = rng.normal(1.0, 0.3, size=300)
    band = mean_band(one)
    assert band["se_over"] == "contexts"
    assert band["se"] == pytest.approx(one.std(ddof=1) / math.sqrt(300))
    several = np.stack([one, one + 0.2, one - 0.1])
    band = mean_band(several)
    assert band["se_over"] == "seeds"
    assert band["mean"] == pytest.approx(one.mean() + 0.1 / 3)
    assert band["se"] == pytest.approx(np.std([0.0, 0.2, -0.1], ddof=1) / math.sqrt(3))
    assert band["lo"] == pytest.approx(band["mean"] - 2 * band["se"])


def test_context_probs_are_softmax_of_the_last_position():
    model = GPT(GPTConfig(vocab_size=7, block_size=5, n_layer=1, n_head=1, n_embd=8,
                          dropout=0.0), generator=torch.Generator().manual_seed(0))
    ctx = np.random.default_rng(1).integers(0, 7, size=(9, 5))
    probs = context_probs(model, ctx, batch=4)
    logits, _ = model(torch.from_numpy(ctx))
    np.testing.assert_allclose(probs, torch.softmax(logits[:, -1].double(), -1).detach().numpy(),
                               atol=1e-6)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-12)


def test_diversity_counts_ngrams_within_streams():
    # Two streams "abab" and "aaaa" over vocabulary {a, b}.
    tokens = np.array([[0, 1, 0, 1], [0, 0, 0, 0]])
    d = diversity(tokens, 2, ns=(1, 2, 4))
    assert d["distinct_1"] == pytest.approx(2 / 8)
    assert d["distinct_2"] == pytest.approx(3 / 6)  # ab, ba, aa (no pair across streams)
    assert d["distinct_4"] == pytest.approx(2 / 2)
    assert d["unigram_entropy"] == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    capped = diversity(np.tile(tokens, (10, 1)), 2, max_tokens=8, ns=(2,))
    assert capped["tokens"] == 8 and capped["distinct_2"] == pytest.approx(3 / 6)


def test_unigram_mixture_weights_sources():
    a = np.zeros((1, 10), dtype=np.uint8)
    b = np.ones((2, 5), dtype=np.uint8)
    np.testing.assert_allclose(unigram([a, b], [3.0, 1.0], 3), [0.75, 0.25, 0.0])
