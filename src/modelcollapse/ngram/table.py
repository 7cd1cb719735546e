"""An order-k n-gram model held sparsely: the paper's statistical model on real text.

Context j is the k previous tokens (one-hot e_j in eq. 1); the model fitted by counting is
the empirical next-token frequency of the |C_j| training samples that follow it (eq. 2). A
real corpus has 10⁴–10⁶ contexts and vocabularies of 10⁴, so nothing here is dense in
(contexts × vocab): the table is compressed sparse rows over the contexts *seen*.

Keys: a context c_1 … c_k is the integer Σ_r c_r V^(k−r) (V = vocabulary size), an n-gram
(context, token) the integer key·V + token; both are int64, so V^(k+1) < 2⁶³.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .ragged import RowLayout

__all__ = ["NgramTable", "context_keys", "largest_order"]

_KEY_LIMIT = np.iinfo(np.int64).max


def largest_order(vocab_size: int) -> int:
    """The largest order k whose n-gram keys V^(k+1) fit in int64."""
    k = 0
    while vocab_size ** (k + 2) <= _KEY_LIMIT:
        k += 1
    return k


def context_keys(tokens: np.ndarray, order: int, vocab_size: int) -> np.ndarray:
    """Key of the context before each position i ≥ ``order`` of ``tokens`` (…, length): the
    tokens i−k … i−1, as Σ_r c_r V^(k−r); shape (…, length − order)."""
    tokens = np.asarray(tokens)
    length = tokens.shape[-1]
    keys = np.zeros((*tokens.shape[:-1], max(length - order, 0)), dtype=np.int64)
    for r in range(order):
        keys *= vocab_size
        keys += tokens[..., r : length - order + r]
    return keys


@dataclass(frozen=True)
class NgramTable:
    """Next-token counts of the contexts seen, as compressed sparse rows.

    ``keys`` (contexts,) sorted context keys; ``offsets`` (contexts + 1,): row j is
    ``tokens[offsets[j]:offsets[j+1]]`` (sorted) with ``counts`` (≥ 1) beside them. The
    fitted model (eq. 2) at context j is counts / row total.
    """

    order: int
    vocab_size: int
    keys: np.ndarray
    offsets: np.ndarray
    tokens: np.ndarray
    counts: np.ndarray

    @classmethod
    def count(cls, streams: np.ndarray | Sequence[np.ndarray], order: int,
              vocab_size: int) -> NgramTable:
        """Count the (k+1)-grams of ``streams``: a 1-D token array, a 2-D array of streams of
        equal length, or a list of 1-D streams; n-grams never cross a stream boundary."""
        if vocab_size ** (order + 1) > _KEY_LIMIT:
            raise ValueError(f"The 'order' parameter must be at most {largest_order(vocab_size)} "
                             f"for a vocabulary of {vocab_size} (n-gram keys are 64-bit). "
                             f"Got {order} instead.")
        parts = [streams] if isinstance(streams, np.ndarray) else list(streams)
        grams = [_gram_keys(np.asarray(part), order, vocab_size) for part in parts]
        grams = np.concatenate(grams) if grams else np.zeros(0, np.int64)
        unique, counts = np.unique(grams, return_counts=True)
        return cls.from_grams(unique, counts.astype(np.int64), order, vocab_size)

    @classmethod
    def from_grams(cls, grams: np.ndarray, counts: np.ndarray, order: int,
                   vocab_size: int) -> NgramTable:
        """The table of sorted unique n-gram keys ``grams`` with their ``counts`` (> 0)."""
        contexts = grams // vocab_size
        starts = np.flatnonzero(np.r_[True, contexts[1:] != contexts[:-1]]) if grams.size \
            else np.zeros(0, np.int64)
        offsets = np.r_[starts, grams.size].astype(np.int64)
        return cls(order, vocab_size, contexts[starts], offsets,
                   (grams % vocab_size).astype(np.int32), counts)

    @property
    def n_contexts(self) -> int:
        return int(self.keys.size)

    @property
    def n_entries(self) -> int:
        """n-gram types: (context, token) pairs with a positive count."""
        return int(self.tokens.size)

    @cached_property
    def layout(self) -> RowLayout:
        """The rows' layout over the entries (row sums, draws per row: :mod:`.ragged`)."""
        return RowLayout(self.offsets)

    @property
    def row_of_entry(self) -> np.ndarray:
        """(entries,) the row each entry belongs to."""
        return self.layout.row_of_entry

    @cached_property
    def grams(self) -> np.ndarray:
        """(entries,) sorted n-gram keys."""
        return self.keys[self.row_of_entry] * self.vocab_size + self.tokens

    @cached_property
    def totals(self) -> np.ndarray:
        """|C_j|: training samples per context, (contexts,)."""
        return self.layout.row_sums(self.counts)

    @cached_property
    def frequencies(self) -> np.ndarray:
        """(entries,) the fitted model (eq. 2): each entry's count over its context's."""
        return self.counts / self.totals[self.row_of_entry]

    @cached_property
    def supports(self) -> np.ndarray:
        """Tokens with a positive count per context, (contexts,)."""
        return np.diff(self.offsets)

    def unigram(self) -> np.ndarray:
        """(vocab,) counts of the tokens predicted (every position of the data after the
        first k of each stream); summed in float64, exact below 2⁵³ tokens."""
        return np.bincount(self.tokens, weights=self.counts,
                           minlength=self.vocab_size).astype(np.int64)

    def rows(self, keys: np.ndarray) -> np.ndarray:
        """Row of each context key, −1 for a context the table has not seen."""
        return _positions(self.keys, keys)

    def entries(self, grams: np.ndarray) -> np.ndarray:
        """Entry of each n-gram key, −1 for an n-gram the table has not seen."""
        return _positions(self.grams, grams)

    def gram_counts(self, grams: np.ndarray) -> np.ndarray:
        """Count of each n-gram key (0 where unseen)."""
        at = self.entries(grams)
        return np.where(at >= 0, self.counts[np.maximum(at, 0)], 0) if self.n_entries \
            else np.zeros(at.shape, np.int64)

    def merge(self, other: NgramTable) -> NgramTable:
        """The table of both tables' data together (counts add)."""
        if (other.order, other.vocab_size) != (self.order, self.vocab_size):
            raise ValueError("Only tables of the same order and vocabulary merge.")
        grams = np.concatenate([self.grams, other.grams])
        counts = np.concatenate([self.counts, other.counts])
        unique, inverse = np.unique(grams, return_inverse=True)
        return NgramTable.from_grams(unique, np.bincount(inverse, weights=counts).astype(np.int64),
                                     self.order, self.vocab_size)

    def arrays(self) -> dict[str, np.ndarray]:
        """The table as named arrays (for checkpoints); :meth:`from_arrays` reads them back."""
        return {"keys": self.keys, "offsets": self.offsets, "tokens": self.tokens,
                "counts": self.counts,
                "shape": np.array([self.order, self.vocab_size], dtype=np.int64)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> NgramTable:
        order, vocab_size = (int(x) for x in arrays["shape"])
        return cls(order, vocab_size, np.asarray(arrays["keys"], np.int64),
                   np.asarray(arrays["offsets"], np.int64), np.asarray(arrays["tokens"], np.int32),
                   np.asarray(arrays["counts"], np.int64))


def _positions(known: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Index of each of ``keys`` in the sorted unique array ``known``, −1 where absent."""
    keys = np.asarray(keys, dtype=np.int64)
    if not known.size:
        return np.full(keys.shape, -1, np.int64)
    at = np.minimum(np.searchsorted(known, keys), known.size - 1)
    return np.where(known[at] == keys, at, -1)


def _gram_keys(stream: np.ndarray, order: int, vocab_size: int) -> np.ndarray:
    """n-gram keys of one stream (1-D) or of streams of equal length (2-D), flattened."""
    if stream.shape[-1] <= order:
        return np.zeros(0, np.int64)
    keys = context_keys(stream, order, vocab_size) * vocab_size
    keys += stream[..., order:]
    return keys.reshape(-1)
