"""The sweep's output folder: its layout, atomic Parquet writes, the manifest that ties a
folder to one sweep, and the whole-grid tables (queries over them: :mod:`.query`)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..results import atomic_write_text, provenance
from ..rng import resolve_entropy
from .spec import SweepInputError, SweepPoint, SweepSpec

#: A point's files live in ``points/<id>/``; the marker file is written last.
POINTS_DIR = "points"
DONE_FILE = "point.parquet"
#: View name -> (whole-grid table, the per-point file it concatenates).
TABLES = {"points": ("points.parquet", DONE_FILE), "generations": ("generations.parquet",
                                                                 "generations.parquet")}
#: File name of a point's full Result per storage format (Result.save picks it by suffix).
RESULT_FILES = {"zarr": "result.zarr", "netcdf": "result.nc"}


def _write_parquet(table: pa.Table, path: Path) -> None:
    """Write via a temporary file in the same folder and a rename (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _is_finished(out: Path, point: SweepPoint) -> bool:
    return (out / POINTS_DIR / point.point_id / DONE_FILE).is_file()


def _prepare_folder(spec: SweepSpec, out: Path) -> int:
    """Check ``out`` holds nothing or the same sweep; record the spec; return the entropy.

    The same sweep means the same fixed fields, runs, generations and seed: axes may grow or
    shrink (points are keyed by coordinates), and an unseeded sweep reuses its recorded entropy.
    ``trajectories`` may change (it changes no number): each point's row records its own.
    """
    if out.exists() and not out.is_dir():
        raise SweepInputError(f"'out' must be a directory; {str(out)!r} is a file")
    manifest = out / "sweep.json"
    old = json.loads(manifest.read_text()) if manifest.is_file() else None
    if old is None and out.is_dir() and any(out.iterdir()):
        raise SweepInputError(f"'out' ({out}) is a non-empty folder that holds no sweep; "
                         f"choose an empty or new one")
    entropy = resolve_entropy(spec.seed if spec.seed is not None or old is None
                              else int(old["seed_entropy"]))
    identity = {"fixed": spec.model_dump(mode="json")["fixed"], "runs": spec.runs,
                "generations": spec.generations, "seed_entropy": str(entropy)}
    if old is not None:
        for key, value in identity.items():
            if old.get(key) != value:
                raise SweepInputError(f"'out' ({out}) holds a different sweep: '{key}' was "
                                 f"{old.get(key)!r}, now {value!r}; choose another folder")
    record = {**identity, "name": spec.name, "trajectories": spec.trajectories,
              "axes": spec.axis_values,
              "n_points": len(spec.grid()), "seed_rule": "sha256-coordinates-v1",
              "provenance": provenance()}
    atomic_write_text(manifest, json.dumps(record, indent=2))
    return entropy


def _consolidate(out: Path, points: Sequence[SweepPoint]) -> None:
    """Concatenate the per-point tables in grid order into the two tidy tables."""
    for table, part in TABLES.values():
        pieces = [pq.read_table(out / POINTS_DIR / p.point_id / part) for p in points]
        _write_parquet(pa.concat_tables(pieces), out / table)
