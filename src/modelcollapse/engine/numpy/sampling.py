"""Batched draws for the statistical loop (numpy backend).

A model fitted by counting (eq. 2) is the empirical distribution of its training tokens, so
drawing from it is copying the token of a uniformly chosen training sample: an index draw and
a gather, O(rows · draws), with no pass over the vocabulary. p(0) itself is drawn from by
inverse CDF. Tokens live in *live-support* coordinates 0 … k−1 (the tokens p(0) can produce),
so counting never touches the other s − k tokens of the vocabulary.

All arrays are row-major over "rows" = (run, context) pairs, ordered run by run, so the rows of
one run block are contiguous and :class:`RowStreams` can give each block its own generator.
"""

from __future__ import annotations

import numpy as np

from ...rng import RUN_BLOCK, block_generator
from . import kernels

TOKEN_DTYPE = np.int32


class RowStreams:
    """One random stream per run block, over the rows still active.

    Every draw is made block by block, each block from its own generator and for its own
    active rows only, so what a block draws depends on nothing outside it.
    """

    def __init__(self, entropy: int, first_block: int, rows_per_block: list[int]):
        self.generators = [block_generator(entropy, first_block + b)
                           for b in range(len(rows_per_block))]
        self.rows_per_block = np.asarray(rows_per_block, dtype=np.int64)

    def keep(self, mask: np.ndarray) -> None:
        """Drop the rows where ``mask`` is False (rows must stay in block order)."""
        bounds = np.concatenate([[0], np.cumsum(self.rows_per_block)])
        kept_before = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
        self.rows_per_block = kept_before[bounds[1:]] - kept_before[bounds[:-1]]

    def blocks(self):
        """(generator, first row, end row) of every block that still has rows."""
        start = 0
        for gen, rows in zip(self.generators, self.rows_per_block):
            if rows:
                yield gen, start, start + int(rows)
            start += int(rows)

    def integers(self, high: int, size: int) -> np.ndarray:
        """(rows, size) int64 uniform on [0, high)."""
        parts = [draw_positions(g, high, (b - a, size)) for g, a, b in self.blocks()]
        return _stack(parts, size).astype(np.int64, copy=False)

    def random(self, size: int) -> np.ndarray:
        """(rows, size) floats uniform on [0, 1)."""
        return _stack([g.random((b - a, size)) for g, a, b in self.blocks()], size)


def draw_positions(generator: np.random.Generator, high: int,
                   size: tuple[int, ...]) -> np.ndarray:
    """Uniform integers on [0, high), the positions of index-and-gather draws.

    Below 2^16 they are drawn as uint16: numpy's bounded draws then consume the generator's
    64-bit outputs 16 bits at a time (still exact, by rejection), which takes half the time of
    drawing as many uniform doubles. Every route that draws positions goes through here, so
    they all read the same stream.
    """
    dtype = np.uint16 if high <= 1 << 16 else np.int64
    return generator.integers(0, high, size=size, dtype=dtype)


