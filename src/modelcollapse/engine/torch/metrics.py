"""The metric table (:mod:`modelcollapse.metrics`) on torch tensors, by two exact routes.

*Dense*, from counts c (rows, k) of a model fitted on n tokens, p = c / n (eq. 2): the
definitions as written, one pass over the live support. Cheaper when n > k.

*Sparse*, from the training tokens x (rows, n) alone, O(rows · n): with g_j = c_{x_j} the
count of the token of sample j (a scatter-add into a zero scratch array, a gather, and the
scatter undone), every sum over the support is a sum over samples weighted by 1 / g_j:

    σ = Σ_j g_j / n²,      ‖p‖∞ = max_j g_j / n,      H = log n − (1/n) Σ_j log g_j,
    support = Σ_j 1 / g_j,  ‖p − q‖₁ = 1 + Σ_j (|g_j/n − q_{x_j}| − q_{x_j}) / g_j,

the last because Σ_i |p_i − q_i| = Σ_{i: p_i>0} (|p_i − q_i| − q_i) + Σ_i q_i for any
probability vector q (q = p(0) or p(1)). Cheaper when n < k.

Both return float64 metrics per row, ``collapsed`` (‖p‖∞ = 1, exact in integers) and the
Dirac token of collapsed rows (−1 elsewhere), in live coordinates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


class Truth:
    """p(0) rows in live coordinates: (rows, k), or (1, k) shared when there is one context."""

    def __init__(self, p_live: torch.Tensor, row_context: torch.Tensor):
        self.shared = p_live.shape[0] == 1
        self.rows = p_live if self.shared else p_live[row_context]

    def keep(self, mask: torch.Tensor) -> None:
        if not self.shared:
            self.rows = self.rows[mask]

    def at(self, tokens: torch.Tensor) -> torch.Tensor:
        """p(0) of each row's context at ``tokens`` (rows, j) -> (rows, j) float64."""
        if self.shared:
            return self.rows[0][tokens]
        return self.rows.gather(1, tokens)


class CountScratch:
    """A zero (rows, k) int32 array reused every generation to count tokens, and the ±1 it
    scatters (made once: building a small tensor on a GPU is a host-to-device copy)."""

    def __init__(self, rows: int, k: int, device: torch.device):
        self.counts = torch.zeros((rows, k), dtype=torch.int32, device=device)
        unit = torch.tensor([1, -1], dtype=torch.int32, device=device)
        self.plus, self.minus = unit[0:1], unit[1:2]

    def keep(self, mask: torch.Tensor) -> CountScratch:
        self.counts = self.counts[mask]
        return self

    def token_metrics(self, tokens: torch.Tensor, first: torch.Tensor | None, truth: Truth,
                      names: Sequence[str]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Metrics of the model fitted on ``tokens`` (rows, n) by the cheaper route: sparse
        when n < k, else dense on counts made in the scratch array (zeroed again after)."""
        n, k = tokens.shape[1], self.counts.shape[1]
        if n < k:
            return sparse_metrics(tokens, self, first, truth, names)
        self.counts.scatter_add_(1, tokens, self.plus.expand_as(tokens))
        out = dense_metrics(self.counts, n, first, truth, names)
        self.counts.zero_()
        return out


def dense_metrics(counts: torch.Tensor, size: int, first: torch.Tensor | None, truth: Truth,
                  names: Sequence[str]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Metrics of p = counts / size for counts (rows, k) int64; ``first`` = p(1) (rows, k)."""
    p = counts.double() / size  # int / float would give float32
    out: dict[str, torch.Tensor] = {}
    if "sigma" in names:
        out["sigma"] = torch.einsum("ij,ij->i", p, p)
    # amax/argmax: max(dim) with indices is far slower on small CPU tensors.
    top = counts.amax(dim=1)
    if "sup" in names:
        out["sup"] = top.double() / size
    if "l1_to_first" in names:
        out["l1_to_first"] = (p - first).abs_().sum(dim=1)
    if "l1_to_true" in names:
        out["l1_to_true"] = (p - truth.rows).abs_().sum(dim=1)
    if "entropy" in names:
        out["entropy"] = -torch.special.xlogy(p, p).sum(dim=1)
    if "support" in names:
        out["support"] = (counts > 0).sum(dim=1, dtype=torch.float64)
    out["collapsed"] = top == size
    return out, torch.where(out["collapsed"], counts.argmax(dim=1), -1)


def sparse_metrics(tokens: torch.Tensor, scratch: CountScratch, first: torch.Tensor | None,
                   truth: Truth, names: Sequence[str]
                   ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Metrics of the model fitted on ``tokens`` (rows, n) int64, in O(rows · n).

    ``scratch.counts`` must be all zero; it is left all zero.
    """
    n = tokens.shape[1]
    counts = scratch.counts
    counts.scatter_add_(1, tokens, scratch.plus.expand_as(tokens))
    g = counts.gather(1, tokens)  # (rows, n): count of each sample's token
    counts.scatter_add_(1, tokens, scratch.minus.expand_as(tokens))
    out: dict[str, torch.Tensor] = {}
    top = g.amax(dim=1)
    if "sigma" in names:
        out["sigma"] = g.sum(dim=1, dtype=torch.int64).double() / (n * n)
    if "sup" in names:
        out["sup"] = top.double() / n
    need_float = {"l1_to_first", "l1_to_true", "entropy", "support"} & set(names)
    if need_float:
        gf = g.double()
        weight = gf.reciprocal()
        p = gf / n
        if "l1_to_first" in names:
            out["l1_to_first"] = _l1_from_samples(p, weight, first.gather(1, tokens))
        if "l1_to_true" in names:
            out["l1_to_true"] = _l1_from_samples(p, weight, truth.at(tokens))
        if "entropy" in names:
            out["entropy"] = torch.log(gf).sum(dim=1).div_(-float(n)).add_(math.log(n))
        if "support" in names:
            out["support"] = weight.sum(dim=1).round_()
    out["collapsed"] = top == n
    return out, torch.where(out["collapsed"], tokens[:, 0], -1)


def _l1_from_samples(p: torch.Tensor, weight: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """‖p − q‖₁ = 1 + Σ_j (|p_{x_j} − q_{x_j}| − q_{x_j}) / g_j, per row."""
    terms = (p - q).abs_().sub_(q).mul_(weight)
    return terms.sum(dim=1).add_(1.0).clamp_(min=0.0)
