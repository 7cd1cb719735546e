"""Training counts of the functional loop, generation by generation (paper eq. 5).

Model m of a run trains, in every context, on n_t^(m) samples of each earlier model t
(``scenario.counts(m)``), t = 0 being real data: fresh draws from p(0), or the fixed corpus of N
samples drawn once (``scenario.real == "corpus"``, its first n_0^(m) samples). The softmax
objective sees data only through counts (:mod:`.solvers`), so the history holds models as
probabilities and training sets as counts (runs, contexts, vocab). Scenarios are asked what
they need, as the statistical loop asks them:

* ``pooled`` (random pool): each sample comes from a uniformly chosen generation 0 … m−1, so
  the n samples are n draws from the mixture (1/m) Σ_t p(t): a running sum of the models.
* ``keeps_published`` (accumulate): model t publishes n samples once; later models reuse them
  (a running sum of published counts after the corpus); with ``needs_token_order`` the
  training set is a subsample without replacement of N + n samples of that pool
  (multivariate hypergeometric, one token at a time).
* otherwise models within ``scenario.lag`` generations are kept and drawn from afresh.

Randomness: runs come in blocks of RUN_BLOCK, each with its own stream
(:func:`modelcollapse.rng.block_generator`, ``stream=DRAW_STREAM``), so results depend neither
on chunking nor on which other runs are still simulated.
"""

from __future__ import annotations

import numpy as np

from ..rng import RUN_BLOCK, block_generator
from ..scenarios import Scenario

__all__ = ["DRAW_STREAM", "CountHistory", "draw_counts"]

#: Stream of the functional loop's draws (the statistical engine uses stream 0).
DRAW_STREAM = 25


