"""Models and their history on the numpy backend, held as training tokens (paper eq. 2).

A model fitted by counting is the empirical distribution of its training tokens, so it is kept
as those tokens (rows, n^(m)) and, when something asks, their counts over the live support.
:class:`TokenHistory` is what scenarios draw on (the protocol of :class:`modelcollapse.scenarios.
History`); draws are index draws and gathers (sampling.py).
"""

from __future__ import annotations

import numpy as np

from ...scenarios import Scenario
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


class TokenHistory:
    """What a scenario may draw on when it builds model m (see scenarios.py)."""

    def __init__(self, scenario: Scenario, p_live: np.ndarray, row_context: np.ndarray,
                 streams: RowStreams, n_generations: int):
        self.scenario = scenario
        self.n_live = p_live.shape[1]
        self.row_context = row_context
        self.streams = streams
        self._p0 = InverseCDF(p_live)
        self._models: dict[int, TokenModel] = {}
        self._corpus: TokenModel | None = None
        self._published: np.ndarray | None = None
        self._pool: np.ndarray | None = None
        self._capacity = n_generations + 1

    # --- what scenarios call -------------------------------------------------------------
    def draw(self, t: int, size: int) -> np.ndarray:
        """``size`` fresh draws per row from model t (t = 0: from p(0) itself)."""
        if t == 0:
            return draw_from_p0(self._p0, self.row_context, size, self.streams)
        return self._models[t].draw(size, self.streams)

    def corpus(self) -> np.ndarray:
        """The fixed real corpus, (rows, N): drawn from p(0) once, reused every generation."""
        return self.corpus_model().tokens

    def corpus_model(self) -> TokenModel:
        if self._corpus is None:
            size = self.scenario.corpus_size()
            self._corpus = self.model(self.draw(0, size))
        return self._corpus

    def model(self, tokens: np.ndarray, base: TokenModel | None = None) -> TokenModel:
        """Fit a model on ``tokens`` (eq. 2), after the training tokens of ``base`` if given."""
        return TokenModel(self.n_live, tokens.astype(TOKEN_DTYPE, copy=False), base=base)

    def stored(self, t: int) -> TokenModel:
        return self._models[t]

    def concat(self, parts: list[np.ndarray]) -> np.ndarray:
        """Join draws into one training set (tokens side by side)."""
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def draw_pooled(self, m: int, size: int) -> np.ndarray:
        """Draws for the random pool (§4.2): each sample's source generation is uniform on
        0 … m−1; generation 0 is p(0), generation t ≥ 1 the model p(t)."""
        source = self.streams.integers(m, size)
        real = self.draw(0, size)
        if m == 1:
            return real
        index = self.streams.integers(self._pool.shape[2], size)
        rows = np.arange(source.shape[0])[:, None]
        synthetic = self._pool[np.maximum(source, 1), rows, index]
        return np.where(source == 0, real, synthetic)

    def publish(self, t: int, tokens: np.ndarray) -> None:
        """Keep the data model t generated (accumulate scenarios); the corpus comes first."""
        if self._published is None:
            self._published = self.corpus()
        self._published = np.concatenate([self._published, tokens.astype(TOKEN_DTYPE)], axis=1)

    def subsample_published(self, size: int) -> np.ndarray:
        """``size`` samples per row drawn without replacement from all published data."""
        pool = self._published
        if size >= pool.shape[1]:
            return pool.copy()
        keys = self.streams.random(pool.shape[1])
        chosen = np.argpartition(keys, size - 1, axis=1)[:, :size]
        return gather_rows(pool, chosen)

    # --- what the loop calls ----------------------------------------------------------------
    def store(self, m: int, model: TokenModel) -> None:
        self._models[m] = model
        lag = self.scenario.lag
        if lag is not None:
            self._models.pop(m - lag, None)
        elif self.scenario.pooled:
            # The pool draws from every earlier model: one preallocated array, tokens only.
            del self._models[m]
            if self._pool is None:
                shape = (self._capacity, model.tokens.shape[0], model.size)
                self._pool = np.zeros(shape, dtype=TOKEN_DTYPE)
            self._pool[m] = model.tokens

    def keep(self, mask: np.ndarray) -> None:
        """Drop rows (runs that stopped) everywhere."""
        self.row_context = self.row_context[mask]
        self.streams.keep(mask)
        self._models = {t: model.keep(mask) for t, model in self._models.items()}
        if self._corpus is not None:
            self._corpus = self._corpus.keep(mask)
        if self._published is not None:
            self._published = self._published[mask]
        if self._pool is not None:
            self._pool = self._pool[:, mask]
