"""A GPT-2-style decoder (paper §4.1, appendix C, Table 1), readable in one sitting.

LayerNorm → causal self-attention → MLP → Block → GPT, with learned absolute position
embeddings and the token embedding tied to the output head, as in nanoGPT's "vanilla"
architecture the paper uses. Besides the training forward pass the model has

* :meth:`GPT.next_token_logits` — logits of the token after each row of ``idx`` (one window);
* :meth:`GPT.decode_step` — one step of incremental decoding with a key/value cache.

Positions are absolute, so the cache is exact only while a stream fits in one window
(``block_size`` tokens): once the window slides, every position of it changes and its keys
and values must be recomputed (see :mod:`modelcollapse.lm.generate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .._validation import check_float, check_int

__all__ = ["GPT", "GPTConfig", "KVCache"]


@dataclass(frozen=True)
class GPTConfig:
    """Architecture of the decoder (Table 1 of the paper gives the ``paper`` preset's values)."""

    vocab_size: int          # characters in the corpus (65 for tiny Shakespeare)
    block_size: int = 128    # context length: tokens a prediction can see
    n_layer: int = 8         # transformer blocks
    n_head: int = 4          # attention heads per block
    n_embd: int = 256        # width of the residual stream
    dropout: float = 0.2     # on embeddings, attention weights and residual branches
    bias: bool = False       # biases in Linear and LayerNorm (nanoGPT's default: none)

    def __post_init__(self):
        where = "GPTConfig"
        check_int(self.vocab_size, "vocab_size", low=1, where=where)
        check_int(self.block_size, "block_size", low=1, where=where)
        check_int(self.n_layer, "n_layer", low=1, where=where)
        check_int(self.n_head, "n_head", low=1, where=where)
        check_int(self.n_embd, "n_embd", low=1, where=where)
        check_float(self.dropout, "dropout", low=0.0, high=0.99, where=where)
        if self.n_embd % self.n_head:
            raise ValueError(f"The 'n_embd' parameter of GPTConfig must be a multiple of "
                             f"n_head={self.n_head}. Got {self.n_embd} instead.")


class KVCache:
    """Keys and values of every layer for ``batch`` streams of up to ``block_size`` tokens.

    Layer l holds two tensors (batch, n_head, block_size, head_size); slot t holds window
    position t. They are allocated at the first write, in the dtype the layer computes in
    (bf16 under autocast, float32 otherwise).
    """

    def __init__(self, config: GPTConfig, batch: int):
        self.shape = (batch, config.n_head, config.block_size, config.n_embd // config.n_head)
        self.keys: list[torch.Tensor | None] = [None] * config.n_layer
        self.values: list[torch.Tensor | None] = [None] * config.n_layer

    def layer(self, i: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.keys[i] is None:
            self.keys[i] = torch.empty(self.shape, device=like.device, dtype=like.dtype)
            self.values[i] = torch.empty(self.shape, device=like.device, dtype=like.dtype)
        return self.keys[i], self.values[i]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 × (B, T, C)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        return q, k, v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self._heads(x)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))

    def step(self, x: torch.Tensor, pos: int, cache: KVCache, layer: int) -> torch.Tensor:
        """One new token per stream at window position ``pos``; x: (B, 1, C)."""
        B, _, C = x.shape
        q, k, v = self._heads(x)  # (B, nh, 1, hs)
        keys, values = cache.layer(layer, k)  # (B, nh, block_size, hs)
        keys[:, :, pos] = k[:, :, 0]
        values[:, :, pos] = v[:, :, 0]
        # The new token attends to positions 0 … pos: no mask needed.
        y = F.scaled_dot_product_attention(q, keys[:, :, : pos + 1], values[:, :, : pos + 1])
        y = y.transpose(1, 2).reshape(B, 1, C)  # (B, 1, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))  # (B, T, C)


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

    def step(self, x: torch.Tensor, pos: int, cache: KVCache, layer: int) -> torch.Tensor:
        x = x + self.attn.step(self.ln_1(x), pos, cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Decoder-only transformer over a character vocabulary.

    ``forward(idx, targets)`` maps token ids (B, T) with T ≤ block_size to logits (B, T, V)
    and, given targets (B, T), the mean cross-entropy in nats (targets −1 are ignored).
    """

    def __init__(self, config: GPTConfig, *, generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying (as GPT-2 and nanoGPT): the output head reads the token embedding.
        self.wte.weight = self.lm_head.weight
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """GPT-2 initialisation, N(0, 0.02²), with residual projections scaled by 1/√(2 L).

        Reinitialising in place (rather than building a new model) lets one compiled
        model serve every generation of a run.
        """
        std_proj = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                std = std_proj if name.endswith("c_proj") else 0.02
                if module is not self.lm_head:  # tied to wte, initialised below
                    nn.init.normal_(module.weight, 0.0, std, generator=generator)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(self.wte.weight, 0.0, 0.02, generator=generator)
        nn.init.normal_(self.wpe.weight, 0.0, 0.02, generator=generator)

    def num_params(self, *, non_embedding: bool = True) -> int:
        """Parameter count; without the position table by default (it costs no matmul FLOPs)."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding else n

    def flops_per_token(self) -> float:
        """Training FLOPs per token, 6 N + 12 L T C (forward + backward, PaLM appendix B)."""
        c = self.config
        return 6 * self.num_params() + 12 * c.n_layer * c.block_size * c.n_embd

    def _trunk(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        if T > self.config.block_size:
            raise ValueError(f"Sequence of length {T} exceeds block_size "
                             f"{self.config.block_size}.")
        pos = torch.arange(T, device=idx.device)  # (T,)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)  # (B, T, C)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.lm_head(self._trunk(idx))  # (B, T, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1),
                               ignore_index=-1)
        return logits, loss

    def next_token_logits(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (B, V) of the token that follows each row of idx (B, T), T ≤ block_size."""
        return self.lm_head(self._trunk(idx)[:, -1])  # (B, V)

    def decode_step(self, token: torch.Tensor, pos: int, cache: KVCache) -> torch.Tensor:
        """Feed token (B,) at window position ``pos`` (0 ≤ pos < block_size), with positions
        0 … pos−1 already in ``cache``; return logits (B, V) of the token at ``pos + 1``."""
        x = self.wte(token[:, None]) + self.wpe.weight[pos]  # (B, 1, C)
        for layer, block in enumerate(self.blocks):
            x = block.step(x, pos, cache, layer)
        return self.lm_head(self.ln_f(x[:, 0]))  # (B, V)
