"""The generative loop: model m writes a corpus, model m + 1 is counted from it.

Unlike the fixed-contexts loop, no context keeps its sample size: how often a context occurs
in the next corpus is itself drawn from the model, so context frequencies drift and contexts
are lost or appear — what a real language model trained on generated text sees.

A sample of T tokens is ``streams`` parallel streams written autoregressively
(:func:`.sampler.generate`), each started from k tokens of the real training text at a
uniform position; n-grams never cross a stream boundary. A scenario's sizes are tokens
(:func:`modelcollapse.scenarios.make_text_scenario`: ``tokens`` per unit), and t = 0 is p(0),
the corpus's own n-gram model (real data = text sampled from p(0), as the paper's loop).
"""

from __future__ import annotations

import numpy as np

from ..rng import keyed_generator
from ..scenarios import Scenario
from .sampler import generate
from .table import NgramTable

__all__ = ["TextHistory", "generation_rng", "real_starts"]

#: Random stream of the generative loop (see rng; one generator per generation).
STREAM = 25


def generation_rng(entropy: int, m: int, part: int = 0, run: int = 0) -> np.random.Generator:
    """The stream of generation m (0: the fixed real corpus) of run ``run``; ``part``
    separates uses."""
    return keyed_generator(entropy, STREAM, run, m, part)


def real_starts(train: np.ndarray, count: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """(count, k): k consecutive tokens of the real training text at uniform positions, the
    first tokens of as many streams."""
    at = rng.integers(0, train.size - k + 1, size=count)
    return train[at[:, None] + np.arange(k)[None, :]]


class TextHistory:
    """What a scenario draws on (:class:`modelcollapse.scenarios.History`) when samples are
    token streams (lists of (streams, length) arrays) and models are :class:`NgramTable`."""

    def __init__(self, p0: NgramTable, train: np.ndarray, scenario: Scenario, *,
                 streams: int, entropy: int, run: int = 0):
        self.p0, self.train, self.scenario = p0, train, scenario
        self.streams, self.entropy, self.run = streams, entropy, run
        self.models: dict[int, NgramTable] = {}
        self._corpus: list[np.ndarray] | None = None
        self._pool: list[np.ndarray] | None = None
        self.rng = generation_rng(entropy, 0, run=run)

    def begin(self, m: int) -> None:
        self.rng = generation_rng(self.entropy, m, run=self.run)

    def write(self, model: NgramTable, size: int, rng: np.random.Generator) -> list[np.ndarray]:
        """``size`` tokens written by ``model`` in at most ``self.streams`` streams."""
        k = model.order
        size = int(size)
        if size <= 0:
            return []
        count = max(1, min(self.streams, size // (k + 1)))
        length, extra = divmod(size, count)
        parts = [generate(model, real_starts(self.train, count, k, rng), length, rng)]
        if extra:  # the remainder as one more, shorter stream (kept if it predicts a token)
            parts.append(generate(model, real_starts(self.train, 1, k, rng), max(extra, k + 1),
                                  rng))
        return parts

    def source(self, t: int) -> NgramTable:
        return self.p0 if t == 0 else self.models[t]

    # --- the History protocol ---------------------------------------------------------

    def draw(self, t: int, size: int) -> list[np.ndarray]:
        return self.write(self.source(t), size, self.rng)

    def corpus(self) -> list[np.ndarray]:
        if self._corpus is None:
            self._corpus = self.write(self.p0, self.scenario.corpus_size(),
                                      generation_rng(self.entropy, 0, run=self.run))
        return self._corpus

    def corpus_model(self) -> NgramTable:
        return self.model(self.corpus())

    def model(self, sample: list[np.ndarray], base: NgramTable | None = None) -> NgramTable:
        table = NgramTable.count(sample, self.p0.order, self.p0.vocab_size)
        return table if base is None else base.merge(table)

    def stored(self, t: int) -> NgramTable:
        return self.models[t]

    def concat(self, parts: list[list[np.ndarray]]) -> list[np.ndarray]:
        return [stream for part in parts for stream in part]

    def draw_pooled(self, m: int, size: int) -> list[np.ndarray]:
        """Each token's source generation uniform on 0 … m−1 (whole sizes per source)."""
        sizes = self.rng.multinomial(int(size), np.full(m, 1.0 / m))
        return [s for t, n in enumerate(sizes) for s in self.write(self.source(t), n, self.rng)]

    def publish(self, t: int, sample: list[np.ndarray]) -> None:
        if self._pool is None:
            self._pool = list(self.corpus())
        self._pool += sample

    def subsample_published(self, size: int) -> list[np.ndarray]:
        """Rows of the pool's streams, without replacement, until ``size`` tokens."""
        pool = self._pool if self._pool is not None else self.corpus()
        rows = [(i, r) for i, part in enumerate(pool) for r in range(part.shape[0])]
        order = self.rng.permutation(len(rows))
        picked, total = [], 0
        for j in order:
            if total >= size:
                break
            i, r = rows[j]
            picked.append(pool[i][r])
            total += pool[i].shape[1]
        return picked

    # --- kept between generations -------------------------------------------------------

    def store(self, m: int, model: NgramTable) -> None:
        self.models[m] = model
        for t in self.scenario.unreachable(m, list(self.models)):
            del self.models[t]

    def state(self) -> dict[str, np.ndarray]:
        out = {}
        for t, model in self.models.items():
            out.update({f"model_{t}_{name}": a for name, a in model.arrays().items()})
        for name, parts in (("corpus", self._corpus), ("pool", self._pool)):
            if parts is not None:
                out.update({f"{name}_{i}": a for i, a in enumerate(parts)})
        return out

    def restore(self, state: dict[str, np.ndarray]) -> None:
        grouped: dict[int, dict[str, np.ndarray]] = {}
        for key, value in state.items():
            if key.startswith("model_"):
                _, t, name = key.split("_", 2)
                grouped.setdefault(int(t), {})[name] = value
        self.models = {t: NgramTable.from_arrays(a) for t, a in grouped.items()}
        for name in ("corpus", "pool"):
            parts = [state[k] for k in sorted((k for k in state if k.startswith(name + "_")),
                                              key=lambda k: int(k.rsplit("_", 1)[1]))]
            setattr(self, f"_{name}", parts or None)
