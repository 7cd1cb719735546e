"""The recorder's work for one chunk of runs, done on the device.

The torch loop hands this class every generation's (or span's) metrics of the rows it still
simulates. It reduces them to the sums of :class:`modelcollapse.recorder.Recorder` — rows per
context and generation, Σ d and Σ d² with d the metric minus its shift — on the device, keeps
each row's latest metrics there too, and hands both to the host recorder once, when the chunk
is done: O(generations · metrics) numbers and O(rows) per-row values cross to the host, not
the (rows × generations) table.

Kept trajectories stay on the device too, a window of generations at a time
(:class:`DeviceWindows`): in memory the window is every generation, so they reach the host
once, with the rest; streamed to a store, once per window.

Nothing here makes the host wait for the device but those copies: row counts are kept on the
host (they change only when runs stop), per-context sums go by ``index_add_``, and every index
the host passes is already on the device.
"""

from __future__ import annotations

import numpy as np
import torch

from ..recorder import Recorder
from ..trajectories import TrajectoryWindows

__all__ = ["ChunkRecorder", "DeviceWindows"]


class DeviceWindows(TrajectoryWindows):
    """:class:`~modelcollapse.trajectories.TrajectoryWindows` whose window is a tensor on
    ``dev``, copied to the sink's window when it is done. Rows are given as positions in the
    chunk's kept rows (index tensors on the device, or slices)."""

    def __init__(self, sink, n_metrics: int, kept_rows: int, n_generations: int,
                 dev: torch.device):
        super().__init__(sink, n_metrics, kept_rows, n_generations)
        self.dev = dev
        self.device_buffer: torch.Tensor | None = None

    def _settled_state(self, n: int):
        return (torch.zeros(n, dtype=torch.bool, device=self.dev),
                torch.empty((self.n_metrics, n), dtype=torch.float64, device=self.dev))

    def _mark_settled(self, local: torch.Tensor) -> None:
        # index_fill_: assigning a Python scalar through an index tensor copies it from
        # pageable memory, which waits for the device.
        self.settled.index_fill_(0, local, True)

    def _fill_settled(self) -> None:
        # torch.where, not a boolean mask: a mask's count waits for the device.
        self.buffer.copy_(torch.where(self.settled[None, :, None], self.constant[:, :, None],
                                      self.buffer))

    def _window(self) -> torch.Tensor:
        width = self.columns.stop - self.columns.start
        if self.device_buffer is None:
            shape = (self.n_metrics, self.rows.stop - self.rows.start, self.width)
            self.device_buffer = torch.empty(shape, dtype=torch.float64, device=self.dev)
        return self.device_buffer[:, :, :width].fill_(float("nan"))

    def _commit(self) -> None:
        host = self.sink.window(self.rows, self.columns)
        host[...] = self.buffer.cpu().numpy()
        self.sink.commit(self.rows, self.columns, host)


