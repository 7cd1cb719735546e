"""The decoder: shapes, initialisation from a generator, and an exact key/value cache."""

from __future__ import annotations

import pytest
import torch

from modelcollapse.lm.gpt import GPT, GPTConfig, KVCache


def small_model(seed: int = 0, **kw) -> GPT:
    cfg = GPTConfig(**{"vocab_size": 11, "block_size": 8, "n_layer": 2, "n_head": 2,
                       "n_embd": 16, "dropout": 0.0, **kw})
    return GPT(cfg, generator=torch.Generator().manual_seed(seed)).eval()


def test_forward_shapes_and_loss():
    model = small_model()
    idx = torch.randint(0, 11, (3, 8), generator=torch.Generator().manual_seed(1))
    logits, loss = model(idx, idx)
    assert logits.shape == (3, 8, 11)
    assert loss.shape == () and loss.item() > 0
    assert model.next_token_logits(idx).shape == (3, 11)
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros((1, 9), dtype=torch.long))


def test_same_generator_seed_same_weights():
    a, b, c = small_model(3), small_model(3), small_model(4)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.wte.weight, c.wte.weight)
    assert a.lm_head.weight is a.wte.weight  # tied


def test_decode_steps_equal_full_forward():
    """Incremental decoding with the cache reproduces every position of a full pass."""
    model = small_model()
    idx = torch.randint(0, 11, (4, 8), generator=torch.Generator().manual_seed(2))
    full, _ = model(idx)
    cache = KVCache(model.config, 4)
    with torch.no_grad():
        steps = torch.stack([model.decode_step(idx[:, t], t, cache) for t in range(8)], dim=1)
    torch.testing.assert_close(steps, full, rtol=1e-5, atol=1e-5)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="multiple of n_head"):
        GPTConfig(vocab_size=5, n_embd=10, n_head=3)
    with pytest.raises(ValueError, match="'dropout'"):
        GPTConfig(vocab_size=5, dropout=1.5)


def test_flops_per_token_counts_matmuls():
    model = small_model()
    n = model.num_params()
    assert n == sum(p.numel() for p in model.parameters()) - 8 * 16
    assert model.flops_per_token() == 6 * n + 12 * 2 * 8 * 16
