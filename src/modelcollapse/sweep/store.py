"""The sweep's output folder: its layout, atomic Parquet writes, the manifest that ties a
folder to one sweep, what counts as a finished point, and the whole-grid tables (queries
over them: :mod:`.query`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .._files import atomic_write, atomic_write_text
from ..results import Result, provenance
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


#: Why a point is not finished when it was never run (or was killed before its marker).
NOT_RUN = "not run"


def _write_parquet(table: pa.Table, path: Path) -> None:
    """Write via a temporary file in the same folder and a rename (atomic on POSIX)."""
    atomic_write(path, lambda fh: pq.write_table(table, fh))


def _read_parquet(path: Path) -> pa.Table:
    """A Parquet file read whole (a truncated one fails here, not in a query)."""
    return pq.read_table(path)


def _unfinished_reason(out: Path, point: SweepPoint) -> str | None:
    """None when ``point`` is finished in ``out``: its marker and its generations table read
    back and name it, and its result store loads whole (Result.check); else why not:
    :data:`NOT_RUN`, or what is damaged."""
    folder = out / POINTS_DIR / point.point_id
    if not (folder / DONE_FILE).is_file():
        return NOT_RUN
    for name in (DONE_FILE, TABLES["generations"][1]):
        try:
            table = _read_parquet(folder / name)
        except (OSError, ValueError, pa.ArrowException) as exc:
            return f"{name} does not read ({type(exc).__name__})"
        ids = set(table.column("point_id").to_pylist()) if "point_id" in table.column_names \
            else set()
        if table.num_rows == 0 or ids != {point.point_id}:
            return f"{name} does not hold this point's rows"
    stores = [folder / name for name in RESULT_FILES.values() if (folder / name).exists()]
    if not stores:
        return "its result store is missing"
    try:
        Result.check(stores[0])
    except ValueError as exc:
        return getattr(exc, "summary", str(exc))
    return None


def _is_finished(out: Path, point: SweepPoint) -> bool:
    return _unfinished_reason(out, point) is None


def _prepare_folder(spec: SweepSpec, out: Path) -> int:
    """Check ``out`` holds nothing or the same sweep; record the spec; return the entropy.

    The same sweep means the same fixed fields, runs, generations and seed: axes may grow or
    shrink (points are keyed by coordinates), and an unseeded sweep reuses its recorded entropy.
    ``trajectories`` may change (it changes no number): each point's row records its own.
    """
    if out.exists() and not out.is_dir():
        raise SweepInputError(f"'out' must be a directory; {str(out)!r} is a file")
    manifest = out / "sweep.json"
    old = _read_manifest(manifest) if manifest.is_file() else None
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


def _read_manifest(manifest: Path) -> dict:
    """The recorded sweep, or one SweepInputError naming the file: without it the folder's
    sweep (its entropy, when unseeded) is unknown, so nothing in it can be trusted or reused."""
    try:
        old = json.loads(manifest.read_text(encoding="utf-8"))
        if not isinstance(old, dict):
            raise ValueError("not a JSON object")
        int(old["seed_entropy"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        why = "no seed_entropy" if isinstance(exc, KeyError) else " ".join(str(exc).split())
        raise SweepInputError(f"{manifest} is damaged ({why}); restore it, or choose another "
                              f"folder for 'out'") from None
    return old


def _consolidate(out: Path, points: Sequence[SweepPoint]) -> None:
    """Concatenate the per-point tables in grid order into the two tidy tables."""
    for table, part in TABLES.values():
        pieces = [pq.read_table(out / POINTS_DIR / p.point_id / part) for p in points]
        _write_parquet(pa.concat_tables(pieces), out / table)