class ChunkRecorder:
    """Sums, latest metrics and kept trajectories of rows ``first_row`` … ``first_row`` +
    ``rows`` − 1 (one chunk, run-major) on ``dev``, for the host ``recorder``."""

    def __init__(self, recorder: Recorder, first_row: int, rows: int, dev: torch.device):
        self.host = recorder
        self.names = recorder.names
        self.first_row, self.rows = first_row, rows
        n_metrics, n_contexts = len(self.names), recorder.n_contexts
        columns = recorder.n_generations + 1
        self.n_contexts, self.n_generations = n_contexts, recorder.n_generations
        f64 = dict(dtype=torch.float64, device=dev)
        self.shift = torch.as_tensor(recorder.shift, **f64)  # (metrics, contexts)
        # Rows per context and generation, on the host: written rows (and rows settled at
        # each generation) per context, from the rows still written, which the host knows.
        self.count = np.zeros((n_contexts, columns), dtype=np.int64)
        self.settled_count = np.zeros_like(self.count)
        self.alive_per_context = np.bincount(np.arange(rows) % n_contexts,
                                             minlength=n_contexts)
        self.sums = torch.zeros((2, n_metrics, n_contexts, columns), **f64)
        self.settled_sums = torch.zeros_like(self.sums)
        # Each row's latest metrics: those of generation G, or of its Dirac mass once it stops.
        self.latest = torch.full((n_metrics, rows), float("nan"), **f64)
        self.context = torch.arange(rows, device=dev) % n_contexts
        # The rows still written (chunk positions, ascending), on the device and on the host;
        # None while they are all of them.
        self.alive: torch.Tensor | None = None
        self.alive_host: np.ndarray | None = None
        self.kept = int(np.clip(recorder.kept_rows - first_row, 0, rows))
        self.windows = None
        if self.kept:
            self.windows = DeviceWindows(recorder.sink, n_metrics, recorder.kept_rows,
                                         self.n_generations, dev)
            self.windows.begin_chunk(slice(first_row, first_row + rows))

    def write(self, m: int, metrics: dict[str, torch.Tensor]) -> None:
        """Generations m, m + 1, … of the rows still written: ``metrics`` maps every name to
        (rows, steps) values (``collapsed`` as bool)."""
        block = torch.stack([metrics[name].to(torch.float64) for name in self.names])
        steps = block.shape[2]  # block: (metrics, rows, steps)
        columns = slice(m, m + steps)
        sums, squares = self._per_context(block, self.alive)
        self.count[:, columns] += self.alive_per_context[:, None]
        self.sums[0, :, :, columns] += sums
        self.sums[1, :, :, columns] += squares
        if self.alive is None:
            self.latest.copy_(block[:, :, -1])
        else:
            self.latest[:, self.alive] = block[:, :, -1]
        kept = self._kept_prefix()
        if kept:
            self.windows.write_local(m, slice(0, kept) if self.alive is None
                                     else self.alive[:kept], block[:, :kept])

    def settle(self, stopped: torch.Tensor, stopped_host: np.ndarray, alive: torch.Tensor,
               alive_host: np.ndarray, m: int) -> None:
        """Rows ``stopped`` (chunk positions) stop after generation m, the last one written;
        their latest metrics, those of their Dirac mass, hold for every later generation.
        ``alive``: the rows still written from now on. Each index is given on the device and
        on the host."""
        stopped_per_context = np.bincount(stopped_host % self.n_contexts,
                                          minlength=self.n_contexts)
        self.alive_per_context = self.alive_per_context - stopped_per_context
        if m < self.n_generations and stopped_host.size:
            constant = self.latest[:, stopped][:, :, None]  # (metrics, rows, 1)
            sums, squares = self._per_context(constant, stopped)
            self.settled_count[:, m + 1] += stopped_per_context
            self.settled_sums[0, :, :, m + 1] += sums[:, :, 0]
            self.settled_sums[1, :, :, m + 1] += squares[:, :, 0]
            kept = int(np.searchsorted(stopped_host, self.kept))
            if kept:
                self.windows.settle_local(stopped[:kept], m, constant[:, :kept, 0])
        self.alive, self.alive_host = alive, alive_host

    def finish(self) -> None:
        """Hand everything to the host recorder (one copy of each array)."""
        as_host = lambda value: value.cpu().numpy()  # noqa: E731
        self.host.add_sums(self.count, as_host(self.sums), self.settled_count,
                           as_host(self.settled_sums))
        rows = slice(self.first_row, self.first_row + self.rows)
        self.host.final[:, rows] = as_host(self.latest)
        if self.windows is not None:
            self.windows.end_chunk()

    def _per_context(self, block: torch.Tensor, rows: torch.Tensor | None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Σ d and Σ d² per context (metrics, contexts, steps) of ``block`` (metrics, rows,
        steps), whose rows are chunk positions ``rows``."""
        context = self.context if rows is None else self.context[rows]
        if self.n_contexts == 1:
            shifted = block - self.shift[:, :1, None]
            return shifted.sum(dim=1)[:, None], (shifted * shifted).sum(dim=1)[:, None]
        shifted = block - self.shift[:, context][:, :, None]
        n_metrics, _, steps = block.shape
        sums = torch.zeros((2, n_metrics, self.n_contexts, steps), dtype=torch.float64,
                           device=block.device)
        sums[0].index_add_(1, context, shifted)
        sums[1].index_add_(1, context, shifted * shifted)
        return sums[0], sums[1]

    def _kept_prefix(self) -> int:
        """How many of the rows still written are kept rows (they come first)."""
        if not self.kept:
            return 0
        if self.alive_host is None:
            return self.kept
        return int(np.searchsorted(self.alive_host, self.kept))
