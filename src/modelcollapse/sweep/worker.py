"""One grid point on a worker process: simulate it and write its files.

:func:`_run_point` is what executors pickle and ship to workers, so it stays a module-level
function (importable as ``modelcollapse.sweep.worker._run_point``) taking one picklable task.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..api import simulate
from .spec import SweepPoint
from .store import DONE_FILE, POINTS_DIR, RESULT_FILES, _write_parquet
from .tables import generation_table, point_table


@dataclass(frozen=True)
class _PointTask:
    out: str
    point: SweepPoint
    store: str = "zarr"


def _run_point(task: _PointTask) -> dict[str, Any]:
    """Simulate one point and write its three files; the marker file goes last."""
    started, cpu_started = time.perf_counter(), time.process_time()
    point = task.point
    if point.spec.backend == "torch" and point.spec.device == "cpu":
        import torch

        torch.set_num_threads(1)  # one worker per core: intra-op threads would oversubscribe
    result = simulate(point.spec, progress=False)
    folder = Path(task.out) / POINTS_DIR / point.point_id
    _write_parquet(generation_table(result, point), folder / "generations.parquet")
    result.save(folder / RESULT_FILES[task.store])
    row = point_table(result, point, elapsed_s=time.perf_counter() - started,
                      cpu_s=time.process_time() - cpu_started)
    _write_parquet(row, folder / DONE_FILE)
    return row.to_pylist()[0]
