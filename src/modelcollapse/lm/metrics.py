"""Metrics of the transformer loop (paper §4.1, Fig. 5) and of its synthetic text.

* ``context_probs``: next-token distributions p(m)(· | c) at fixed contexts c, shape
  (contexts, vocab); the contexts are sampled once from p(0) and reused for every m.
* ``l1_per_context``: ‖p(m)(· | c) − p(k)(· | c)‖₁ per context; Fig. 5 (left) plots its mean
  over 300 contexts with k = 1 (``l1_to_first``); k = 0 gives ``l1_to_true``.
* ``mean_band``: mean and standard error over contexts (and seeds), for the band.
* ``diversity``: distinct-n (distinct n-grams / n-grams, within streams) and the entropy of the
  unigram frequencies of a token array.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .gpt import GPT

__all__ = [
    "DISTINCT_N",
    "context_probs",
    "diversity",
    "l1_per_context",
    "mean_band",
    "unigram",
]

#: n-gram orders reported as distinct-n.
DISTINCT_N = (1, 2, 4, 8)


@torch.no_grad()
def context_probs(model: GPT, contexts: np.ndarray, *, batch: int = 1024,
                  autocast: Callable[[], contextlib.AbstractContextManager] | None = None
                  ) -> np.ndarray:
    """p(· | context) of the token after each context (n, T), T ≤ block_size → (n, V)."""
    model.eval()
    device = next(model.parameters()).device
    amp = autocast or contextlib.nullcontext
    ctx = torch.as_tensor(np.asarray(contexts, dtype=np.int64), device=device)
    out = []
    for i in range(0, len(ctx), batch):
        with amp():
            logits = model.next_token_logits(ctx[i: i + batch])
        out.append(torch.softmax(logits.double(), dim=-1).cpu().numpy())
    return np.concatenate(out)


def l1_per_context(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """‖p(· | c) − q(· | c)‖₁ for each context: (n, V), (n, V) → (n,)."""
    return np.abs(np.asarray(p) - np.asarray(q)).sum(axis=-1)


def mean_band(values: np.ndarray) -> dict[str, float]:
    """Mean and band of per-context values (seeds, contexts) or (contexts,).

    With one seed the standard error is over contexts; with several it is over the seeds'
    means (each seed is an independent replicate of the whole loop, p(0) included, so the
    contexts of one seed are not independent of each other's models).
    """
    v = np.atleast_2d(np.asarray(values, dtype=np.float64))
    seed_means = v.mean(axis=1)
    mean = float(seed_means.mean())
    if len(seed_means) >= 2:
        se = float(seed_means.std(ddof=1) / np.sqrt(len(seed_means)))
        over = "seeds"
    else:
        se = float(v.std(ddof=1) / np.sqrt(v.shape[1])) if v.shape[1] > 1 else float("nan")
        over = "contexts"
    return {"mean": mean, "se": se, "lo": mean - 2 * se, "hi": mean + 2 * se, "se_over": over}


def unigram(sources: Sequence[np.ndarray], weights: Sequence[float], vocab_size: int
            ) -> np.ndarray:
    """Unigram frequencies (V,) of a weighted mixture of token arrays (weights per source)."""
    total = np.zeros(vocab_size)
    for src, w in zip(sources, weights, strict=True):
        counts = np.bincount(np.ravel(src), minlength=vocab_size)[:vocab_size]
        total += w * counts / max(1, counts.sum())
    return total / total.sum()


def _ngram_codes(tokens: np.ndarray, n: int, base: int) -> np.ndarray:
    """Integer code of every n-gram inside each stream of tokens (S, L) → (S·(L−n+1),)."""
    t = tokens.astype(np.int64)
    width = t.shape[1] - n + 1
    codes = np.zeros((t.shape[0], width), dtype=np.int64)
    for i in range(n):
        codes = codes * base + t[:, i: i + width]
    return codes.ravel()


def diversity(tokens: np.ndarray, vocab_size: int, *, max_tokens: int | None = None,
              ns: Sequence[int] = DISTINCT_N) -> dict[str, float]:
    """Distinct-n for n in ``ns`` and unigram entropy (nats) of token streams (S, L).

    Distinct-n depends on the sample size, so it is computed on the first ``max_tokens``
    tokens (whole streams), making corpora of different sizes comparable.
    """
    t = np.atleast_2d(np.asarray(tokens))
    if max_tokens is not None and t.size > max_tokens:
        t = t[: max(1, max_tokens // t.shape[1])]
    if vocab_size ** max(ns) >= 2 ** 62:
        raise ValueError(f"distinct-{max(ns)} codes overflow int64 for vocabulary {vocab_size}.")
    out: dict[str, float] = {"tokens": float(t.size)}
    for n in ns:
        if t.shape[1] >= n:
            codes = _ngram_codes(t, n, vocab_size)
            out[f"distinct_{n}"] = len(np.unique(codes)) / len(codes)
    freq = np.bincount(t.ravel(), minlength=vocab_size) / t.size
    nz = freq[freq > 0]
    out["unigram_entropy"] = float(-(nz * np.log(nz)).sum())
    return out