def draw_counts(p: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Counts of ``size`` i.i.d. draws from every row of ``p`` (rows, vocab): inverse CDF on
    all rows at once (one sorted search), O(rows · size · log)."""
    rows, vocab = p.shape
    if size == 0 or rows == 0:
        return np.zeros((rows, vocab), dtype=np.int64)
    cdf = np.cumsum(p, axis=1)
    cdf /= cdf[:, -1:]
    cdf[:, -1] = 1.0
    offset = np.arange(rows, dtype=np.float64)[:, None]
    flat = (cdf + offset).ravel()
    u = rng.random((rows, size)) + offset
    index = np.searchsorted(flat, u.ravel(), side="right")
    index = np.minimum(index, rows * vocab - 1)
    return np.bincount(index, minlength=rows * vocab).reshape(rows, vocab).astype(np.int64)


class CountHistory:
    """The models and data a chunk of runs has produced, and the training counts of the next
    model. ``runs``: the global ids of the runs simulated (ascending); ``p0`` (contexts, vocab).
    """

    def __init__(self, scenario: Scenario, p0: np.ndarray, runs: np.ndarray, entropy: int):
        self.scenario, self.p0 = scenario, p0
        self.runs = np.asarray(runs)
        blocks = np.unique(self.runs // RUN_BLOCK)
        self.generators = {int(b): block_generator(entropy, int(b), stream=DRAW_STREAM)
                           for b in blocks}
        self.models: dict[int, np.ndarray] = {}
        self.pool_sum: np.ndarray | None = None  # pooled: Σ_t p(t)
        self.published: np.ndarray | None = None  # keeps_published: Σ published counts
        self.corpus_tokens: np.ndarray | None = None
        self.corpus_counts: np.ndarray | None = None
        if scenario.real == "corpus":
            self._draw_corpus(scenario.corpus_size())

    # --- draws -------------------------------------------------------------------------------
    def draw(self, p: np.ndarray, size: int) -> np.ndarray:
        """``size`` draws per (run, context) from ``p`` (runs, contexts, vocab), each block of
        runs from its own stream."""
        out = np.zeros(p.shape, dtype=np.int64)
        blocks = self.runs // RUN_BLOCK
        for block, rng in self.generators.items():
            rows = np.flatnonzero(blocks == block)
            if rows.size:
                flat = p[rows].reshape(-1, p.shape[2])
                out[rows] = draw_counts(flat, size, rng).reshape(rows.size, *p.shape[1:])
        return out

    def _tiled_p0(self) -> np.ndarray:
        return np.broadcast_to(self.p0, (len(self.runs), *self.p0.shape))

    def _draw_corpus(self, size: int) -> None:
        """The fixed real corpus: ``size`` tokens per (run, context), in order when the
        scenario slices it, else as counts."""
        if self.scenario.needs_token_order and not self.scenario.keeps_published:
            tokens = np.zeros((len(self.runs), self.p0.shape[0], size), dtype=np.int32)
            blocks = self.runs // RUN_BLOCK
            cdf = np.cumsum(self.p0, axis=1)
            cdf /= cdf[:, -1:]
            for block, rng in self.generators.items():
                rows = np.flatnonzero(blocks == block)
                u = rng.random((rows.size, self.p0.shape[0], size))
                for j in range(self.p0.shape[0]):
                    tokens[rows, j] = np.searchsorted(cdf[j], u[:, j], side="right")
            self.corpus_tokens = np.minimum(tokens, self.p0.shape[1] - 1)
        else:
            self.corpus_counts = self.draw(self._tiled_p0(), size)

    def _corpus_prefix(self, size: int) -> np.ndarray:
        if self.corpus_tokens is None:
            return self.corpus_counts
        vocab = self.p0.shape[1]
        head = self.corpus_tokens[:, :, :size].astype(np.int64)
        rows = head.shape[0] * head.shape[1]
        flat = np.arange(rows)[:, None] * vocab + head.reshape(rows, -1)
        return np.bincount(flat.ravel(), minlength=rows * vocab).reshape(*head.shape[:2], vocab)

    # --- what the loop calls -----------------------------------------------------------------
    def store(self, m: int, p: np.ndarray) -> None:
        """Model m (runs, contexts, vocab) as later models sample it."""
        if self.scenario.pooled:
            self.pool_sum = (self.p0[None] + p) if self.pool_sum is None else self.pool_sum + p
            return
        self.models[m] = p
        lag = self.scenario.lag
        if lag is not None:
            for old in [t for t in self.models if t <= m - lag]:
                del self.models[old]

    def training_counts(self, m: int) -> np.ndarray:
        """Counts (runs, contexts, vocab) that model m trains on (eq. 5)."""
        scenario = self.scenario
        if scenario.pooled:
            mixture = (self._tiled_p0() if self.pool_sum is None else self.pool_sum / m)
            return self.draw(mixture, int(scenario.n))
        if scenario.keeps_published:
            if m == 1:
                return self.corpus_counts.copy()
            fresh = self.draw(self.models[m - 1], int(scenario.n))
            self.published = fresh if self.published is None else self.published + fresh
            pool = self.corpus_counts + self.published
            if scenario.needs_token_order:
                return self._subsample(pool, scenario.corpus_size() + int(scenario.n))
            return pool
        total = None
        for t, size in enumerate(scenario.counts(m)):
            size = int(size)
            if size == 0:
                continue
            if t == 0:
                part = (self._corpus_prefix(size) if scenario.real == "corpus"
                        else self.draw(self._tiled_p0(), size))
            else:
                part = self.draw(self.models[t], size)
            total = part if total is None else total + part
        return total

    def _subsample(self, pool: np.ndarray, size: int) -> np.ndarray:
        """``size`` samples without replacement from each (run, context) of ``pool``."""
        out = np.zeros_like(pool)
        blocks = self.runs // RUN_BLOCK
        for block, rng in self.generators.items():
            rows = np.flatnonzero(blocks == block)
            counts = pool[rows]
            left = np.full(counts.shape[:2], size, dtype=np.int64)
            rest = counts.sum(axis=2)
            for i in range(counts.shape[2]):
                rest = rest - counts[:, :, i]
                out[rows, :, i] = rng.hypergeometric(counts[:, :, i], rest, left)
                left = left - out[rows, :, i]
        return out

    def keep(self, alive: np.ndarray) -> None:
        """Only the runs ``alive`` (a boolean mask over the runs simulated) go on."""
        self.runs = self.runs[alive]
        self.models = {t: p[alive] for t, p in self.models.items()}
        for name in ("pool_sum", "published", "corpus_tokens", "corpus_counts"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[alive])
