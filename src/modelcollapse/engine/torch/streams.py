"""Random streams of the torch backend: one ``torch.Generator`` per run block, buffered.

Block b (runs b·RUN_BLOCK … (b+1)·RUN_BLOCK − 1) draws only from a generator on the target
device seeded from ``SeedSequence(entropy, spawn_key=(0, b))`` — the key the numpy engine
gives the same block (:func:`modelcollapse.rng.block_generator`), fed to torch's generator
(Philox on CUDA, MT19937 on the CPU). The two backends therefore agree in distribution, not
number for number; each is reproducible on its own device, and what a block draws depends
on nothing outside the block, so results do not depend on chunking.

Generators fill per-block buffers of raw 62-bit integers, and requests are served from the
buffers. A GPU would otherwise launch one kernel per block per request (100 launches per
generation at 10^5 runs); with buffers it refills every few generations, and while every
block serves the same request from the same position (full blocks, no run dropped), a
request is one strided view of the buffer, transformed by one kernel.
"""

from __future__ import annotations

import numpy as np
import torch

#: Raw words each block generates per refill (at least one request), per device type: 8 MiB
#: per block on a GPU (0.8 GiB at 10^5 runs; ``chunk_runs`` bounds it). Part of the
#: reproducibility contract of the torch backend on that device type.
BUFFER_WORDS = {"cpu": 1 << 16, "cuda": 1 << 20}
#: Random integers are uniform on [0, 2^62): a power of two divides 2^64, so torch's
#: 64-bit ``random_(0, 2^62)`` is exactly uniform on every device.
_WORD_BITS = 62
_DOUBLE_SCALE = 2.0 ** -53


def block_seed(entropy: int, block: int) -> int:
    """The 64-bit seed of run block ``block`` (spawn key (0, block), as the numpy engine)."""
    seq = np.random.SeedSequence(entropy, spawn_key=(0, block))
    return int(seq.generate_state(1, np.uint64)[0])


def block_torch_generator(entropy: int, block: int, device: torch.device) -> torch.Generator:
    """A torch generator on ``device`` for run block ``block``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(block_seed(entropy, block))
    return gen


class TorchRowStreams:
    """One random stream per run block over the rows still active (torch counterpart of
    :class:`modelcollapse.sampling.RowStreams`).

    Rows are ordered run by run, so the rows of a block are contiguous; ``rows_per_block``
    counts the active rows of each block of the chunk.
    """

    def __init__(self, entropy: int, first_block: int, rows_per_block: list[int],
                 device: torch.device):
        self.device = device
        self.generators = [block_torch_generator(entropy, first_block + b, device)
                           for b in range(len(rows_per_block))]
        self.rows_per_block = np.asarray(rows_per_block, dtype=np.int64)
        self._words = BUFFER_WORDS.get(device.type, BUFFER_WORDS["cuda"])
        n_blocks = len(rows_per_block)
        self._buffer = torch.empty((n_blocks, 0), dtype=torch.int64, device=device)
        self._cursor = np.zeros(n_blocks, dtype=np.int64)
        self._filled = np.zeros(n_blocks, dtype=np.int64)

    # --- what the draws use ---------------------------------------------------------------
    def integers(self, high: int, size: int) -> torch.Tensor:
        """(rows, size) int64, uniform on [0, high) (bias below high / 2^62)."""
        high = int(high)
        return self._serve(size, lambda words: torch.remainder(words, high))

    def random(self, size: int) -> torch.Tensor:
        """(rows, size) float64, uniform on the multiples of 2^-53 in [0, 1)."""
        return self._serve(size, lambda words: (words >> (_WORD_BITS - 53)).double()
                           .mul_(_DOUBLE_SCALE))

    def binomial(self, count: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
        """Binomial(count, prob) per element of (rows, …) float64 tensors, block by block."""
        parts = [torch.binomial(count[a:b], prob[a:b], generator=gen)
                 for gen, a, b in self._blocks()]
        return _join(parts, count)

    def keep(self, mask: np.ndarray) -> None:
        """Drop the rows where ``mask`` is False (rows stay in block order)."""
        bounds = np.concatenate([[0], np.cumsum(self.rows_per_block)])
        kept_before = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
        self.rows_per_block = kept_before[bounds[1:]] - kept_before[bounds[:-1]]

    @property
    def n_rows(self) -> int:
        return int(self.rows_per_block.sum())

    # --- internals ----------------------------------------------------------------------------
    def _blocks(self):
        start = 0
        for gen, rows in zip(self.generators, self.rows_per_block):
            if rows:
                yield gen, start, start + int(rows)
            start += int(rows)

    def _serve(self, size: int, transform) -> torch.Tensor:
        """Take rows_b · size words from each block's buffer and transform them."""
        size = int(size)
        need = self.rows_per_block * size
        active = need > 0
        for b in np.flatnonzero(active & (self._cursor + need > self._filled)):
            self._refill(int(b), int(need[b]))
        pieces = []
        for first, last in _groups(self._cursor, need, active):
            start = int(self._cursor[first])
            words = self._buffer[first:last, start:start + int(need[first])]
            pieces.append(transform(words).reshape(-1))
        self._cursor += need
        if not pieces:
            return torch.empty((0, size), dtype=torch.int64, device=self.device)
        flat = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
        return flat.view(-1, size)

    def _refill(self, block: int, need: int) -> None:
        """Replace block ``block``'s buffer with fresh words; how many depends only on its
        own request, so the numbers stay independent of the other blocks."""
        amount = max(self._words, need)
        if amount > self._buffer.shape[1]:
            wider = torch.empty((self._buffer.shape[0], amount), dtype=torch.int64,
                                device=self.device)
            wider[:, : self._buffer.shape[1]] = self._buffer
            self._buffer = wider
        self._buffer[block, :amount].random_(0, 1 << _WORD_BITS,
                                             generator=self.generators[block])
        self._filled[block] = amount
        self._cursor[block] = 0


def _groups(cursor: np.ndarray, need: np.ndarray, active: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of consecutive active blocks at the same buffer position with the same
    request: each run is served as one strided view."""
    if cursor.size == 1:  # one block (runs ≤ RUN_BLOCK): no bookkeeping
        return [(0, 1)] if active[0] else []
    idx = np.flatnonzero(active)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero((np.diff(idx) != 1) | (np.diff(cursor[idx]) != 0)
                            | (np.diff(need[idx]) != 0)) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [idx.size]])
    return [(int(idx[s]), int(idx[e - 1]) + 1) for s, e in zip(starts, ends)]


def _join(parts: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    if not parts:
        return like[:0].clone()
    return parts[0] if len(parts) == 1 else torch.cat(parts)

