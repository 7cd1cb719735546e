"""Which torch device and which route a plan gets (no Plan of its own: the plan asks)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..._validation import check_choice
from ...scenarios import Scenario
from .fused import use_fused

__all__ = ["resolve_device", "torch_route"]


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:<index>"`` as a torch device that exists here."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"The 'device' parameter of simulate must be 'cpu', 'cuda' or "
                         f"'cuda:<index>'. Got {device!r} instead.") from None
    check_choice(dev.type, "device", ("cpu", "cuda"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"The 'device' parameter of simulate is {device!r}, but no CUDA "
                         f"device is available to torch {torch.__version__}.")
    return dev


def torch_route(fused: bool | None, scenario: Scenario, names: Sequence[str], counts: bool,
                device: str, *, allowed: bool = True) -> str:
    """"fused" where the Triton spans run (see :func:`.fused.use_fused`; never when a
    caller needs every model, ``allowed`` False), else "generic"."""
    if not allowed:
        if fused:
            raise ValueError("The 'fused' parameter is True, but snapshots need every model, "
                             "which the fused spans do not build.")
        return "generic"
    return "fused" if use_fused(fused, scenario, names, counts, torch.device(device)) \
        else "generic"
