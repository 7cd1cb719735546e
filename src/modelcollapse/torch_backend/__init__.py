"""PyTorch backend of the statistical loop, on the CPU or a CUDA device.

``run_loop(..., backend="torch", device="cuda")`` lands in :func:`run_loop_torch`: the same
scenarios, metrics, stopping rule and :class:`~modelcollapse.results.Result` as the numpy
engine, with the loop state on the device. Each backend is reproducible on its own device
(same seed, same numbers, whatever the chunking); the two agree in distribution.

Modules: ``streams`` (one generator per run block), ``draws`` (index draws, inverse CDF,
binomial trees), ``history`` (what scenarios draw on), ``metrics`` (dense and sparse
metric routes), ``loop`` (the generation loop).
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("The 'backend' parameter of simulate is 'torch', which needs PyTorch: "
                      "pip install 'modelcollapse[lm]'.") from exc

from .loop import REPRESENTATIONS, resolve_device, run_loop_torch

__all__ = ["REPRESENTATIONS", "resolve_device", "run_loop_torch"]
