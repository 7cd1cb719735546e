"""Sampling: exact sliding-window conditioning, and draws that follow the model's probabilities."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import stats

from modelcollapse.lm.generate import Sampling, reference_logprobs, sample_streams, transform_logits
from modelcollapse.lm.gpt import GPT, GPTConfig


def model_with_sharp_conditionals(vocab: int = 4, block: int = 2, scale: float = 25.0,
                                  seed: int = 0) -> GPT:
    """A random tiny GPT whose next-token distributions depend strongly on the context."""
    cfg = GPTConfig(vocab_size=vocab, block_size=block, n_layer=1, n_head=2, n_embd=8,
                    dropout=0.0)
    model = GPT(cfg, generator=torch.Generator().manual_seed(seed)).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.mul_(scale)
    return model


@pytest.mark.parametrize("extra", [0, 5])
@pytest.mark.parametrize("sampling", [Sampling(), Sampling(temperature=0.7, top_k=5),
                                      Sampling(top_p=0.8)])
def test_fast_path_equals_one_forward_pass_per_token(extra, sampling):
    """Cached decoding (t ≤ block) and window recomputation (t > block) give the same
    log-probabilities as a full forward pass over each token's own window."""
    cfg = GPTConfig(vocab_size=9, block_size=6, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    model = GPT(cfg, generator=torch.Generator().manual_seed(5)).eval()
    res = sample_streams(model, 12, cfg.block_size + 1 + extra, start_probs=np.ones(9), seed=3,
                         sampling=sampling, batch=5, return_logprobs=True)
    ref = reference_logprobs(model, torch.from_numpy(res.tokens.astype(np.int64)), sampling)
    np.testing.assert_allclose(res.logprobs, ref.numpy(), rtol=1e-5, atol=1e-5)
    assert res.nll == pytest.approx(-res.logprobs.mean(), rel=1e-6)


def _joint_probs(model: GPT, x0: int, window_of_last: int) -> dict[tuple, float]:
    """P(x1, x2, x3 | x0), each token conditioned on its last ``window_of_last`` tokens."""
    vocab = model.config.vocab_size
    out = {}
    with torch.no_grad():
        for seq in itertools.product(range(vocab), repeat=3):
            full = (x0, *seq)
            prob = 1.0
            for t in range(1, 4):
                ctx = torch.tensor([full[max(0, t - window_of_last): t]])
                prob *= torch.softmax(model.next_token_logits(ctx).double(), -1)[0, full[t]].item()
            out[seq] = prob
    return out


def _chi_square_pvalue(tokens: np.ndarray, probs: dict[tuple, float]) -> float:
    n = len(tokens)
    counts = {}
    for row in map(tuple, tokens[:, 1:]):
        counts[row] = counts.get(row, 0) + 1
    keys = list(probs)
    expected = np.array([probs[k] * n for k in keys])
    observed = np.array([counts.get(k, 0) for k in keys], dtype=float)
    big = expected >= 5  # lump sparse cells so the chi-square approximation holds
    obs = np.append(observed[big], observed[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    return stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue


def test_sampled_streams_follow_model_probabilities():
    """Chi-square over the 64 continuations (x1, x2, x3) of x0 = 0, with block_size 2: x1 and
    x2 come from the cache, x3 from the slid window (x1, x2)."""
    model = model_with_sharp_conditionals()
    start = np.eye(4)[0]
    res = sample_streams(model, 40_000, 4, start_probs=start, seed=11, batch=20_000)
    assert np.all(res.tokens[:, 0] == 0)
    exact = _joint_probs(model, 0, window_of_last=2)
    assert max(exact.values()) < 0.5 and np.std(list(exact.values())) > 0.01  # not uniform
    assert _chi_square_pvalue(res.tokens, exact) > 1e-3
    # The test has power: conditioning x3 on x2 alone (a wrong window) is rejected.
    wrong = _joint_probs(model, 0, window_of_last=1)
    assert _chi_square_pvalue(res.tokens, wrong) < 1e-6


def test_same_seed_same_streams_and_start_distribution():
    model = model_with_sharp_conditionals(vocab=5, block=3)
    start = np.array([0.5, 0.0, 0.5, 0.0, 0.0])
    a = sample_streams(model, 3000, 4, start_probs=start, seed=1, batch=1000).tokens
    b = sample_streams(model, 3000, 4, start_probs=start, seed=1, batch=1000).tokens
    c = sample_streams(model, 3000, 4, start_probs=start, seed=2, batch=1000).tokens
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert set(np.unique(a[:, 0])) == {0, 2}
    share = (a[:, 0] == 0).mean()
    assert abs(share - 0.5) < 4 * np.sqrt(0.25 / 3000)


def test_transform_logits_temperature_top_k_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    plain = transform_logits(logits, Sampling()).exp()
    torch.testing.assert_close(plain, torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    hot = transform_logits(logits, Sampling(temperature=2.0)).exp()
    expected = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).sqrt()
    torch.testing.assert_close(hot, expected / expected.sum())
    top2 = transform_logits(logits, Sampling(top_k=2)).exp()
    torch.testing.assert_close(top2, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    # top_p = 0.8: 0.5 + 0.3 reaches 0.8, so the nucleus is the first two tokens.
    nucleus = transform_logits(logits, Sampling(top_p=0.8)).exp()
    torch.testing.assert_close(nucleus, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    nucleus = transform_logits(logits, Sampling(top_p=0.81)).exp()
    assert (nucleus > 0).sum() == 3
    with pytest.raises(ValueError, match="'temperature'"):
        Sampling(temperature=0.0)
