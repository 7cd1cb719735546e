"""Reference implementations the engines are measured against.

``naive_loop`` is the loop as a researcher writes it: Python loops over runs and generations,
one ``Generator.multinomial(n, p)`` per step, a run stopping when it collapses; it records
σ_m and ‖p(m) − p(1)‖₁ like the engines do. ``batched_multinomial_loop`` advances all runs at
once with numpy's batched multinomial (one pass over all s tokens of every run).
``uniform_floor`` is the physical reference: drawing the uniforms the loop needs at the least.
"""

from __future__ import annotations

import numpy as np


def naive_loop(p0: np.ndarray, *, n: int, N: int | None, runs: int, generations: int,
               seed: int) -> np.ndarray:
    """Per-run Python loop; returns the collapse time per run (NaN if censored)."""
    rng = np.random.default_rng(seed)
    times = np.full(runs, np.nan)
    for r in range(runs):
        corpus = rng.multinomial(N, p0) if N else None
        p = (corpus / N) if N else rng.multinomial(n, p0) / n
        first = p
        sigma = np.empty(generations + 1)
        l1 = np.empty(generations + 1)
        for m in range(1, generations + 1):
            if m > 1:
                draw = rng.multinomial(n, p)
                p = (corpus + draw) / (N + n) if N else draw / n
            sigma[m] = p @ p
            l1[m] = np.abs(p - first).sum()
            if p.max() == 1.0:
                times[r] = m
                break
    return times


def batched_multinomial_loop(p0: np.ndarray, *, n: int, N: int | None, runs: int,
                             generations: int, seed: int) -> np.ndarray:
    """All runs at once with one batched ``multinomial`` per generation (no early stop)."""
    rng = np.random.default_rng(seed)
    corpus = rng.multinomial(N, np.broadcast_to(p0, (runs, p0.size))) if N else None
    p = corpus / N if N else rng.multinomial(n, np.broadcast_to(p0, (runs, p0.size))) / n
    first = p
    for _ in range(2, generations + 1):
        p = np.clip(p, 0, None)
        p /= p.sum(axis=1, keepdims=True)
        draw = rng.multinomial(n, p)
        p = (corpus + draw) / (N + n) if N else draw / n
        np.einsum("ij,ij->i", p, p)
        np.abs(p - first).sum(axis=1)
    return p


def uniform_floor(count: int, seed: int = 0) -> None:
    """Draw ``count`` uniforms with the engines' generator (PCG64DXSM) into one reused buffer
    of 10^6: the generator's own time, without allocating (or faulting in) fresh memory."""
    rng = np.random.Generator(np.random.PCG64DXSM(seed))
    buffer = np.empty(min(count, 1_000_000))
    left = count
    while left >= buffer.size > 0:
        rng.random(out=buffer)
        left -= buffer.size
    if left:
        rng.random(out=buffer[:left])
