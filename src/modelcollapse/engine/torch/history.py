"""What scenarios draw on, over torch tensors: the :class:`modelcollapse.scenarios.History`
protocol, so every scenario runs unchanged on this backend.

Two representations of a fitted model (eq. 2):

* :class:`TokenHistory` keeps each model as its training tokens (rows, n^(m)) — draws are
  index draws and gathers (n ≪ support);
* :class:`CountHistory` keeps each model as its counts (rows, k) over the live support —
  a draw of n tokens is one multinomial by conditional binomials (n ≫ support). A "sample"
  is then a :class:`CountSample`; scenarios that need the order of the tokens
  (``Scenario.needs_token_order``) run on tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...scenarios import Scenario
from .draws import BinomialTree, count_tokens, draw_from_p0, draw_tokens, p0_table
from .streams import TorchRowStreams

__all__ = [
    "CountHistory",
    "CountSample",
    "TokenHistory",
    "TorchModel",
]


@dataclass
class TorchModel:
    """A fitted model per row: training tokens (rows, size) int64 — None when held as
    counts — and counts (rows, k) int64, computed from the tokens when first asked for."""

    tokens: torch.Tensor | None
    size: int
    n_live: int
    _counts: torch.Tensor | None = None

    @property
    def counts(self) -> torch.Tensor:
        if self._counts is None:
            self._counts = count_tokens(self.tokens, self.n_live)
        return self._counts

    @property
    def counted(self) -> bool:
        """Whether the counts exist already (else only the tokens do)."""
        return self._counts is not None

    def probabilities(self) -> torch.Tensor:
        """p = counts / size (rows, k) float64."""
        return self.counts.double() / self.size

    def keep(self, mask: torch.Tensor) -> TorchModel:
        return TorchModel(None if self.tokens is None else self.tokens[mask], self.size,
                          self.n_live, None if self._counts is None else self._counts[mask])


@dataclass
class CountSample:
    """Counts (rows, k) int64 of ``size`` i.i.d. draws per row (the counts representation)."""

    counts: torch.Tensor
    size: int


class _Base:
    def __init__(self, scenario: Scenario, p_live: torch.Tensor, row_context: torch.Tensor,
                 streams: TorchRowStreams, n_generations: int):
        self.scenario = scenario
        self.n_live = p_live.shape[1]
        self.row_context = row_context
        self.streams = streams
        self._models: dict[int, TorchModel] = {}
        self._corpus: TorchModel | None = None
        self._capacity = n_generations + 1

    @property
    def n_rows(self) -> int:
        return self.row_context.shape[0]

    def corpus_model(self) -> TorchModel:
        """The model fitted on the fixed real corpus (N draws of p(0), drawn once)."""
        if self._corpus is None:
            self._corpus = self.model(self.draw(0, self.scenario.corpus_size()))
        return self._corpus

    def stored(self, t: int) -> TorchModel:
        return self._models[t]

    def store(self, m: int, model: TorchModel) -> None:
        """Model m; the models no later model can train on are let go (all before the last
        ``lag`` ones: a span of fused generations stores only its last model)."""
        self._models[m] = model
        if self.scenario.lag is not None:
            for t in [t for t in self._models if t <= m - self.scenario.lag]:
                del self._models[t]

    def keep(self, mask: torch.Tensor, mask_host: np.ndarray) -> None:
        """Drop rows (runs that stopped) everywhere."""
        self.row_context = self.row_context[mask]
        self.streams.keep(mask_host)
        self._models = {t: model.keep(mask) for t, model in self._models.items()}
        if self._corpus is not None:
            self._corpus = self._corpus.keep(mask)


class TokenHistory(_Base):
    """Models held as training tokens; draws are index draws and gathers."""

    def __init__(self, scenario: Scenario, p_live: torch.Tensor, row_context: torch.Tensor,
                 streams: TorchRowStreams, n_generations: int):
        super().__init__(scenario, p_live, row_context, streams, n_generations)
        self._table, self._last = p0_table(p_live.cpu().numpy(), p_live.device)
        self._published: torch.Tensor | None = None
        self._pool: torch.Tensor | None = None

    def draw(self, t: int, size: int) -> torch.Tensor:
        """``size`` fresh draws per row from model t (t = 0: from p(0) itself)."""
        if t == 0:
            return draw_from_p0(self._table, self._last, self.n_live, self.row_context, size,
                                self.streams)
        return draw_tokens(self._models[t].tokens, size, self.streams)

    def corpus(self) -> torch.Tensor:
        """The fixed real corpus, (rows, N)."""
        return self.corpus_model().tokens

    def model(self, tokens: torch.Tensor, base: TorchModel | None = None) -> TorchModel:
        """Fit a model on ``tokens`` (eq. 2), after the training tokens of ``base`` if given."""
        tokens = torch.as_tensor(tokens, dtype=torch.int64, device=self.row_context.device)
        if base is None:
            return TorchModel(tokens, tokens.shape[1], self.n_live)
        counts = None
        if base.counted:  # keep counts incremental once they exist
            counts = base._counts + count_tokens(tokens, self.n_live)
        return TorchModel(torch.cat([base.tokens, tokens], dim=1), base.size + tokens.shape[1],
                          self.n_live, counts)

    def concat(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """Join samples along the sample axis."""
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def draw_pooled(self, m: int, size: int) -> torch.Tensor:
        """Draws for the random pool (§4.2): each sample's source generation is uniform on
        0 … m−1; generation 0 is p(0), generation t ≥ 1 the model p(t)."""
        source = self.streams.integers(m, size)
        real = self.draw(0, size)
        if m == 1:
            return real
        index = self.streams.integers(self._pool.shape[2], size)
        rows = torch.arange(source.shape[0], device=source.device)[:, None]
        synthetic = self._pool[source.clamp(min=1), rows, index].long()
        return torch.where(source == 0, real, synthetic)

    def publish(self, t: int, tokens: torch.Tensor) -> None:
        """Keep the data model t generated (accumulate scenarios); the corpus comes first."""
        if self._published is None:
            self._published = self.corpus()
        self._published = torch.cat([self._published, tokens], dim=1)

    def subsample_published(self, size: int) -> torch.Tensor:
        """``size`` samples per row drawn without replacement from all published data."""
        pool = self._published
        if size >= pool.shape[1]:
            return pool.clone()
        keys = self.streams.random(pool.shape[1])
        chosen = torch.topk(keys, size, dim=1, largest=False, sorted=False).indices
        return pool.gather(1, chosen)

    def store(self, m: int, model: TorchModel) -> None:
        super().store(m, model)
        if self.scenario.lag is None and self.scenario.pooled:
            # The pool draws from every earlier model: one preallocated array, tokens only.
            del self._models[m]
            if self._pool is None:
                shape = (self._capacity, model.tokens.shape[0], model.size)
                self._pool = torch.zeros(shape, dtype=torch.int32, device=model.tokens.device)
            self._pool[m] = model.tokens

    def keep(self, mask: torch.Tensor, mask_host: np.ndarray) -> None:
        super().keep(mask, mask_host)
        if self._published is not None:
            self._published = self._published[mask]
        if self._pool is not None:
            self._pool = self._pool[:, mask]


class CountHistory(_Base):
    """Models held as counts over the live support; a draw is one multinomial per row."""

    def __init__(self, scenario: Scenario, p_live: torch.Tensor, row_context: torch.Tensor,
                 streams: TorchRowStreams, n_generations: int):
        super().__init__(scenario, p_live, row_context, streams, n_generations)
        self._p0_tree = BinomialTree(p_live)
        if p_live.shape[0] > 1:
            self._p0_tree = self._p0_tree.keep(row_context)

    def draw(self, t: int, size: int) -> CountSample:
        """Counts of ``size`` fresh draws per row from model t (t = 0: from p(0))."""
        tree = self._p0_tree if t == 0 else BinomialTree(self._models[t].counts)
        return CountSample(tree.draw(size, self.n_rows, self.streams), int(size))

    def model(self, sample: CountSample, base: TorchModel | None = None) -> TorchModel:
        """Fit a model on the drawn counts (eq. 2), plus the counts of ``base`` if given."""
        if not isinstance(sample, CountSample):
            raise TypeError("Models held as counts are fitted on CountSample draws; this "
                            "scenario needs the token representation (mode='tokens').")
        if base is None:
            return TorchModel(None, sample.size, self.n_live, sample.counts)
        return TorchModel(None, base.size + sample.size, self.n_live,
                          base.counts + sample.counts)

    def concat(self, parts: list[CountSample]) -> CountSample:
        """Join samples: their counts add."""
        return CountSample(sum(p.counts for p in parts[1:]) + parts[0].counts,
                           sum(p.size for p in parts))

    def keep(self, mask: torch.Tensor, mask_host: np.ndarray) -> None:
        super().keep(mask, mask_host)
        if self._p0_tree.split and self._p0_tree.split[0].shape[0] > 1:
            self._p0_tree = self._p0_tree.keep(mask)
