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
from ..history import CountHistoryBase, CountSample, TokenHistoryBase
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

    def draw(self, size: int, streams: TorchRowStreams) -> torch.Tensor:
        """``size`` draws per row: an index into the training tokens, then a gather."""
        return draw_tokens(self.tokens, size, streams)

    def probabilities(self) -> torch.Tensor:
        """p = counts / size (rows, k) float64."""
        return self.counts.double() / self.size

    def keep(self, mask: torch.Tensor) -> TorchModel:
        return TorchModel(None if self.tokens is None else self.tokens[mask], self.size,
                          self.n_live, None if self._counts is None else self._counts[mask])


class TokenHistory(TokenHistoryBase):
    """Models held as training tokens on the device; draws are index draws and gathers."""

    def __init__(self, scenario: Scenario, p_live: torch.Tensor, row_context: torch.Tensor,
                 streams: TorchRowStreams, n_generations: int):
        super().__init__(scenario, row_context, streams, p_live.shape[1], n_generations)
        self._table, self._last = p0_table(p_live.cpu().numpy(), p_live.device)

    def draw_from_p0(self, size: int) -> torch.Tensor:
        return draw_from_p0(self._table, self._last, self.n_live, self.row_context, size,
                            self.streams)

    def model(self, tokens: torch.Tensor, base: TorchModel | None = None) -> TorchModel:
        """Fit a model on ``tokens`` (eq. 2), after the training tokens of ``base`` if given."""
        tokens = self._tokens(tokens)
        if base is None:
            return TorchModel(tokens, tokens.shape[1], self.n_live)
        counts = None
        if base.counted:  # keep counts incremental once they exist
            counts = base._counts + count_tokens(tokens, self.n_live)
        return TorchModel(torch.cat([base.tokens, tokens], dim=1), base.size + tokens.shape[1],
                          self.n_live, counts)

    def _join(self, parts):
        return torch.cat(parts, dim=1)

    def _tokens(self, tokens):
        return torch.as_tensor(tokens, dtype=torch.int64, device=self.row_context.device)

    def _where(self, condition, a, b):
        return torch.where(condition, a, b)

    def _from_pool(self, source, index):
        rows = torch.arange(source.shape[0], device=source.device)[:, None]
        return self._pool[source.clamp(min=1), rows, index].long()

    def _new_pool(self, shape):
        return torch.zeros(shape, dtype=torch.int32, device=self.row_context.device)

    def _copy(self, tokens):
        return tokens.clone()

    def _smallest(self, keys, size):
        return torch.topk(keys, size, dim=1, largest=False, sorted=False).indices

    def _gather(self, tokens, positions):
        return tokens.gather(1, positions)


class CountHistory(CountHistoryBase):
    """Models held as counts over the live support; a draw is one multinomial per row, by
    conditional binomials down a binary tree."""

    def __init__(self, scenario: Scenario, p_live: torch.Tensor, row_context: torch.Tensor,
                 streams: TorchRowStreams, n_generations: int):
        super().__init__(scenario, row_context, streams, p_live.shape[1])
        self._p0_tree = BinomialTree(p_live)
        if p_live.shape[0] > 1:
            self._p0_tree = self._p0_tree.keep(row_context)

    def draw_counts(self, t: int, size: int) -> torch.Tensor:
        tree = self._p0_tree if t == 0 else BinomialTree(self._models[t].counts)
        return tree.draw(size, self.row_context.shape[0], self.streams)

    def fit(self, counts: torch.Tensor, size: int) -> TorchModel:
        return TorchModel(None, size, self.n_live, counts)

    def keep(self, rows: torch.Tensor, rows_host: np.ndarray) -> None:
        super().keep(rows, rows_host)
        if self._p0_tree.split and self._p0_tree.split[0].shape[0] > 1:
            self._p0_tree = self._p0_tree.keep(rows)
