"""What scenarios draw on (the :class:`modelcollapse.scenarios.History` protocol), written once
for every backend and representation.

A history holds, per row (run × context), the models still in reach of later ones, the fixed
real corpus, and for the token representation the published data and the random pool. The
rules — which models stay in reach, how the random pool and subsampling draw, which rows go
when runs stop — live here; a backend supplies its models, its draws and a few array
operations (the ``_`` hooks below), on numpy arrays or torch tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..scenarios import Scenario

__all__ = ["CountHistoryBase", "CountSample", "HistoryBase", "TokenHistoryBase"]


@dataclass
class CountSample:
    """Counts (rows, k) of ``size`` i.i.d. draws per row (the counts representation)."""

    counts: Any
    size: int


class HistoryBase:
    """The models in reach, the fixed corpus and the rows, whatever a model is."""

    def __init__(self, scenario: Scenario, row_context, streams, n_live: int):
        self.scenario = scenario
        self.row_context = row_context
        self.streams = streams
        self.n_live = n_live
        self._models: dict[int, Any] = {}
        self._corpus = None

    def corpus_model(self):
        """The model fitted on the fixed real corpus: ``scenario.corpus_size()`` draws of
        p(0), drawn once and reused every generation."""
        if self._corpus is None:
            self._corpus = self.model(self.draw(0, self.scenario.corpus_size()))
        return self._corpus

    def stored(self, t: int):
        return self._models[t]

    def store(self, m: int, model) -> None:
        """Model m; those no later model can train on (all before the last ``lag``) go. (A
        span of fused generations stores only its last model.)"""
        self._models[m] = model
        for t in self.scenario.unreachable(m, list(self._models)):
            del self._models[t]

    def keep(self, rows, rows_host) -> None:
        """Keep only ``rows`` (runs that stopped go) everywhere: ``rows`` index the backend's
        arrays, ``rows_host`` is the same selection as a boolean mask on the host."""
        self.row_context = self.row_context[rows]
        self.streams.keep(rows_host)
        self._models = {t: model.keep(rows) for t, model in self._models.items()}
        if self._corpus is not None:
            self._corpus = self._corpus.keep(rows)


class TokenHistoryBase(HistoryBase):
    """Models held as their training tokens; draws are index draws and gathers. A backend
    supplies ``draw_from_p0``, ``model`` and the array hooks."""

    def __init__(self, scenario: Scenario, row_context, streams, n_live: int,
                 n_generations: int):
        super().__init__(scenario, row_context, streams, n_live)
        self._published = None
        self._pool = None
        self._capacity = n_generations + 1

    # --- what scenarios call -------------------------------------------------------------
    def draw(self, t: int, size: int):
        """``size`` fresh draws per row from model t (t = 0: from p(0) itself)."""
        if t == 0:
            return self.draw_from_p0(size)
        return self._models[t].draw(size, self.streams)

    def corpus(self):
        """The fixed real corpus, (rows, N), in order."""
        return self.corpus_model().tokens

    def concat(self, parts: list):
        """Join draws into one training set (tokens side by side)."""
        return parts[0] if len(parts) == 1 else self._join(parts)

    def draw_pooled(self, m: int, size: int):
        """Draws for the random pool (§4.2): each sample's source generation is uniform on
        0 … m−1; generation 0 is p(0), generation t ≥ 1 the model p(t)."""
        source = self.streams.integers(m, size)
        real = self.draw(0, size)
        if m == 1:
            return real
        index = self.streams.integers(self._pool.shape[2], size)
        return self._where(source == 0, real, self._from_pool(source, index))

    def publish(self, t: int, tokens) -> None:
        """Keep the data model t generated (accumulate scenarios); the corpus comes first."""
        if self._published is None:
            self._published = self.corpus()
        self._published = self._join([self._published, self._tokens(tokens)])

    def subsample_published(self, size: int):
        """``size`` samples per row drawn without replacement from all published data: those
        with the smallest of a uniform key each."""
        pool = self._published
        if size >= pool.shape[1]:
            return self._copy(pool)
        keys = self.streams.random(pool.shape[1])
        return self._gather(pool, self._smallest(keys, size))

    # --- what the loop calls ----------------------------------------------------------------
    def store(self, m: int, model) -> None:
        super().store(m, model)
        if self.scenario.lag is None and self.scenario.pooled:
            # The pool draws from every earlier model: one preallocated array, tokens only.
            del self._models[m]
            if self._pool is None:
                self._pool = self._new_pool((self._capacity, model.tokens.shape[0], model.size))
            self._pool[m] = model.tokens

    def keep(self, rows, rows_host) -> None:
        super().keep(rows, rows_host)
        if self._published is not None:
            self._published = self._published[rows]
        if self._pool is not None:
            self._pool = self._pool[:, rows]

    # --- what a backend supplies --------------------------------------------------------------
    def draw_from_p0(self, size: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def model(self, tokens, base=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def _join(self, parts: list):  # pragma: no cover - abstract
        """Token arrays side by side (rows, Σ sizes)."""
        raise NotImplementedError

    def _tokens(self, tokens):  # pragma: no cover - abstract
        """Draws as the history's token array type."""
        raise NotImplementedError

    def _where(self, condition, a, b):  # pragma: no cover - abstract
        raise NotImplementedError

    def _from_pool(self, source, index):  # pragma: no cover - abstract
        """Token ``index`` of the pooled model ``max(source, 1)``, per row and draw."""
        raise NotImplementedError

    def _new_pool(self, shape: tuple[int, int, int]):  # pragma: no cover - abstract
        raise NotImplementedError

    def _copy(self, tokens):  # pragma: no cover - abstract
        raise NotImplementedError

    def _smallest(self, keys, size: int):  # pragma: no cover - abstract
        """Per row, the positions of the ``size`` smallest keys (in any order)."""
        raise NotImplementedError

    def _gather(self, tokens, positions):  # pragma: no cover - abstract
        raise NotImplementedError


