"""What a simulation keeps, in memory that follows the work done.

The engines hand the recorder the metrics of the rows (run × context) they simulated, one
generation or a window of generations at a time. It keeps

* always, per metric, context and generation: the number of rows and the sums that give the
  mean over runs and its standard error;
* always, per row: the outcomes (collapse and absorption time, absorbed token) and the metrics
  of the last generation;
* on request, the full trajectories of rows 0 … ``kept_rows`` − 1 (runs 0 … k − 1: a fixed
  subset, the same for every backend and chunking), and the fitted distributions p(m) of
  those rows at a few *snapshot* generations.

A row that is absorbed (its model is a Dirac mass that can never change again) leaves the
engine: :meth:`Recorder.settle` adds its constant metrics once, as an increment at the next
generation, and a running sum over generations carries it into every later generation. A
row then costs O(1) after absorption, and when every row is absorbed the engine stops.

Sums are of the metric minus a fixed shift per metric and context (its value at p(0); 0 for
‖p − p(1)‖₁), so the sum of squares keeps its digits when the spread is small next to the
mean. A batch's sums go in blocks of rows (compiled, one pass: :func:`kernels.shifted_sums`)
or pairwise (numpy's summation along a contiguous axis), so 10⁶ runs in one batch lose a few
units in the last place, not 10⁶.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .numpy import kernels
from .trajectories import MemoryTrajectories, TrajectoryWindows

__all__ = ["TRAJECTORY_MEMORY_MB", "Recorder", "kept_runs", "metric_shift", "run_bytes"]

#: Relative rounding of a sum of squares, below which a sum of squared deviations is zero.
RESOLUTION = 64 * np.finfo(np.float64).eps
#: Memory that ``trajectories="auto"`` lets kept trajectories take, in MB (10^6 bytes).
TRAJECTORY_MEMORY_MB = 128.0


def metric_shift(at_p0: Mapping[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """The shift of each metric's sums per context, (metrics, contexts): its value at p(0)
    (``at_p0``: name → one value per context)."""
    shift = np.stack([np.asarray(at_p0[name], dtype=np.float64) for name in names])
    return np.nan_to_num(shift, nan=0.0)  # l1_to_first has no value at p(0)


def run_bytes(n_metrics: int, n_contexts: int, n_generations: int) -> int:
    """Bytes the trajectories of one run take (float64 per metric, context and generation)."""
    return 8 * n_metrics * n_contexts * (n_generations + 1)


def kept_runs(trajectories: str | int, *, n_runs: int, n_contexts: int, n_generations: int,
              n_metrics: int, memory_mb: float = TRAJECTORY_MEMORY_MB,
              streamed: bool = False, where: str = "simulate") -> tuple[int, str | None]:
    """How many runs keep their trajectories (runs 0 … k − 1), and a note for stderr when
    ``"auto"`` keeps fewer than all.

    ``"none"`` keeps none; ``"all"`` every run and an int k the first k (at most all), refused
    (ValueError) when they would take more than ``memory_mb`` unless they can be ``streamed``
    to a store; ``"auto"`` every run when they fit in ``memory_mb``, else as many as fit.
    """
    per_run = run_bytes(n_metrics, n_contexts, n_generations)
    fit = int(memory_mb * 1e6 // per_run)
    if trajectories == "none":
        return 0, None
    if trajectories == "auto":
        if fit >= n_runs:
            return n_runs, None
        return fit, (f"trajectories: keeping runs 0 … {fit - 1} of {n_runs} ({fit} fit in "
                     f"{memory_mb:g} MB; means and standard errors cover every run)"
                     if fit else f"trajectories: keeping none ({memory_mb:g} MB fit no run; "
                     f"means and standard errors cover every run)")
    if trajectories == "all":
        wanted = n_runs
    elif (isinstance(trajectories, bool) or not isinstance(trajectories, (int, np.integer))
          or trajectories < 0):
        raise ValueError(f"The 'trajectories' parameter of {where} must be 'auto', 'all', "
                         f"'none' or a number of runs ≥ 0. Got {trajectories!r} instead.")
    else:
        wanted = min(int(trajectories), n_runs)
    if wanted > fit and not streamed:
        need = wanted * per_run / 1e6
        size = f"{need:,.0f}" if need >= 10 else f"{need:.2g}"
        raise ValueError(
            f"The 'trajectories' parameter of {where} asks for {wanted} runs, which need "
            f"{size} MB ({n_generations + 1} generations × {n_contexts} context(s) × "
            f"{n_metrics} metrics each), more than 'trajectory_memory_mb' ({memory_mb:g} MB): "
            f"raise it, keep at most {fit} runs, stream them to the result's store (--out), "
            f"or keep 'none' (the per-generation means and standard errors cover every run).")
    return wanted, None


class Recorder:
    """Per-generation sums, per-row outcomes and last metrics, and kept trajectories.

    Rows are run-major (row = run · contexts + context). ``names`` are the metrics, in the
    order of :data:`modelcollapse.metrics.METRICS` (``collapsed`` among them, recorded as 0/1).
    """

    def __init__(self, n_rows: int, n_contexts: int, n_generations: int,
                 names: Sequence[str], shift: np.ndarray, kept_rows: int = 0, sink=None,
                 snapshots: Sequence[int] = ()):
        """``kept_rows``: rows whose trajectories are kept, in ``sink`` (a
        :class:`~modelcollapse.engine.trajectories.ZarrTrajectories`; default: in memory);
        ``snapshots``: generations ≥ 1 at which their fitted distributions are kept too."""
        self.names = tuple(names)
        self.n_contexts = n_contexts
        self.n_generations = n_generations
        n_metrics, columns = len(self.names), n_generations + 1
        self.shift = np.ascontiguousarray(shift, dtype=np.float64)  # (metrics, contexts)
        self.count = np.zeros((n_contexts, columns), dtype=np.int64)
        self.sums = np.zeros((2, n_metrics, n_contexts, columns))  # Σ d and Σ d², d = v − shift
        # Rows settled after generation m enter generation m + 1 (and, by the running sum,
        # every later one): increments, summed over generations when the sums are read.
        self.settled_count = np.zeros((n_contexts, columns), dtype=np.int64)
        self.settled_sums = np.zeros_like(self.sums)
        self.outcomes = {"collapse_time": np.full(n_rows, np.nan),
                         "absorption_time": np.full(n_rows, np.nan),
                         "absorbed_token": np.full(n_rows, -1, dtype=np.int64)}
        self.final = np.full((n_metrics, n_rows), np.nan)
        self.kept_rows = kept_rows
        self.sink = sink if sink is not None or not kept_rows else MemoryTrajectories(
            n_metrics, kept_rows, n_generations)
        self.windows = TrajectoryWindows(self.sink, n_metrics, kept_rows, n_generations)
        # Kept rows' p(m) in live coordinates, per snapshot generation; rows that stopped
        # before a snapshot are filled from their absorbed token (see snapshot_array).
        self.snapshots = {m: None for m in snapshots if m >= 1}

    @property
    def trajectories(self) -> np.ndarray | None:
        """The kept rows' metrics (metrics, kept rows, G + 1) when they are held in memory."""
        return self.sink.array if isinstance(self.sink, MemoryTrajectories) else None

    # --- what the engines call ----------------------------------------------------------------
    def begin_chunk(self, rows: slice) -> None:
        """Rows ``rows`` (whole runs) are simulated next, from generation 0."""
        self.windows.begin_chunk(rows)

    def end_chunk(self) -> None:
        """The chunk's rows have all reached generation G or stopped."""
        self.windows.end_chunk()

    def record(self, m: int, rows: np.ndarray | slice, values: Mapping[str, np.ndarray]) -> None:
        """Generation m of ``rows`` (global row ids, ascending, or a slice): ``values`` maps
        every metric name to one value per row."""
        self.record_window(m, rows, self._block(values)[:, :, None])

    def record_window(self, m: int, rows: np.ndarray | slice, block: np.ndarray) -> None:
        """Generations m … m + steps − 1 of ``rows``: ``block`` is (metrics, rows, steps)."""
        steps = block.shape[2]
        columns = slice(m, m + steps)
        context = self._context_of(rows)
        self.count[:, columns] += self._count_per_context(context, block.shape[1])[:, None]
        self.sums[:, :, :, columns] += self._shifted_sums(block, context)
        self.windows.write(m, rows, block)
        if m <= self.n_generations < m + steps:
            self.final[:, rows] = block[:, :, self.n_generations - m]

    def snapshot(self, m: int, rows: np.ndarray | slice, p: np.ndarray) -> None:
        """The fitted distributions ``p`` (rows, k) of ``rows`` (global ids, ascending, or a
        slice) at generation m; those of kept rows are kept."""
        ids = np.arange(rows.start, rows.stop) if isinstance(rows, slice) else rows
        kept = ids < self.kept_rows
        if not kept.any():
            return
        table = self.snapshots[m]
        if table is None:
            table = self.snapshots[m] = np.full((self.kept_rows, p.shape[1]), np.nan)
        table[ids[kept]] = p[kept]

    def snapshot_array(self, k: int) -> np.ndarray:
        """(kept rows, snapshots, k): p(m) of every kept row at every snapshot generation,
        a row that stopped before it being the Dirac mass at its absorbed token."""
        out = np.full((self.kept_rows, len(self.snapshots), k), np.nan)
        for j, table in enumerate(self.snapshots.values()):
            if table is not None:
                out[:, j] = table
        token = self.outcomes["absorbed_token"][: self.kept_rows]
        stopped = np.isnan(out[:, :, 0]) & (token >= 0)[:, None]
        rows, columns = np.nonzero(stopped)
        out[rows, columns] = 0.0
        out[rows, columns, token[rows]] = 1.0
        return out

    def settle(self, rows: np.ndarray, m: int, values: Mapping[str, np.ndarray]) -> None:
        """``rows`` (global ids, ascending) stop after generation m, their metrics constant
        from then on: ``values`` maps every metric name to one value per row."""
        if m >= self.n_generations or len(rows) == 0:
            return
        block = self._block(values)
        context = self._context_of(rows)
        self.settled_count[:, m + 1] += self._count_per_context(context, len(rows))
        self.settled_sums[:, :, :, m + 1] += self._shifted_sums(block[:, :, None], context)[..., 0]
        self.final[:, rows] = block
        self.windows.settle(rows, m, block)

    def add_sums(self, count: np.ndarray, sums: np.ndarray, settled_count: np.ndarray,
                 settled_sums: np.ndarray) -> None:
        """Add sums reduced elsewhere (the torch backend, on its device), laid out as this
        recorder's ``count``, ``sums``, ``settled_count`` and ``settled_sums``."""
        self.count += count
        self.sums += sums
        self.settled_count += settled_count
        self.settled_sums += settled_sums

    # --- what the Result reads -----------------------------------------------------------------
    def statistics(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per context and generation: the number of rows (contexts, G + 1), and per metric
        the mean and the sum of squared deviations from it (metrics, contexts, G + 1)."""
        count = self.count + np.cumsum(self.settled_count, axis=1)
        sums = self.sums + np.cumsum(self.settled_sums, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            offset = sums[0] / count
            mean = self.shift[:, :, None] + offset
            m2 = sums[1] - sums[0] * offset
        # m2 is a difference of sums, each rounded to a few units in the last place of Σ d²:
        # below that it is zero within rounding (all runs equal, as once all are absorbed).
        m2[m2 <= RESOLUTION * sums[1]] = 0.0
        return count, mean, np.where(count > 0, m2, np.nan)

    # --- helpers -------------------------------------------------------------------------------
    def _block(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        """One value per row for every metric, as float64 (metrics, rows)."""
        return np.stack([np.asarray(values[name], dtype=np.float64) for name in self.names])

    def _context_of(self, rows: np.ndarray | slice) -> np.ndarray | None:
        if self.n_contexts == 1:
            return None
        if isinstance(rows, slice):
            return np.arange(rows.start, rows.stop) % self.n_contexts
        return rows % self.n_contexts

    def _count_per_context(self, context: np.ndarray | None, n_rows: int) -> np.ndarray:
        if context is None:
            return np.array([n_rows])
        return np.bincount(context, minlength=self.n_contexts)

    def _shifted_sums(self, block: np.ndarray, context: np.ndarray | None) -> np.ndarray:
        """Σ d and Σ d², d = value − shift, per metric, context and step: (2, metrics,
        contexts, steps) from ``block`` (metrics, rows, steps)."""
        if kernels.AVAILABLE:
            if context is None:
                context = np.zeros(block.shape[1], dtype=np.int64)
            return kernels.shifted_sums(block, self.shift, context)
        shift = self.shift[:, :1] if context is None else self.shift[:, context]
        # Rows last and contiguous, so that numpy sums them pairwise.
        shifted = np.ascontiguousarray((block - shift[:, :, None]).transpose(0, 2, 1))
        return np.stack([self._sum_per_context(shifted, context),
                         self._sum_per_context(shifted * shifted, context)])

    def _sum_per_context(self, values: np.ndarray, context: np.ndarray | None) -> np.ndarray:
        """(metrics, steps, rows) → (metrics, contexts, steps)."""
        if context is None:
            return values.sum(axis=2)[:, None, :]
        n_metrics, steps, _ = values.shape
        groups = (np.arange(n_metrics * steps)[:, None] * self.n_contexts
                  + context[None, :]).ravel()
        sums = np.bincount(groups, weights=values.ravel(),
                           minlength=n_metrics * steps * self.n_contexts)
        return sums.reshape(n_metrics, steps, self.n_contexts).transpose(0, 2, 1)
