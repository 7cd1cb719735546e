"""Atomic files for the per-generation checkpoints of the transformer loop, and the test of
whether a checkpoint is whole.

Everything is written to a temporary file in the target directory and renamed into place
(:func:`modelcollapse._files.atomic_write`), so a killed run leaves either the old file or
the new one, never half of one, and the next save of that file removes the killed one's
temporary. Weights are a plain ``state_dict`` (no optimizer, no pickled classes) and load
with ``weights_only=True``.

A stage of a generation (its model, its corpus) is finished when its JSON, written last,
reads and each of its files is whole: of the size and CRC-32 the JSON records for it
(:func:`file_record`, :func:`stage_finished`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import numpy as np
import torch

from .._files import atomic_write as _atomic_write

__all__ = [
    "atomic_write",
    "copy_file",
    "file_record",
    "load_array",
    "load_weights",
    "read_json",
    "recipe_hash",
    "save_array",
    "save_weights",
    "stage_finished",
    "write_json",
]


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(fh)`` on a temporary file next to ``path``, then rename it to ``path``;
    synced to disk first, since a checkpoint stands for minutes or hours of training."""
    return _atomic_write(path, write, fsync=True)


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


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            crc = zlib.crc32(block, crc)
    return crc


def file_record(paths: Sequence[str | Path]) -> dict[str, dict[str, int]]:
    """What a stage's files are when whole, for its JSON under ``"files"``: file name ->
    ``{"bytes": size, "crc32": checksum}``."""
    return {Path(p).name: {"bytes": Path(p).stat().st_size, "crc32": _crc32(Path(p))}
            for p in paths}


def _loads(path: Path) -> bool:
    """Whether a checkpoint file written before records existed reads: .npy by its header
    and length (memory-mapped, not read), .pt whole, anything else by being there."""
    try:
        if path.suffix == ".npy":
            np.load(path, mmap_mode="r", allow_pickle=False)
        elif path.suffix == ".pt":
            load_weights(path)
        return path.is_file()
    except MemoryError:
        raise
    except Exception:  # a damaged file: the readers raise anything
        return False


def stage_finished(meta: str | Path, files: Sequence[str | Path]) -> bool:
    """Whether the stage whose JSON is ``meta`` (written after ``files``) is whole: ``meta``
    reads as a JSON object, and each of ``files`` is there and, where ``meta`` records it
    under ``"files"`` (:func:`file_record`), of the recorded size and CRC-32. Files a JSON
    does not record (checkpoints written before records existed) must load. A stage that is
    not finished is trained or sampled again: every draw is keyed by (seed, purpose,
    generation), so it comes out the same."""
    meta = Path(meta)
    try:
        record = read_json(meta)
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict):
        return False
    recorded = record.get("files") if isinstance(record.get("files"), dict) else {}
    for path in map(Path, files):
        want = recorded.get(path.name)
        if want is None:
            if not _loads(path):
                return False
        elif not path.is_file() or path.stat().st_size != want.get("bytes") \
                or _crc32(path) != want.get("crc32"):
            return False
    return True