class CountHistoryBase(HistoryBase):
    """Models held as counts over the live support; a draw is one multinomial per row. A
    backend supplies ``draw_counts`` and ``fit``. Scenarios that need the tokens' order
    (``needs_token_order``) cannot run on it: those calls raise."""

    def draw(self, t: int, size: int) -> CountSample:
        """Counts of ``size`` fresh draws per row from model t (t = 0: from p(0) itself)."""
        size = int(size)
        return CountSample(self.draw_counts(t, size), size)

    def model(self, sample: CountSample, base=None):
        """Fit a model on the drawn counts (eq. 2), after the counts of ``base`` if given."""
        if not isinstance(sample, CountSample):
            raise TypeError(f"Models held as counts are fitted on CountSample draws. Got "
                            f"{type(sample).__name__} instead.")
        if base is None:
            return self.fit(sample.counts, sample.size)
        return self.fit(base.counts + sample.counts, base.size + sample.size)

    def concat(self, parts: list[CountSample]) -> CountSample:
        """Join samples into one training set: their counts add."""
        if len(parts) == 1:
            return parts[0]
        return CountSample(sum(p.counts for p in parts[1:]) + parts[0].counts,
                           sum(p.size for p in parts))

    def corpus(self):
        self._needs_token_order("the fixed corpus in order")

    def draw_pooled(self, m: int, size: int):
        self._needs_token_order("draws from a random pool of generations")

    def publish(self, t: int, sample):
        self._needs_token_order("to keep published data")

    def subsample_published(self, size: int):
        self._needs_token_order("subsamples of published data")

    def _needs_token_order(self, what: str):
        raise ValueError(f"{self.scenario.describe()} asks for {what}, which needs the order of "
                         f"the tokens; models held as counts have none: use "
                         f"representation='tokens'.")

    # --- what a backend supplies --------------------------------------------------------------
    def draw_counts(self, t: int, size: int):  # pragma: no cover - abstract
        """Counts (rows, k) of ``size`` draws per row from model t (t = 0: from p(0))."""
        raise NotImplementedError

    def fit(self, counts, size: int):  # pragma: no cover - abstract
        """The model of ``counts`` (rows, k) over ``size`` samples."""
        raise NotImplementedError
