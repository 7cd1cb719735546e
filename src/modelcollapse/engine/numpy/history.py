"""Models and their history on the numpy backend, held as training tokens (paper eq. 2).

A model fitted by counting is the empirical distribution of its training tokens, so it is kept
as those tokens (rows, n^(m)) and, when something asks, their counts over the live support.
:class:`TokenHistory` is what scenarios draw on (the protocol of :class:`modelcollapse.scenarios.
History`); draws are index draws and gathers (sampling.py).
"""

from __future__ import annotations

import numpy as np

from ...scenarios import Scenario
from ..history import TokenHistoryBase
from .sampling import (
    TOKEN_DTYPE,
    InverseCDF,
    RowStreams,
    count_tokens,
    draw_from_p0,
    draw_tokens,
    gather_rows,
)

__all__ = ["TokenHistory", "TokenModel"]


class TokenModel:
    """A fitted model per row (eq. 2): its training tokens (rows, n^(m)), their counts (rows, k).

    A model trained on a *base* model's data plus new draws (the partially synthetic loop:
    the fixed corpus plus n samples) keeps the two parts apart: drawing from it picks an index
    in either part, and its metrics can be updated from the new draws alone (DeltaMetrics).
    The concatenated tokens and the full counts are only built when something asks for them.
    """

    def __init__(self, n_live: int, tokens: np.ndarray, base: TokenModel | None = None):
        self.n_live = n_live
        self.base = base
        self.extra = tokens if base is not None else None
        self._tokens = tokens if base is None else None
        self._counts: np.ndarray | None = None
        self.size = tokens.shape[1] + (base.size if base is not None else 0)

    @property
    def tokens(self) -> np.ndarray:
        if self._tokens is None:
            self._tokens = np.concatenate([self.base.tokens, self.extra], axis=1)
            # The joined tokens hold everything: letting the base go keeps a chain of models
            # trained on each other's data (accumulate) from holding every model at once.
            self.base = self.extra = None
        return self._tokens

    @property
    def counts(self) -> np.ndarray:
        if self._counts is None:
            if self.base is None:
                self._counts = count_tokens(self._tokens, self.n_live)
            else:
                self._counts = self.base.counts + count_tokens(self.extra, self.n_live)
        return self._counts

    def draw(self, size: int, streams: RowStreams) -> np.ndarray:
        """``size`` draws per row: an index into the training tokens, then a gather."""
        if self._tokens is not None:
            return draw_tokens(self._tokens, size, streams)
        index = streams.integers(self.size, size)
        from_base = gather_rows(self.base.tokens, np.minimum(index, self.base.size - 1))
        from_extra = gather_rows(self.extra, np.maximum(index - self.base.size, 0))
        return np.where(index < self.base.size, from_base, from_extra)

    def keep(self, mask: np.ndarray) -> TokenModel:
        if self.base is None:
            kept = TokenModel(self.n_live, self._tokens[mask])
        else:
            kept = TokenModel(self.n_live, self.extra[mask], base=self.base.keep(mask))
        if self._counts is not None:
            kept._counts = self._counts[mask]
        return kept


class TokenHistory(TokenHistoryBase):
    """What a scenario may draw on when it builds model m, models held as tokens (numpy)."""

    def __init__(self, scenario: Scenario, p_live: np.ndarray, row_context: np.ndarray,
                 streams: RowStreams, n_generations: int):
        super().__init__(scenario, row_context, streams, p_live.shape[1], n_generations)
        self._p0 = InverseCDF(p_live)

    def draw_from_p0(self, size: int) -> np.ndarray:
        return draw_from_p0(self._p0, self.row_context, size, self.streams)

    def model(self, tokens: np.ndarray, base: TokenModel | None = None) -> TokenModel:
        """Fit a model on ``tokens`` (eq. 2), after the training tokens of ``base`` if given."""
        return TokenModel(self.n_live, self._tokens(tokens), base=base)

    def _join(self, parts):
        return np.concatenate(parts, axis=1)

    def _tokens(self, tokens):
        return tokens.astype(TOKEN_DTYPE, copy=False)

    def _where(self, condition, a, b):
        return np.where(condition, a, b)

    def _from_pool(self, source, index):
        rows = np.arange(source.shape[0])[:, None]
        return self._pool[np.maximum(source, 1), rows, index]

    def _new_pool(self, shape):
        return np.zeros(shape, dtype=TOKEN_DTYPE)

    def _copy(self, tokens):
        return tokens.copy()

    def _smallest(self, keys, size):
        return np.argpartition(keys, size - 1, axis=1)[:, :size]

    def _gather(self, tokens, positions):
        return gather_rows(tokens, positions)
