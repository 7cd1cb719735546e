"""Exact batched draws on torch tensors, for both regimes of the loop.

*n ≪ support* — a model fitted by counting (eq. 2) is the empirical distribution of its
training tokens, so a draw is an index draw and a gather: O(rows · draws) work and no pass
over the vocabulary (:func:`draw_tokens`). p(0) itself is drawn from by inverse CDF
(:func:`draw_from_p0`).

*n ≫ support* — a draw of n tokens is only needed through its counts, a multinomial over
the k live tokens. :class:`BinomialTree` draws it exactly by conditional binomials down a
binary tree over the tokens: the count of a node splits as Binomial(count, left mass / node
mass) into its two children, so ⌈log₂ k⌉ vectorised binomial calls (k − 1 binomials per row)
replace n categorical draws.

Tokens are int64 in *live-support* coordinates 0 … k−1 (see :mod:`modelcollapse.sampling`).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from ..numpy.sampling import inverse_cdf_table, last_live
from .streams import TorchRowStreams


def draw_tokens(tokens: torch.Tensor, size: int, streams: TorchRowStreams) -> torch.Tensor:
    """``size`` i.i.d. draws per row from the empirical distribution of ``tokens``
    (rows, n_t) int64 -> (rows, size) int64."""
    index = streams.integers(tokens.shape[1], size)
    return tokens.gather(1, index)


def p0_table(p_live: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The flattened, offset cumulative sums of p(0) (contexts · k,) float64 on ``device``,
    context c occupying [c, c + 1), and each context's last live token (contexts,); see
    :func:`modelcollapse.sampling.inverse_cdf_table` and ``sampling.last_live``."""
    return (torch.as_tensor(inverse_cdf_table(p_live), dtype=torch.float64, device=device),
            torch.as_tensor(last_live(p_live), dtype=torch.int64, device=device))


def draw_from_p0(table: torch.Tensor, last: torch.Tensor, n_live: int,
                 row_context: torch.Tensor, size: int,
                 streams: TorchRowStreams) -> torch.Tensor:
    """``size`` i.i.d. draws per row from p(0) of the row's context (rows, size) int64.
    u + c can round up to c + 1 (u within 2^-53 of 1), past context c's segment: clamped."""
    offset = row_context[:, None]
    u = streams.random(size).add_(offset)
    flat = torch.searchsorted(table, u, right=True)
    return torch.minimum(flat.sub_(offset * n_live), last[row_context][:, None])


def count_tokens(tokens: torch.Tensor, n_live: int) -> torch.Tensor:
    """Counts per row over the live support: (rows, n_t) int64 -> (rows, k) int64."""
    counts = torch.zeros((tokens.shape[0], n_live), dtype=torch.int64, device=tokens.device)
    return counts.scatter_add_(1, tokens, _ones(tokens))


def _ones(like: torch.Tensor) -> torch.Tensor:
    return torch.ones(1, dtype=like.dtype, device=like.device).expand_as(like)


class BinomialTree:
    """Multinomial draws over k categories by conditional binomials down a binary tree.

    ``weights`` (rows or 1, k) are non-negative masses (integer counts of a fitted model or
    probabilities of p(0)); rows of 1 broadcast. Leaves are padded to a power of two with
    zero mass; level ℓ holds 2^ℓ nodes, and ``split[ℓ]`` (rows, 2^ℓ) is the probability that
    a draw reaching a node of level ℓ goes left.
    """

    def __init__(self, weights: torch.Tensor):
        self.k = weights.shape[1]
        width = 1 << max(0, (self.k - 1).bit_length())
        mass = torch.zeros((weights.shape[0], width), dtype=torch.float64,
                           device=weights.device)
        mass[:, : self.k] = weights
        levels = [mass]
        while levels[-1].shape[1] > 1:
            levels.append(levels[-1].view(mass.shape[0], -1, 2).sum(dim=2))
        levels.reverse()  # levels[ℓ]: (rows, 2^ℓ) node masses
        self.split = []
        for node, children in itertools.pairwise(levels):
            left = children[:, 0::2]
            # An empty node never receives draws; any split probability will do.
            self.split.append(torch.where(node > 0, left / node.clamp_min(1e-300),
                                          torch.zeros_like(node)).clamp_(0.0, 1.0))

    def keep(self, rows: torch.Tensor) -> BinomialTree:
        """The tree of the given rows (a boolean mask or indices); rows of 1 broadcast."""
        out = BinomialTree.__new__(BinomialTree)
        out.k = self.k
        out.split = [s if s.shape[0] == 1 else s[rows] for s in self.split]
        return out

    def draw(self, size: int, n_rows: int, streams: TorchRowStreams) -> torch.Tensor:
        """Counts of ``size`` draws per row: (rows, k) int64."""
        counts = torch.full((n_rows, 1), float(size), dtype=torch.float64,
                            device=streams.device)
        for split in self.split:
            left = streams.binomial(counts, split.expand(n_rows, -1).contiguous())
            counts = torch.stack((left, counts - left), dim=2).view(n_rows, -1)
        return counts[:, : self.k].round().long()
