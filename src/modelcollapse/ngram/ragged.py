"""Draws over ragged rows that every run shares: the contexts of an n-gram table.

A model of the fixed-contexts loop is an int array (runs, entries): the counts of each
(context, token) entry of p(0)'s table, for every run. Rows (contexts) are the slices
``offsets[j]:offsets[j+1]``; their lengths differ (ragged), but the layout is the same in
every run, so a draw is vectorised over runs and entries at once: conditional binomials
(multinomial) or conditional hypergeometrics (without replacement), one pass per entry *rank*
within its row — as many passes as the longest row, each over the entries of that rank.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["RowLayout"]


@dataclass(frozen=True)
class RowLayout:
    """The rows of a table: ``offsets`` (rows + 1,) into its entries."""

    offsets: np.ndarray

    @property
    def n_rows(self) -> int:
        return self.offsets.size - 1

    @property
    def n_entries(self) -> int:
        return int(self.offsets[-1])

    @cached_property
    def row_of_entry(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_rows), np.diff(self.offsets))

    @cached_property
    def by_rank(self) -> list[np.ndarray]:
        """Entries of rank r (the r-th of their row), for r = 0 … longest row − 1."""
        rank = np.arange(self.n_entries) - self.offsets[self.row_of_entry]
        order = np.argsort(rank, kind="stable")
        bounds = np.searchsorted(rank[order], np.arange(int(rank.max(initial=-1)) + 2))
        return [order[a:b] for a, b in itertools.pairwise(bounds)]

    def row_sums(self, values: np.ndarray) -> np.ndarray:
        """(…, rows) sums of ``values`` (…, entries) over each row."""
        if not self.n_entries:
            return np.zeros((*values.shape[:-1], self.n_rows), values.dtype)
        return np.add.reduceat(values, self.offsets[:-1], axis=-1)

    def suffix_sums(self, values: np.ndarray) -> np.ndarray:
        """(…, entries): each entry plus the entries after it in its row, added from the
        row's end (so a row's last entry is its own value exactly, and a draw's share there
        is exactly 1)."""
        tail = np.array(values, copy=True)
        for entries in reversed(self.by_rank):
            after = entries + 1
            inside = after < self.n_entries
            inside[inside] = self.row_of_entry[after[inside]] == self.row_of_entry[entries[inside]]
            tail[..., entries[inside]] += tail[..., after[inside]]
        return tail

    def multinomial(self, rng: np.random.Generator, sizes: np.ndarray,
                    weights: np.ndarray) -> np.ndarray:
        """(runs, entries) counts: row j of run r holds ``sizes[r, j]`` draws from the
        categorical law ∝ ``weights[(r,) e]`` over the row's entries (weights ≥ 0: p(0) as
        probabilities (entries,), or a model's counts (runs, entries))."""
        sizes = np.asarray(sizes, dtype=np.int64)
        runs = sizes.shape[0]
        weights = np.broadcast_to(weights, (runs, self.n_entries))
        # The share an entry takes of what its row has left: its weight over the weight of
        # itself and the entries after it (exactly 1 for a row's last positive entry).
        tail = self.suffix_sums(weights)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(tail > 0, weights / np.where(tail > 0, tail, 1), 0.0)
        share = np.minimum(share, 1.0)
        out = np.zeros((runs, self.n_entries), dtype=np.int64)
        left = sizes.copy()
        for entries in self.by_rank:
            rows = self.row_of_entry[entries]
            draw = rng.binomial(left[:, rows], share[:, entries])
            out[:, entries] = draw
            left[:, rows] -= draw
        return out

    def without_replacement(self, rng: np.random.Generator, sizes: np.ndarray,
                            pool: np.ndarray) -> np.ndarray:
        """(runs, entries) counts of ``sizes[r, j]`` items drawn without replacement from
        each row's ``pool`` counts (runs, entries) (conditional hypergeometrics)."""
        sizes = np.asarray(sizes, dtype=np.int64)
        tail = self.suffix_sums(pool)
        out = np.zeros_like(pool)
        left = sizes.copy()
        for entries in self.by_rank:
            rows = self.row_of_entry[entries]
            good = pool[:, entries]
            bad = tail[:, entries] - good
            draw = _hypergeometric(rng, good, bad, left[:, rows])
            out[:, entries] = draw
            left[:, rows] -= draw
        return out


def _hypergeometric(rng: np.random.Generator, good: np.ndarray, bad: np.ndarray,
                    sample: np.ndarray) -> np.ndarray:
    """Hypergeometric draws where numpy's sampler takes them (it refuses an empty urn and
    pools of 10⁹ or more); the rest are forced (nothing to draw, or all of it)."""
    sample = np.minimum(sample, good + bad)
    out = np.where(bad == 0, sample, 0)
    free = (good > 0) & (bad > 0) & (sample > 0)
    if free.any():
        out[free] = rng.hypergeometric(good[free], bad[free], sample[free])
    return out
