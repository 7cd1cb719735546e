"""Atomic files for the per-generation checkpoints of the transformer loop.

Everything is written to a temporary file in the target directory and renamed into place,
so a killed run leaves either the old file or the new one, never half of one. Weights are a
plain ``state_dict`` (no optimizer, no pickled classes) and load with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np
import torch

__all__ = [
    "atomic_write",
    "copy_file",
    "load_array",
    "load_weights",
    "read_json",
    "recipe_hash",
    "save_array",
    "save_weights",
    "write_json",
]


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(fh)`` on a temporary file next to ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, obj: object) -> Path:
    text = json.dumps(obj, indent=1, allow_nan=True, sort_keys=False) + "\n"
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def read_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save_array(path: str | Path, array: np.ndarray) -> Path:
    return atomic_write(path, lambda fh: np.save(fh, np.asarray(array), allow_pickle=False))


def load_array(path: str | Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def save_weights(path: str | Path, state: dict[str, torch.Tensor]) -> Path:
    return atomic_write(path, lambda fh: torch.save(state, fh))


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def copy_file(src: str | Path, dst: str | Path) -> Path:
    with open(src, "rb") as source:
        return atomic_write(dst, lambda fh: shutil.copyfileobj(source, fh))


def recipe_hash(obj: object) -> str:
    """A short stable hash of a JSON-able description (what produced a checkpoint)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]