def _stack(parts: list[np.ndarray], size: int) -> np.ndarray:
    if not parts:
        return np.empty((0, size))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def rows_per_block(n_runs: int, n_contexts: int, first_run: int = 0) -> list[int]:
    """Rows of each run block in a chunk of runs [first_run, first_run + n_runs)."""
    out, run = [], first_run
    while run < first_run + n_runs:
        end = min((run // RUN_BLOCK + 1) * RUN_BLOCK, first_run + n_runs)
        out.append((end - run) * n_contexts)
        run = end
    return out


def rows_of(table: np.ndarray, row_context: np.ndarray) -> np.ndarray:
    """``table[row_context]``, one row per row of the batch; with a single context a read-only
    broadcast view instead of a copy (10^5 runs × 600 tokens of float64 would take 480 MB)."""
    if table.shape[0] == 1:
        return np.broadcast_to(table, (row_context.size, table.shape[1]))
    return table[row_context]


def keep_rows(rows: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``rows[mask]`` (a boolean mask), keeping a broadcast view of :func:`rows_of` a view."""
    if rows.ndim == 2 and rows.strides[0] == 0:
        return np.broadcast_to(rows[:1], (int(np.count_nonzero(mask)), rows.shape[1]))
    return rows[mask]


def draw_tokens(tokens: np.ndarray, size: int, streams: RowStreams) -> np.ndarray:
    """``size`` i.i.d. draws per row from the empirical distribution of ``tokens`` (rows, n_t)."""
    return gather_rows(tokens, streams.integers(tokens.shape[1], size))


def gather_rows(table: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``table[r, index[r, j]]`` for every row r: one flat gather (faster than
    ``take_along_axis``, which builds an index per axis)."""
    offsets = np.arange(table.shape[0], dtype=np.int64)[:, None] * table.shape[1]
    return table.ravel()[offsets + index]


def inverse_cdf_table(p_live: np.ndarray) -> np.ndarray:
    """Flattened, offset cumulative sums of p(0) per context for :class:`InverseCDF`.

    Context c occupies [c, c + 1); its last entry is forced to exactly c + 1 so a uniform in
    [0, 1) can never fall past its support.
    """
    cum = np.cumsum(p_live, axis=1)
    cum /= cum[:, -1:]
    cum[:, -1] = 1.0
    return (cum + np.arange(p_live.shape[0])[:, None]).ravel()


def last_live(p_live: np.ndarray) -> np.ndarray:
    """The last live coordinate with p > 0 of each context (contexts,)."""
    return p_live.shape[1] - 1 - np.argmax(p_live[:, ::-1] > 0, axis=1)


class InverseCDF:
    """Draws from p(0) of each row's context by inverse CDF, in live coordinates.

    A uniform u of context c is looked up as u + c in the offset table of
    :func:`inverse_cdf_table`. For c ≥ 1 that sum can round up to c + 1 (u within 2^-53 of 1),
    past the context's segment, so results are clamped to the context's last token
    (:func:`last_live`). The compiled route starts each lookup from a guide table of G ≥ k
    buckets (the first entry above c + g/G for each bucket g), a scan of one or two entries
    instead of a binary search, with the same results.
    """

    def __init__(self, p_live: np.ndarray):
        self.n_live = p_live.shape[1]
        self.table = inverse_cdf_table(p_live)
        self.last = last_live(p_live)
        buckets = 1 << max(0, (self.n_live - 1).bit_length())
        starts = np.arange(p_live.shape[0])[:, None] + np.arange(buckets) / buckets
        self.guide = np.searchsorted(self.table, starts, side="right")

    def __call__(self, u: np.ndarray, row_context: np.ndarray, *,
                 compiled: bool = kernels.AVAILABLE) -> np.ndarray:
        """The draw of each uniform ``u`` (rows, size) for the rows' contexts."""
        if compiled:
            return kernels.inverse_cdf(self.table, self.guide, self.last, self.n_live,
                                        row_context, u, TOKEN_DTYPE)
        flat = np.searchsorted(self.table, u + row_context[:, None], side="right")
        coordinate = np.minimum(flat - row_context[:, None] * self.n_live,
                                self.last[row_context][:, None])
        return coordinate.astype(TOKEN_DTYPE)


def draw_from_p0(sampler: InverseCDF, row_context: np.ndarray, size: int,
                 streams: RowStreams) -> np.ndarray:
    """``size`` i.i.d. draws per row from p(0) of the row's context, in live coordinates."""
    return sampler(streams.random(size), row_context)


def count_tokens(tokens: np.ndarray, n_live: int) -> np.ndarray:
    """Counts per row over the live support: (rows, n_t) tokens -> (rows, k) int64."""
    rows = tokens.shape[0]
    flat = (np.arange(rows, dtype=np.int64)[:, None] * n_live + tokens).ravel()
    return np.bincount(flat, minlength=rows * n_live).reshape(rows, n_live)
