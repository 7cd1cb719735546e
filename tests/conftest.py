"""Shared fixtures: small distributions and the tiny Shakespeare path (when present)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


def _interpret_triton_without_cuda() -> None:
    """Without a CUDA device, Triton kernels (the fused loop step) can only run in Triton's
    interpreter, which must be chosen before Triton is imported: here, ahead of every test
    module. With a device the compiled kernels are tested instead."""
    try:
        import torch
    except ImportError:
        return
    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")


_interpret_triton_without_cuda()

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


@pytest.fixture
def p0_fig6() -> np.ndarray:
    """The paper's Fig. 3/6 p(0): s = 600, support 52, S0 = 0.1."""
    from modelcollapse.distributions import target_distribution

    return target_distribution(600, 52, 0.1, seed=0)


@pytest.fixture
def p0_small() -> np.ndarray:
    """A small p(0) (s = 8, support 5, S0 = 0.3) for chi-square and exact checks."""
    from modelcollapse.distributions import target_distribution

    return target_distribution(8, 5, 0.3, seed=2)


@pytest.fixture
def device_memory_for(monkeypatch):
    """``device_memory_for(rows, generation)``: from then on, the torch loop runs out of
    device memory at that generation of any chunk of more than ``rows`` rows (torch's own
    error, simulated)."""
    import torch

    from modelcollapse.engine import loop as engine_loop

    advance = engine_loop._ChunkLoop.advance

    def limit(rows: int, generation: int) -> None:
        def tight(self, m, collapsed, dirac):
            if m == generation and self.chunk.record_on_device.rows > rows:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
            return advance(self, m, collapsed, dirac)

        monkeypatch.setattr(engine_loop._ChunkLoop, "advance", tight)

    return limit

