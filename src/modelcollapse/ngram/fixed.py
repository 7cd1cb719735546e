"""The fixed-contexts loop: the paper's setting (eq. 2, §2.2) on every context of a corpus.

Each context j of p(0)'s table (the corpus's order-k contexts) is its own statistical loop, as
in the paper, with its own sample size: the base size is S_j = max(1, round(ratio · |C_j|)),
|C_j| the corpus count of context j. A scenario (eq. 5) is read in *units* of S_j: model m of
context j trains on round(n_t^(m) · S_j / UNIT) samples of generation t, where the scenario
is built with n, N in units (:func:`modelcollapse.scenarios.make_text_scenario` with
``tokens=UNIT``; each part rounded half up), so every scenario of
:mod:`modelcollapse.scenarios` runs unchanged, and a fully synthetic context is exactly the
statistical loop with n = S_j, whose law :func:`modelcollapse.theory.collapse_time_law` gives.

A model is an int array (runs, entries) over p(0)'s (context, token) entries: a model of
context j can only keep tokens of p(0)'s support there (eq. 2 never invents one), so the
layout is p(0)'s table for every run and generation, and no array is (contexts × vocab).
"""

from __future__ import annotations

import numpy as np

from .._validation import InputError
from ..rng import RUN_BLOCK, keyed_generator
from ..scenarios import Scenario
from .table import NgramTable

__all__ = ["UNIT", "ContextHistory", "base_sizes"]

#: One "sample" of a scenario built for this loop is S_j / UNIT samples of context j. UNIT is
#: divisible by 1 … 16, so a window of up to 16 models splits it without remainder.
UNIT = 720_720

#: Random stream of the fixed-contexts loop within a run block (see rng.block_generator).
STREAM = 24


def base_sizes(totals: np.ndarray, ratio: float) -> np.ndarray:
    """S_j = max(1, round(ratio · |C_j|)) per context."""
    return np.maximum(1, np.rint(ratio * np.asarray(totals, dtype=np.float64))).astype(np.int64)


class ContextHistory:
    """What a scenario draws on (:class:`modelcollapse.scenarios.History`), for one block of
    runs of the fixed-contexts loop; samples and models are counts (runs, entries)."""

    def __init__(self, p0: NgramTable, sizes: np.ndarray, scenario: Scenario, n_runs: int,
                 entropy: int, block: int):
        # p(0)'s entries are every model's layout; p(0) itself is their frequencies (eq. 2).
        self.layout, self.p0, self.sizes = p0.layout, p0.frequencies, sizes
        self.scenario, self.n_runs = scenario, n_runs
        self.entropy, self.block = entropy, block
        self.models: dict[int, np.ndarray] = {}
        self._corpus: np.ndarray | None = None
        self._pool: np.ndarray | None = None
        self.rng = self.generator(0)

    def generator(self, m: int) -> np.random.Generator:
        """The stream of generation m (0: the fixed corpus): keyed by (seed, block, m), so a
        resumed run draws what an unbroken one would."""
        return keyed_generator(self.entropy, STREAM, self.block, m)

    def begin(self, m: int) -> None:
        self.rng = self.generator(m)

    def scaled(self, size: float) -> np.ndarray:
        """(runs, contexts) sample sizes of a scenario size ``size`` (in units), rounded half
        up: a context with S_j = 1 in a window of two models takes one sample of each."""
        per_context = np.floor(size * self.sizes / UNIT + 0.5).astype(np.int64)
        return np.broadcast_to(per_context, (self.n_runs, self.layout.n_rows))

    # --- the History protocol ---------------------------------------------------------

    def draw(self, t: int, size: int) -> np.ndarray:
        weights = self.p0 if t == 0 else self.models[t]
        return self.layout.multinomial(self.rng, self.scaled(size), weights)

    def corpus(self) -> np.ndarray:
        if self._corpus is None:
            self._corpus = self.layout.multinomial(self.generator(0),
                                                   self.scaled(self.scenario.corpus_size()),
                                                   self.p0)
        return self._corpus

    def corpus_model(self) -> np.ndarray:
        return self.corpus()

    def model(self, sample: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
        return sample if base is None else sample + base

    def stored(self, t: int) -> np.ndarray:
        return self.models[t]

    def concat(self, parts: list[np.ndarray]) -> np.ndarray:
        return np.sum(parts, axis=0)

    def draw_pooled(self, m: int, size: int) -> np.ndarray:
        """Each of a row's samples from a source generation uniform on 0 … m−1."""
        sizes = self.scaled(size)
        out = np.zeros((self.n_runs, self.layout.n_entries), dtype=np.int64)
        left = sizes.copy()
        for t in range(m):  # conditional binomials over the m sources
            take = self.rng.binomial(left, 1.0 / (m - t))
            left = left - take
            weights = self.p0 if t == 0 else self.models[t]
            out += self.layout.multinomial(self.rng, take, weights)
        return out

    def publish(self, t: int, sample: np.ndarray) -> None:
        if self._pool is None:
            self._pool = self.corpus().copy()
        self._pool += sample

    def subsample_published(self, size: int) -> np.ndarray:
        pool = self._pool if self._pool is not None else self.corpus()
        return self.layout.without_replacement(self.rng, self.scaled(size), pool)

    # --- kept between generations -------------------------------------------------------

    def store(self, m: int, model: np.ndarray) -> None:
        """Keep model m; let go of models no later model can draw from (``scenario.lag``)."""
        totals = self.layout.row_sums(model)
        empty = np.flatnonzero((totals == 0).any(axis=0))
        if empty.size:
            j = int(empty[0])
            raise InputError(f"The 'ratio' parameter of ngram gives context {j} (S_j = "
                             f"{int(self.sizes[j])} samples) no training sample at generation "
                             f"{m} under {self.scenario.describe()}: raise the ratio or "
                             f"min_count.")
        self.models[m] = model
        for t in self.scenario.unreachable(m, list(self.models)):
            del self.models[t]

    def state(self) -> dict[str, np.ndarray]:
        """Everything later generations need, as arrays (a checkpoint)."""
        out = {f"model_{t}": model for t, model in self.models.items()}
        if self._corpus is not None:
            out["corpus"] = self._corpus
        if self._pool is not None:
            out["pool"] = self._pool
        return out

    def restore(self, state: dict[str, np.ndarray]) -> None:
        self.models = {int(k.split("_")[1]): np.asarray(v) for k, v in state.items()
                       if k.startswith("model_")}
        self._corpus = state.get("corpus")
        self._pool = state.get("pool")


def run_blocks(n_runs: int) -> list[tuple[int, int]]:
    """(first run, runs) of each block of RUN_BLOCK runs."""
    return [(first, min(RUN_BLOCK, n_runs - first)) for first in range(0, n_runs, RUN_BLOCK)]
