"""What each model of the transformer loop trains on: eq. 5's n_t^(m) as slices of corpora.

Model m ≥ 1 trains on n_t^(m) tokens of each generation t < m, as ``scenario.counts(m)``
says: fresh tokens for every model (disjoint slices of generation t's corpus), except the
fixed real corpus of the mixtures (``scenario.real == "corpus"``) and the published data of
accumulate scenarios, which every later model reuses.

The plan is computed as the loop asks for it, never all at once: model m's row of eq. 5
costs O(m), and a generation's corpus size is known once every model that may read it is
planned. Which models those are follows from what the scenario states (``lag``,
``uses_real``, ``keeps_published``), so a run of a billion generations costs nothing here
before its first generation, and a run's plan grows with the generations it has done. A
scenario that states no lag (a ``Custom`` rule without ``lag_models``) may read any earlier
generation, so its plan is read whole the first time a corpus size is asked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from ..scenarios import Scenario, make_text_scenario

__all__ = [
    "CHECKED_ROWS",
    "LM_SCENARIOS",
    "REAL_SOURCES",
    "SCENARIO_PARAMETERS",
    "DataPlan",
    "Segment",
    "data_plan",
    "make_lm_scenario",
    "plan_row",
    "stream_unit",
]

#: Where generation 0's data comes from: samples of p(0) (the paper) or the real text.
REAL_SOURCES = ("p0", "text")
#: Scenario names the transformer loop resolves from strings.
LM_SCENARIOS = ("fully-synthetic", "partially-synthetic", "accumulate", "most-recent",
                "fresh-real")
#: The optional parameters each named scenario reads; any other scenario ignores them, so
#: they are refused there (the settings are stored with the result).
SCENARIO_PARAMETERS: dict[str, tuple[str, ...]] = {
    "partially-synthetic": ("synthetic_fraction",),
    "fresh-real": ("synthetic_fraction",),
    "most-recent": ("K",),
}
#: Rows of eq. 5 checked when a plan is made, before any work: enough to catch counts that
#: are random or fractional (a pooled draw gives n/m per generation from m = 3 on).
CHECKED_ROWS = 16


def make_lm_scenario(name: str | Scenario, *, tokens: int, synthetic_fraction: float | None = None,
                     K: int | None = None, where: str = "lm.run") -> Scenario:
    """A scenario whose samples are tokens (:func:`modelcollapse.scenarios.make_text_scenario`),
    among the ones the transformer loop runs."""
    return make_text_scenario(name, tokens=tokens, synthetic_fraction=synthetic_fraction, K=K,
                              choices=LM_SCENARIOS, where=where)


@dataclass(frozen=True)
class Segment:
    """Tokens [start, stop) of generation ``generation``'s corpus."""

    generation: int
    start: int
    stop: int

    @property
    def tokens(self) -> int:
        return self.stop - self.start


def stream_unit(real: str, stream_length: int) -> Callable[[int], int]:
    """Tokens a slice of generation t is rounded to: whole generated streams, except the real
    text (``real == "text"``), which is one long stream cut anywhere."""
    return lambda t: 1 if (t == 0 and real == "text") else stream_length


