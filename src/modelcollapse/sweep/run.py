"""Running a sweep: validate the request, skip finished points (those whose files read back
whole), run the others longest first on an executor, and consolidate the tables."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Sequence
from concurrent.futures import BrokenExecutor, Executor, as_completed
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from tqdm import tqdm

from .._files import remove_stale_temps
from .._validation import InputError
from .executors import open_executor
from .spec import SweepInputError, SweepPoint, SweepSpec, _label, load_sweep_spec
from .store import (
    NOT_RUN,
    POINTS_DIR,
    RESULT_FILES,
    TABLES,
    _consolidate,
    _prepare_folder,
    _unfinished_reason,
)
from .worker import _PointTask, _run_point


@dataclass(frozen=True)
class SweepOutcome:
    """What a sweep did: where, how many points it ran and how many it found finished."""

    out: Path
    n_points: int
    n_skipped: int
    n_run: int
    elapsed_s: float
    seed_entropy: int

    def points(self):
        """The points table as a pandas DataFrame (one row per grid point)."""
        return pq.read_table(self.out / TABLES["points"][0]).to_pandas()

    def generations(self):
        """The generations table as a pandas DataFrame (one row per point × generation)."""
        return pq.read_table(self.out / TABLES["generations"][0]).to_pandas()


def run_sweep(spec: SweepSpec | str | Path, out: str | Path, *,
              executor: str | Executor = "local", scheduler: str | None = None,
              workers: int | None = None, store: str = "zarr",
              progress: bool | None = None) -> SweepOutcome:
    """Run every unfinished point of ``spec`` and write the tables into folder ``out``.

    ``executor`` is ``"local"``, ``"dask"`` or any ``concurrent.futures.Executor`` (left open
    for its owner to close); ``scheduler`` is a Dask scheduler address. ``store`` is the format
    of each point's full result: ``"zarr"`` (a folder, compressed) or ``"netcdf"`` (one file,
    for filesystems that dislike many small files). Points already finished in ``out`` (their
    tables read back and their result loads whole) are skipped; a damaged point runs again,
    with the same numbers. The result does not depend on the executor or on ``workers``.
    """
    spec = load_sweep_spec(spec) if isinstance(spec, (str, Path)) else spec
    if store not in RESULT_FILES:
        raise SweepInputError(f"The 'store' parameter of run_sweep must be one of "
                              f"{list(RESULT_FILES)}. Got {store!r} instead.")
    if isinstance(executor, Executor) and (scheduler is not None or workers is not None):
        raise SweepInputError("an Executor instance and 'scheduler' or 'workers' conflict: "
                              "the executor already has its workers")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise SweepInputError(f"The 'workers' parameter of run_sweep must be an int in the range "
                         f"[1, inf). Got {workers!r} instead.")
    started = time.perf_counter()
    out = Path(out)
    remove_stale_temps(out)  # what killed saves left, before the folder is judged
    entropy = _prepare_folder(spec, out)
    points = spec.points(entropy)
    finished = _finished_points(out, points)
    pending = sorted((p for p in points if p.point_id not in finished),
                     key=lambda p: (-p.cost, p.index))
    if pending:
        for table, _ in TABLES.values():
            (out / table).unlink(missing_ok=True)  # stale until the grid completes again
        for p in pending:  # half-written files of a killed run
            shutil.rmtree(out / POINTS_DIR / p.point_id, ignore_errors=True)
        bar = tqdm(total=len(points), initial=len(finished), unit="point", desc="sweep",
                   file=sys.stderr, disable=None if progress is None else not progress)
        try:
            if isinstance(executor, Executor):
                _drain(executor, out, pending, store, bar)
            else:
                with open_executor(executor, scheduler=scheduler, workers=workers) as pool:
                    _drain(pool, out, pending, store, bar)
        finally:
            bar.close()
    _consolidate(out, points)
    return SweepOutcome(out, len(points), len(finished), len(pending),
                        time.perf_counter() - started, entropy)


def _finished_points(out: Path, points: Sequence[SweepPoint]) -> set[str]:
    """The ids of the points finished in ``out``; one line on stderr per damaged point."""
    finished = set()
    for point in points:
        why = _unfinished_reason(out, point)
        if why is None:
            finished.add(point.point_id)
        elif why != NOT_RUN:
            print(f"sweep: point {_label(point.coords)} is damaged ({why}); running it again",
                  file=sys.stderr)
    return finished


def _drain(executor: Executor, out: Path, pending: Sequence[SweepPoint], store: str,
           bar) -> None:
    futures = {executor.submit(_run_point, _PointTask(str(out), p, store)): p for p in pending}
    try:
        for future in as_completed(futures):
            try:
                future.result()
            except BrokenExecutor as exc:
                raise RuntimeError(f"a worker process died ({exc}); it may have run out of "
                                   f"memory, or a script started the sweep without the "
                                   f"'if __name__ == \"__main__\":' guard") from exc
            except InputError as exc:  # a point the machine cannot run: the user's to fix
                raise InputError(f"grid point {_label(futures[future].coords)}: "
                                 f"{exc}") from exc
            except Exception as exc:
                raise RuntimeError(f"grid point {_label(futures[future].coords)} failed: "
                                   f"{type(exc).__name__}: {exc}") from exc
            bar.update(1)
    finally:
        for future in futures:
            future.cancel()
