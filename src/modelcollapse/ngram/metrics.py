"""Per-generation metrics of n-gram models, vectorised over runs.

Models are counts (runs, entries) laid out on one table's (context, token) entries: the
fixed-contexts loop's models on p(0)'s table, a generative model on its own table (runs = 1).
A context a model has not seen — lost, or never in its data — has no fitted distribution; the
model then *backs off* to its unigram (the distribution of all tokens it was trained to
predict), which is also what generation draws from there (:mod:`.sampler`).

* ``l1_to_first`` / ``l1_to_true``: ‖p(m)(·|c) − p(1)(·|c)‖₁ and against p(0), averaged over
  contexts c sampled from p(0) (Fig. 5 of the paper: 300 contexts).
* ``cross_entropy``: nats per token of the held-out real text under p(m) smoothed by
  Witten–Bell interpolation with the add-one unigram, P(x|c) = (n(c,x) + T(c) u(x)) /
  (n(c) + T(c)), T(c) the types seen after c, u(x) = (n(x) + 1)/(n + V); a lost context gets
  u(x). ``unseen_context``: the share of validation tokens whose context the model lacks
  (no smoothing involved).
* ``collapsed_share``: contexts whose model is a Dirac mass (one successor), of those it has;
  ``support_mean``: successors per context; ``contexts``, ``types``: contexts and n-gram types
  alive; ``entropy_rate``: Σ_c π(c) H(p(·|c)) in nats, π(c) ∝ the context's training count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import xlogy

from .table import NgramTable, context_keys

__all__ = ["METRICS", "DenseProbe", "RowProbe", "Validation", "model_metrics",
           "sample_contexts"]

METRICS = ("l1_to_first", "l1_to_true", "cross_entropy", "unseen_context", "collapsed_share",
           "support_mean", "contexts", "types", "entropy_rate")

#: Runs × sampled contexts × vocabulary entries held at once for the L1 metrics.
_DENSE_BLOCK = 1 << 23


def sample_contexts(table: NgramTable, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` context keys drawn from p(0)'s contexts, each with probability ∝ its count."""
    totals = table.totals.astype(np.float64)
    return table.keys[rng.choice(table.n_contexts, size=size, p=totals / totals.sum())]


@dataclass(frozen=True)
class Validation:
    """Held-out real text, cut into what each model is asked: contexts and next tokens."""

    contexts: np.ndarray   # (positions,) context keys
    tokens: np.ndarray     # (positions,) the token that follows

    @classmethod
    def of(cls, tokens: np.ndarray, order: int, vocab_size: int) -> Validation:
        keys = context_keys(tokens, order, vocab_size)
        return cls(keys, np.asarray(tokens[order:], dtype=np.int64))