def plan_row(scenario: Scenario, m: int, unit: Callable[[int], int]
             ) -> tuple[np.ndarray, np.ndarray]:
    """Model m's row of eq. 5: the generations t it reads and n_t^(m) rounded up to whole
    streams of ``unit(t)`` tokens, as two int64 arrays (only the t with n_t^(m) > 0)."""
    raw = np.asarray(scenario.counts(m))
    if raw.shape != (m,) or not np.all(raw == np.round(raw)) or np.any(raw < 0):
        raise ValueError(f"Scenario {scenario.name!r} gives random or fractional counts "
                         f"n_t^(m); the transformer loop needs fixed counts "
                         f"({', '.join(LM_SCENARIOS)}, custom).")
    ts = np.flatnonzero(raw)
    units = np.fromiter((unit(int(t)) for t in ts), dtype=np.int64, count=len(ts))
    counts = raw[ts].astype(np.int64)
    return ts.astype(np.int64), -(-counts // units) * units


class _LazyMapping(Mapping):
    """A read-only mapping over ``keys`` whose values are computed when asked."""

    def __init__(self, keys: range, value: Callable[[int], object]):
        self._keys, self._value = keys, value

    def __getitem__(self, key):
        if key not in self._keys:
            raise KeyError(key)
        return self._value(int(key))

    def __iter__(self) -> Iterator[int]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


class DataPlan:
    """``segments[m]``: the training data of model m (1 … M); ``demand[t]``: tokens generation
    t must publish (the largest ``stop`` over its segments; 0 if no model reads it).

    Both are mappings computed on demand. Counts are rounded up to whole streams
    (``unit(t)`` tokens). A reused source gives every reader its first n_t^(m) tokens; a
    fresh one gives each reader the next unused slice. A reused real corpus publishes the
    scenario's ``corpus_size()``; accumulated data publishes what its first reader, model
    t + 1, takes, and later models may take no more.
    """

    def __init__(self, scenario: Scenario, n_generations: int, *,
                 unit: Callable[[int], int]):
        self.scenario, self.n_generations, self.unit = scenario, n_generations, unit
        lag = scenario.lag
        #: Models in reach of the next one, when the scenario bounds them (None: every one).
        self.window = (int(lag) if lag is not None and not scenario.keeps_published
                       and not scenario.pooled else None)
        self._fixed: dict[int, int] = {}
        if scenario.real == "corpus" and scenario.corpus_size() > 0:
            u = unit(0)
            self._fixed[0] = -(-int(scenario.corpus_size()) // u) * u
        self._rows: dict[int, tuple[Segment, ...]] = {}
        self._real_total: int | None = None
        self._reset()
        self.segments: Mapping[int, tuple[Segment, ...]] = _LazyMapping(
            range(1, n_generations + 1), self._segments)
        self.demand: Mapping[int, int] = _LazyMapping(range(n_generations + 1), self._demand)
        for m in range(1, min(n_generations, CHECKED_ROWS) + 1):
            plan_row(scenario, m, unit)

    def _reset(self) -> None:
        self._rows.clear()
        self._cursor: dict[int, int] = defaultdict(int)  # fresh sources: tokens handed out
        self._high: dict[int, int] = defaultdict(int)    # largest stop so far
        self._planned = 0                                # models 1 … _planned are planned

    def reused(self, t: int) -> bool:
        """Whether every reader of generation t takes its first tokens (else fresh slices)."""
        return self.scenario.real == "corpus" if t == 0 else self.scenario.keeps_published

    def last_reader(self, t: int) -> int:
        """The last model that may read generation t's data (t itself when none may)."""
        M = self.n_generations
        if t >= M:
            return t
        if self.window is None or (t == 0 and self.scenario.uses_real):
            return M
        return min(M, t + self.window)

    def forget(self, m: int) -> None:
        """Models 1 … m are trained: their rows are not needed any more."""
        for k in [k for k in self._rows if k <= m]:
            del self._rows[k]

    def _segments(self, m: int) -> tuple[Segment, ...]:
        if m not in self._rows:
            if m <= self._planned:  # forgotten: plan again from the start
                self._reset()
            self._plan_to(m)
        return self._rows[m]

    def _demand(self, t: int) -> int:
        if t in self._fixed:
            return self._fixed[t]
        if t == self.n_generations:
            return 0
        if self.reused(t):
            self._plan_to(t + 1)
        elif t == 0 and self.last_reader(0) == self.n_generations:
            return self._real_column()
        else:
            self._plan_to(self.last_reader(t))
        return self._high[t]

    def _real_column(self) -> int:
        """Tokens of generation 0 that every model reads afresh (fresh real data): the sum
        of eq. 5's first column, read without planning the rows."""
        if self._real_total is None:
            u, total = self.unit(0), 0
            for m in range(1, self.n_generations + 1):
                count = int(np.asarray(self.scenario.counts(m))[0])
                total += -(-count // u) * u
            self._real_total = total
        return self._real_total

    def _plan_to(self, h: int) -> None:
        scen, window = self.scenario, self.window
        for m in range(self._planned + 1, min(h, self.n_generations) + 1):
            ts, counts = plan_row(scen, m, self.unit)
            parts = []
            for t, count in zip(ts.tolist(), counts.tolist(), strict=True):
                if window is not None and t < m - window and not (t == 0 and scen.uses_real):
                    raise ValueError(f"Scenario {scen.describe()} gives model {m} tokens of "
                                     f"generation {t}, beyond its lag of {window} models.")
                if self.reused(t):
                    published = self._fixed.get(t, self._high[t] if m > t + 1 else count)
                    if count > published:
                        raise ValueError(f"Scenario {scen.describe()} gives model {m} {count} "
                                         f"tokens of generation {t}, which published "
                                         f"{published}: reused data cannot grow.")
                    start = 0
                else:
                    start = self._cursor[t]
                    self._cursor[t] += count
                parts.append(Segment(t, start, start + count))
                self._high[t] = max(self._high[t], start + count)
            self._rows[m] = tuple(parts)
            self._planned = m


def data_plan(scenario: Scenario, n_generations: int, *, unit: Callable[[int], int]
              ) -> DataPlan:
    """The data plan of models 1 … ``n_generations`` (see :class:`DataPlan`)."""
    return DataPlan(scenario, n_generations, unit=unit)
