"""Kept trajectories: every generation's metrics of runs 0 … k − 1, in memory or on disk.

The engines run a chunk of runs through every generation, then the next chunk. The kept rows
of a chunk are written a *window* of generations at a time (:class:`TrajectoryWindows`): in
memory the window is every generation and a view of the result's array, so nothing is copied;
streamed to a Zarr store (:class:`ZarrTrajectories`) the window is as wide as the memory
budget allows, and each finished window is written to its region of the store. A row that
stops (absorbed) holds its last metrics from then on: they fill the rest of its window and
every later window.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["MemoryTrajectories", "TrajectoryWindows", "ZarrTrajectories"]


class MemoryTrajectories:
    """Trajectories held in one array (metrics, kept rows, G + 1)."""

    def __init__(self, n_metrics: int, kept_rows: int, n_generations: int):
        self.array = np.full((n_metrics, kept_rows, n_generations + 1), np.nan)
        self.n_generations = n_generations

    def window_width(self, n_rows: int) -> int:
        return self.n_generations + 1

    def window(self, rows: slice, columns: slice) -> np.ndarray:
        return self.array[:, rows, columns]

    def commit(self, rows: slice, columns: slice, values: np.ndarray) -> None:
        """Nothing to do: the window is a view of the array."""


class ZarrTrajectories:
    """Trajectories streamed to ``<metric>_trajectory`` arrays of a Zarr v3 store, dims
    (trajectory_run, context, generation), as :class:`~modelcollapse.results.Result` lays
    them out. A window holds at most ``memory_bytes``."""

    def __init__(self, store: str | Path, names: Sequence[str], kept_runs: int,
                 n_contexts: int, n_generations: int, memory_bytes: float):
        import zarr

        self.names, self.n_contexts = tuple(names), n_contexts
        self.n_generations, self.memory_bytes = n_generations, memory_bytes
        group = zarr.open_group(os.fspath(store), mode="a", zarr_format=3)
        # Chunks of about 8 MB: whole runs and contexts, a slab of generations.
        span = max(1, min(n_generations + 1, (1 << 20) // max(1, n_contexts * 64)))
        runs = max(1, min(kept_runs, (1 << 20) // (n_contexts * span)))
        self.arrays = [group.create_array(
            f"{name}_trajectory", shape=(kept_runs, n_contexts, n_generations + 1),
            chunks=(runs, n_contexts, span), dtype=bool if name == "collapsed" else "f8",
            fill_value=False if name == "collapsed" else np.nan,
            dimension_names=("trajectory_run", "context", "generation"))
            for name in self.names]

    def window_width(self, n_rows: int) -> int:
        per_generation = 8 * len(self.names) * max(1, n_rows)
        return int(max(1, min(self.n_generations + 1, self.memory_bytes // per_generation)))

    def window(self, rows: slice, columns: slice) -> np.ndarray:
        return np.full((len(self.names), rows.stop - rows.start,
                        columns.stop - columns.start), np.nan)

    def commit(self, rows: slice, columns: slice, values: np.ndarray) -> None:
        """Write a finished window; ``rows`` (whole runs) become runs of the store."""
        runs = slice(rows.start // self.n_contexts, rows.stop // self.n_contexts)
        for name, array, block in zip(self.names, self.arrays, values):
            block = block.reshape(runs.stop - runs.start, self.n_contexts, -1)
            array[runs, :, columns] = block == 1 if name == "collapsed" else block


class TrajectoryWindows:
    """The kept rows of the chunk in progress, one window of generations at a time.

    Rows are global row ids; kept rows are 0 … ``kept_rows`` − 1. Every call hands the
    metrics of all the rows still simulated (kept or not), generation by generation in order,
    as the engines do: once a call reaches the window's last generation, the window is done.
    """

    def __init__(self, sink, n_metrics: int, kept_rows: int, n_generations: int):
        self.sink, self.n_metrics = sink, n_metrics
        self.kept_rows, self.n_generations = kept_rows, n_generations
        self.rows: slice | None = None  # the chunk's kept rows

    def begin_chunk(self, rows: slice) -> None:
        """Rows ``rows`` (a chunk of whole runs) come next."""
        stop = min(rows.stop, self.kept_rows)
        self.rows = slice(rows.start, stop) if stop > rows.start else None
        if self.rows is None:
            return
        n = stop - rows.start
        self.width = self.sink.window_width(n)
        self.settled, self.constant = self._settled_state(n)
        self.any_settled = False
        self._open(0)

    def write(self, m: int, rows: np.ndarray | slice, block: np.ndarray) -> None:
        """Generations m … m + steps − 1 of ``rows`` (ascending ids): block (metrics, rows,
        steps)."""
        local, count = self._local(rows)
        if count:
            self.write_local(m, local, block[:, :count])

    def settle(self, rows: np.ndarray, m: int, values: np.ndarray) -> None:
        """``rows`` (ascending ids) hold ``values`` (metrics, rows) after generation m."""
        local, count = self._local(rows)
        if count:
            self.settle_local(local, m, values[:, :count])

    def write_local(self, m: int, local, values) -> None:
        """Generations m, m + 1, … of the window's rows ``local``: values (metrics, rows,
        steps). Takes numpy arrays, or torch tensors where the window is on a device."""
        steps = values.shape[2]
        done = 0
        while done < steps:
            first = m + done
            take = min(steps - done, self.columns.stop - first)
            target = slice(first - self.columns.start, first - self.columns.start + take)
            self.buffer[:, local, target] = values[:, :, done:done + take]
            done += take
            if first + take == self.columns.stop:
                self._close()

    def settle_local(self, local, m: int, values) -> None:
        """The window's rows ``local`` hold ``values`` (metrics, rows) after generation m."""
        self.any_settled = True
        self._mark_settled(local)
        self.constant[:, local] = values
        start = max(0, m + 1 - self.columns.start)
        self.buffer[:, local, start:] = values[:, :, None]

    def end_chunk(self) -> None:
        """The chunk's runs have all stopped or reached generation G: the windows left hold
        the stopped rows' constants."""
        while self.rows is not None and self.columns.start <= self.n_generations:
            self._close()
        self.rows = None

    def _local(self, rows: np.ndarray | slice) -> tuple[np.ndarray | slice, int]:
        """Positions in the window of the kept rows among ``rows`` (a prefix of them)."""
        if self.rows is None:
            return slice(0, 0), 0
        if isinstance(rows, slice):
            stop = min(rows.stop, self.rows.stop)
            count = max(0, stop - rows.start)
            return slice(rows.start - self.rows.start, stop - self.rows.start), count
        count = int(np.searchsorted(rows, self.rows.stop))
        return rows[:count] - self.rows.start, count

    def _settled_state(self, n: int):
        """Which of the window's rows stopped, and the metrics they hold since."""
        return np.zeros(n, dtype=bool), np.empty((self.n_metrics, n))

    def _mark_settled(self, local) -> None:
        self.settled[local] = True

    def _open(self, start: int) -> None:
        self.columns = slice(start, min(start + self.width, self.n_generations + 1))
        self.buffer = self._window()
        if self.any_settled:
            self._fill_settled()

    def _fill_settled(self) -> None:
        """The stopped rows' constants into every column of the new window."""
        self.buffer[:, self.settled] = self.constant[:, self.settled, None]

    def _window(self):
        """An array for the window's values (NaN where nothing is written)."""
        return self.sink.window(self.rows, self.columns)

    def _commit(self) -> None:
        self.sink.commit(self.rows, self.columns, self.buffer)

    def _close(self) -> None:
        self._commit()
        if self.columns.stop <= self.n_generations:
            self._open(self.columns.stop)
        else:
            self.columns = slice(self.n_generations + 1, self.n_generations + 1)