class DenseProbe:
    """The models' next-token distributions at the sampled contexts as dense (runs,
    contexts, vocab) arrays: for models on tables of their own (the generative loop), whose
    rows differ from p(0)'s and which may lack a context (then: the unigram back-off)."""

    def __init__(self, keys: np.ndarray):
        self.keys = keys

    def distributions(self, table: NgramTable, counts: np.ndarray) -> np.ndarray:
        return distributions_at(table, counts, self.keys)

    @staticmethod
    def l1(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        """(runs, contexts) ‖p − q‖₁."""
        return np.abs(p - q).sum(axis=-1)


class RowProbe:
    """The same on p(0)'s rows only, (runs, entries of the distinct sampled rows): for the
    fixed-contexts loop, whose models all live on p(0)'s entries and never lack a context,
    so no (contexts × vocab) array is needed. Contexts are sampled with replacement (a
    frequent one many times): each distinct row is read once."""

    def __init__(self, p0: NgramTable, keys: np.ndarray):
        rows = p0.rows(keys)
        if np.any(rows < 0):
            raise ValueError("The sampled contexts must be p(0)'s.")
        distinct, self.sample_row = np.unique(rows, return_inverse=True)
        lengths = np.diff(p0.offsets)[distinct]
        self.starts = np.r_[0, np.cumsum(lengths)[:-1]]
        self.entries = np.concatenate([np.arange(p0.offsets[j], p0.offsets[j + 1])
                                       for j in distinct])
        self.row_of_entry = np.repeat(np.arange(distinct.size), lengths)

    def distributions(self, table: NgramTable, counts: np.ndarray) -> np.ndarray:
        picked = counts[:, self.entries].astype(np.float64)
        totals = np.add.reduceat(picked, self.starts, axis=1)
        return picked / totals[:, self.row_of_entry]

    def l1(self, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        """(runs, sampled contexts) ‖p − q‖₁."""
        return np.add.reduceat(np.abs(p - q), self.starts, axis=-1)[:, self.sample_row]


def model_metrics(table: NgramTable, counts: np.ndarray, *, probe, first: np.ndarray | None,
                  true: np.ndarray, validation: Validation,
                  context_weights: np.ndarray | None = None
                  ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Every metric of :data:`METRICS` per run, (runs,) each, for models ``counts``
    (runs, entries) on ``table``'s layout; and the models' distributions at the sampled
    contexts and ‖p(m) − p(1)‖₁ there, (runs, contexts) (zeros without ``first``).
    ``probe`` (:class:`DenseProbe` or :class:`RowProbe`) reads the distributions;
    ``first``, ``true``: p(1) and p(0) as it reads them; ``context_weights`` (contexts,):
    π(c) of the entropy rate (default: the models' own context counts)."""
    layout = table.layout
    totals = layout.row_sums(counts)
    alive = totals > 0
    support = layout.row_sums((counts > 0).astype(np.int64))
    n_alive = alive.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = counts / np.maximum(totals, 1)[:, layout.row_of_entry]
        entropy = -layout.row_sums(xlogy(share, share))
        weights = totals if context_weights is None else np.broadcast_to(context_weights,
                                                                         totals.shape)
        rate = (weights * entropy).sum(axis=1) / weights.sum(axis=1)
        out = {
            "collapsed_share": ((support == 1) & alive).sum(axis=1) / n_alive,
            "support_mean": support.sum(axis=1) / n_alive,
            "contexts": n_alive.astype(np.float64),
            "types": support.sum(axis=1).astype(np.float64),
            "entropy_rate": rate,
        }
    p = probe.distributions(table, counts)
    l1_first = probe.l1(p, first) if first is not None else np.zeros(p.shape[:2])
    out["l1_to_first"] = l1_first.mean(axis=-1)
    out["l1_to_true"] = probe.l1(p, true).mean(axis=-1)
    out["cross_entropy"], out["unseen_context"] = cross_entropy(table, counts, validation)
    return out, p, l1_first


def unigrams(table: NgramTable, counts: np.ndarray) -> np.ndarray:
    """(runs, vocab) the counts of each token predicted."""
    out = np.zeros((counts.shape[0], table.vocab_size))
    for r in range(counts.shape[0]):
        out[r] = np.bincount(table.tokens, weights=counts[r], minlength=table.vocab_size)
    return out


def distributions_at(table: NgramTable, counts: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(runs, contexts, vocab) the models' next-token distributions at context ``keys``: the
    fitted frequencies (eq. 2), the unigram back-off where a model lacks the context."""
    rows = table.rows(keys)
    uni = unigrams(table, counts)
    uni /= np.maximum(uni.sum(axis=1, keepdims=True), 1)
    out = np.repeat(uni[:, None, :], keys.size, axis=1)
    for i, j in enumerate(rows):
        if j < 0:
            continue
        a, b = table.offsets[j], table.offsets[j + 1]
        row = counts[:, a:b].astype(np.float64)
        total = row.sum(axis=1)
        seen = total > 0
        out[seen, i, :] = 0.0
        out[np.ix_(seen, [i], table.tokens[a:b])] = (row[seen] / total[seen, None])[:, None]
    return out


def cross_entropy(table: NgramTable, counts: np.ndarray,
                  validation: Validation) -> tuple[np.ndarray, np.ndarray]:
    """Witten–Bell cross-entropy (nats/token) of the validation text and the share of its
    tokens whose context each model lacks, (runs,) each."""
    layout = table.layout
    rows = table.rows(validation.contexts)
    entry = table.entries(validation.contexts * table.vocab_size + validation.tokens)
    uni = unigrams(table, counts)
    ce = np.empty(counts.shape[0])
    unseen = np.empty(counts.shape[0])
    vocab = table.vocab_size
    for r in range(counts.shape[0]):
        totals = layout.row_sums(counts[r])
        types = layout.row_sums((counts[r] > 0).astype(np.int64))
        u = (uni[r] + 1.0) / (uni[r].sum() + vocab)
        ux = u[validation.tokens]
        n_cx = np.where(entry >= 0, counts[r][np.maximum(entry, 0)], 0)
        n_c = np.where(rows >= 0, totals[np.maximum(rows, 0)], 0)
        t_c = np.where(rows >= 0, types[np.maximum(rows, 0)], 0)
        lacks = n_c == 0
        prob = np.where(lacks, ux, (n_cx + t_c * ux) / np.maximum(n_c + t_c, 1))
        ce[r] = -np.log(prob).mean()
        unseen[r] = lacks.mean()
    return ce, unseen
