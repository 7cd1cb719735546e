"""Recursive-training scenarios: how many samples generation t gives model m (paper eq. 5).

A scenario is a small frozen object. Its one job is to say what model m is trained on:

* ``counts(m)`` returns n_t^(m) for t = 0 … m−1 (eq. 5); t = 0 is real data.
* ``training_set(m, history)`` builds the training tokens of model m for the statistical
  loop, from ``history`` (see :class:`modelcollapse.loop.History`), which can draw fresh
  samples from any stored model, from p(0), or hand out the fixed real corpus.

Real data (t = 0) is either the *fixed corpus* of N samples drawn once and reused every
generation (``real = "corpus"``, as in the proof of Theorem 4) or *fresh* draws from p(0)
(``real = "fresh"``). Samples from a model t ≥ 1 are fresh i.i.d. draws from p(t), except in
the accumulate scenarios, where the data each model published is kept and reused.

A scenario states what the engine may rely on, and the engine asks instead of checking types:

* ``lag`` (how many of the most recent models the next one can draw from; ``None`` =
  unbounded) and ``uses_real`` (whether real data feeds every generation) decide when a run
  can stop. A run is *absorbed* when its last ``lag`` models are the same Dirac mass and no
  real data comes in: nothing can change after that.
* ``needs_token_order``: whether its training sets need the order of the tokens (slices of
  the corpus, the random pool, subsampling). Scenarios without it run on models held as
  counts.
* ``fixed_step``: when every model from m = 2 on is the same fixed real corpus (possibly
  empty) followed by n fresh draws of model m − 1, the sizes of the two parts; the engine's
  multi-generation routes (compiled fixed corpus, fused GPU spans) run such scenarios.
* ``pooled``: it draws from every earlier model at once (the engine keeps them in one array).
* ``keeps_published``: the samples a generation publishes are kept and reused by every later
  model (the accumulate scenarios), rather than drawn afresh for each (eq. 5 as written).

Scenarios speak to a :class:`History`, the protocol every engine representation implements.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol

import numpy as np

from ._validation import check_choice, check_float, check_int

__all__ = [
    "SCENARIOS",
    "Accumulate",
    "AccumulateSubsample",
    "Custom",
    "FixedStep",
    "FreshReal",
    "FullySynthetic",
    "History",
    "MostRecent",
    "PartiallySynthetic",
    "RandomPool",
    "Scenario",
    "make_scenario",
    "make_text_scenario",
]


#: A fitted model and a sample, as a History holds them (training tokens or counts, numpy
#: arrays or torch tensors): scenarios pass them along without looking inside.
Model = Any
Sample = Any


class History(Protocol):
    """What a scenario may draw on when it builds model m; every engine representation
    (tokens or counts, numpy or torch) implements it. Rows are (run, context) pairs."""

    def draw(self, t: int, size: int) -> Sample:
        """``size`` fresh draws per row from model t (t = 0: from p(0) itself)."""

    def corpus(self) -> Sample:
        """The fixed real corpus (drawn from p(0) once, reused every generation), in order."""

    def corpus_model(self) -> Model:
        """The model fitted on the fixed corpus."""

    def model(self, sample: Sample, base: Model | None = None) -> Model:
        """Fit a model on ``sample`` (eq. 2), after the training data of ``base`` if given."""

    def stored(self, t: int) -> Model:
        """Model t, kept while a later model can train on it (see ``Scenario.lag``)."""

    def concat(self, parts: list[Sample]) -> Sample:
        """Join samples into one training set."""

    def draw_pooled(self, m: int, size: int) -> Sample:
        """Draws whose source generation is uniform on 0 … m−1 (``needs_token_order``)."""

    def publish(self, t: int, sample: Sample) -> None:
        """Keep the data model t generated, after the corpus (``needs_token_order``)."""

    def subsample_published(self, size: int) -> Sample:
        """``size`` samples without replacement from all published data
        (``needs_token_order``)."""


class FixedStep(NamedTuple):
    """Every model from m = 2 on: the fixed corpus's ``corpus`` tokens (0: none) followed by
    ``draws`` fresh draws of model m − 1."""

    draws: int
    corpus: int


class Scenario:
    """Base class. Subclasses are frozen dataclasses registered in :data:`SCENARIOS`; each
    states its capabilities (see the module docstring) as class attributes or properties."""

    name: ClassVar[str]
    real: ClassVar[str] = "fresh"
    lag: ClassVar[int | None] = 1
    uses_real: ClassVar[bool] = False
    #: Draws from every earlier model at once (the loop then keeps them in one array).
    pooled: ClassVar[bool] = False
    #: Reuses the samples earlier generations published (the accumulate scenarios).
    keeps_published: ClassVar[bool] = False

    @property
    def needs_token_order(self) -> bool:
        """Whether training sets need the tokens' order; the eq. 5 rule of the base class
        needs it only to slice the fixed corpus."""
        return self.real == "corpus"

    @property
    def fixed_step(self) -> FixedStep | None:
        """See :class:`FixedStep`; None when the scenario's models are built otherwise."""
        return None

    def counts(self, m: int) -> np.ndarray:  # pragma: no cover - abstract
        """n_t^(m) for t = 0 … m−1 (eq. 5), as an int array of length m."""
        raise NotImplementedError

    def training_set(self, m: int, history: History) -> Model:
        """Training tokens of model m. Default: follow ``counts(m)`` with fresh draws."""
        counts = self.counts(m)
        parts = [history.corpus()[:, : counts[0]] if (t == 0 and self.real == "corpus")
                 else history.draw(t, int(c)) for t, c in enumerate(counts) if c > 0]
        return history.model(history.concat(parts))

    def corpus_size(self) -> int:
        """Size of the fixed real corpus the scenario reuses (0 if it draws fresh real data)."""
        return 0

    def unreachable(self, m: int, stored) -> list[int]:
        """Of the generations ``stored``, those no model after m can train on: all before
        the last ``lag`` (none when the lag is unbounded)."""
        lag = self.lag
        return [] if lag is None else [t for t in stored if t <= m - lag]

    def describe(self) -> str:
        """``name(field=value, ...)``, as results and reports label the scenario."""
        fields = ", ".join(f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self))
        return f"{self.name}({fields})"


def _positive(value: int, name: str) -> int:
    return check_int(value, name, low=1, where="scenario")


@dataclass(frozen=True)
class FullySynthetic(Scenario):
    """§2.2: model m trains on n samples of model m−1; p(1) on n real samples."""

    n: int
    name: ClassVar[str] = "fully-synthetic"

    def __post_init__(self):
        _positive(self.n, "n")

    def counts(self, m: int) -> np.ndarray:
        out = np.zeros(m, dtype=np.int64)
        out[m - 1] = self.n
        return out

    @property
    def fixed_step(self) -> FixedStep:
        return FixedStep(draws=self.n, corpus=0)

    def training_set(self, m: int, history: History) -> Model:
        return history.model(history.draw(m - 1, self.n))


@dataclass(frozen=True)
class PartiallySynthetic(Scenario):
    """§2.2, §3.2: a fixed real corpus of N samples (the same every generation) plus n samples
    of model m−1; p(1) is trained on the corpus alone."""

    n: int
    N: int
    name: ClassVar[str] = "partially-synthetic"
    real: ClassVar[str] = "corpus"
    uses_real: ClassVar[bool] = True

    def __post_init__(self):
        _positive(self.n, "n")
        _positive(self.N, "N")

    def counts(self, m: int) -> np.ndarray:
        out = np.zeros(m, dtype=np.int64)
        out[0] = self.N
        if m >= 2:
            out[m - 1] = self.n
        return out

    def corpus_size(self) -> int:
        return self.N

    @property
    def needs_token_order(self) -> bool:
        return False  # the whole corpus, never a slice of it

    @property
    def fixed_step(self) -> FixedStep:
        return FixedStep(draws=self.n, corpus=self.N)

    def training_set(self, m: int, history: History) -> Model:
        if m == 1:
            return history.corpus_model()
        return history.model(history.draw(m - 1, self.n), base=history.corpus_model())


@dataclass(frozen=True)
class MostRecent(Scenario):
    """§4.2: model m trains on samples of the most recent K models, max(0, m−K) … m−1.

    ``split="even"`` (default): n samples split evenly over the k = min(m, K) models in
    reach, ⌊n/k⌋ each, and the n − k⌊n/k⌋ left over go one each to the most recent models.
    This reading reproduces the paper's Fig. 6 (mean T ≈ 95 and 216 for K = 5 and 10).
    ``split="literal"``: ⌊n/K⌋ samples from each model in reach, as eq. 5 of §4.2 is written;
    the first K−1 generations then see fewer than n samples (for n = K, p(1) is fitted on a
    single sample and is a Dirac mass at once). K = 1 is the fully synthetic loop.
    """

    n: int
    K: int
    split: str = "even"
    name: ClassVar[str] = "most-recent"

    def __post_init__(self):
        _positive(self.n, "n")
        _positive(self.K, "K")
        check_choice(self.split, "split", ("even", "literal"), where="scenario")
        if self.split == "literal" and self.K > self.n:
            raise ValueError(f"The 'K' parameter of scenario must be at most n={self.n} with "
                             f"split='literal' (each model gives ⌊n/K⌋ samples). Got {self.K}.")

    @property
    def lag(self) -> int:  # type: ignore[override]
        return self.K

    def counts(self, m: int) -> np.ndarray:
        out = np.zeros(m, dtype=np.int64)
        k = min(m, self.K)
        if self.split == "literal":
            out[m - k:] = self.n // self.K
        else:
            out[m - k:] = self.n // k
            leftover = self.n % k
            if leftover:
                out[m - leftover:] += 1
        return out


@dataclass(frozen=True)
class RandomPool(Scenario):
    """§4.2: each of the n samples of model m comes from a model drawn uniformly from
    generations 0 … m−1 (0 = fresh draws from the real distribution p(0))."""

    n: int
    name: ClassVar[str] = "random-pool"
    lag: ClassVar[int | None] = None
    uses_real: ClassVar[bool] = True
    pooled: ClassVar[bool] = True

    def __post_init__(self):
        _positive(self.n, "n")

    @property
    def needs_token_order(self) -> bool:
        return True  # each sample picks its source model

    def counts(self, m: int) -> np.ndarray:
        """Expected n_t^(m) = n/m per generation; the realised counts are multinomial."""
        return np.full(m, self.n / m)

    def training_set(self, m: int, history: History) -> Model:
        return history.model(history.draw_pooled(m, self.n))


@dataclass(frozen=True)
class Accumulate(Scenario):
    """All data so far: model m trains on the fixed real corpus (N) and the n samples each of
    models 1 … m−1 published, kept and reused (n^(m) = N + (m−1) n)."""

    n: int
    N: int
    name: ClassVar[str] = "accumulate"
    keeps_published: ClassVar[bool] = True
    real: ClassVar[str] = "corpus"
    uses_real: ClassVar[bool] = True

    def __post_init__(self):
        _positive(self.n, "n")
        _positive(self.N, "N")

    def counts(self, m: int) -> np.ndarray:
        out = np.full(m, self.n, dtype=np.int64)
        out[0] = self.N
        return out

    def corpus_size(self) -> int:
        return self.N

    @property
    def needs_token_order(self) -> bool:
        return False  # the whole corpus, never a slice of it

    def training_set(self, m: int, history: History) -> Model:
        if m == 1:
            return history.corpus_model()
        previous = history.stored(m - 1)
        return history.model(history.draw(m - 1, self.n), base=previous)


@dataclass(frozen=True)
class AccumulateSubsample(Scenario):
    """All data so far, subsampled: model m trains on N + n samples drawn without replacement
    from the real corpus and everything models 1 … m−1 published (the size stays fixed)."""

    n: int
    N: int
    name: ClassVar[str] = "accumulate-subsample"
    keeps_published: ClassVar[bool] = True
    real: ClassVar[str] = "corpus"
    uses_real: ClassVar[bool] = True

    def __post_init__(self):
        _positive(self.n, "n")
        _positive(self.N, "N")

    @property
    def needs_token_order(self) -> bool:
        return True  # subsamples without replacement

    def counts(self, m: int) -> np.ndarray:
        """Expected n_t^(m): the pool of N + (m−1) n samples is subsampled to N + n."""
        pool = np.full(m, float(self.n))
        pool[0] = self.N
        return pool * min(1.0, (self.N + self.n) / pool.sum())

    def corpus_size(self) -> int:
        return self.N

    def training_set(self, m: int, history: History) -> Model:
        if m == 1:
            return history.corpus_model()
        history.publish(m - 1, history.draw(m - 1, self.n))
        return history.model(history.subsample_published(self.N + self.n))


@dataclass(frozen=True)
class FreshReal(Scenario):
    """New real data every generation: model m trains on N fresh samples of p(0) plus n samples
    of model m−1; p(1) on N fresh real samples."""

    n: int
    N: int
    name: ClassVar[str] = "fresh-real"
    uses_real: ClassVar[bool] = True

    def __post_init__(self):
        _positive(self.n, "n")
        _positive(self.N, "N")

    def counts(self, m: int) -> np.ndarray:
        out = np.zeros(m, dtype=np.int64)
        out[0] = self.N
        if m >= 2:
            out[m - 1] += self.n
        return out


@dataclass(frozen=True)
class Custom(Scenario):
    """Any n_t^(m) (eq. 5): a function ``m -> counts`` (length m) or a matrix whose row m−1
    holds n_t^(m) for t = 0 … m−1. Samples are fresh draws; with ``real="corpus"`` the real
    part is the first n_0^(m) samples of a fixed corpus of size N."""

    rule: Callable[[int], np.ndarray] | np.ndarray
    N: int = 0
    real_mode: str = "fresh"
    lag_models: int | None = None
    name: ClassVar[str] = "custom"
    uses_real: ClassVar[bool] = True

    def __post_init__(self):
        check_choice(self.real_mode, "real", ("fresh", "corpus"), where="scenario")
        if self.real_mode == "corpus":
            _positive(self.N, "N")
        if self.lag_models is not None:
            _positive(self.lag_models, "lag")

    @property
    def lag(self) -> int | None:  # type: ignore[override]
        return self.lag_models

    @property
    def real(self) -> str:  # type: ignore[override]
        return self.real_mode

    def corpus_size(self) -> int:
        return self.N if self.real_mode == "corpus" else 0

    def counts(self, m: int) -> np.ndarray:
        if callable(self.rule):
            raw = np.asarray(self.rule(m))
        else:
            matrix = np.asarray(self.rule)
            if m > matrix.shape[0]:
                raise ValueError(f"The 'rule' parameter of scenario has {matrix.shape[0]} rows; "
                                 f"generation {m} needs row {m - 1}.")
            raw = matrix[m - 1, :m]
        if raw.shape != (m,) or np.any(raw < 0) or not np.all(raw == np.round(raw)):
            raise ValueError(f"The 'rule' parameter of scenario must give m={m} non-negative "
                             f"integer counts for generation {m}. Got {raw!r} instead.")
        counts = raw.astype(np.int64)
        if counts.sum() < 1:
            raise ValueError(f"The 'rule' parameter of scenario gives model {m} no samples.")
        if self.real_mode == "corpus" and counts[0] > self.N:
            raise ValueError(f"The 'rule' parameter of scenario asks {counts[0]} corpus samples "
                             f"at generation {m}; the corpus has N={self.N}.")
        return counts


#: Registry: scenario name -> class. Strings resolve here and nowhere else.
SCENARIOS: dict[str, type[Scenario]] = {
    cls.name: cls for cls in (FullySynthetic, PartiallySynthetic, MostRecent, RandomPool,
                              Accumulate, AccumulateSubsample, FreshReal, Custom)
}


def make_scenario(name: str | Scenario, *, n: int | None = None, N: int | None = None,
                  K: int | None = None, split: str = "even") -> Scenario:
    """Resolve a scenario name and its parameters into a scenario object."""
    if isinstance(name, Scenario):
        return name
    if name not in SCENARIOS or name == "custom":
        choices = sorted(k for k in SCENARIOS if k != "custom")
        raise ValueError(f"Scenario {name!r} unknown. Choose from {choices} "
                         f"(custom scenarios are built with modelcollapse.scenarios.Custom).")
    cls = SCENARIOS[name]
    given = {"n": n, "N": N, "K": K, "split": split}
    fields = {field: given[field] for field in parameters(cls)}
    for field in required_parameters(cls):
        if fields[field] is None:
            raise ValueError(f"The '{field}' parameter of scenario is required by {name!r}.")
    return cls(**fields)


def parameters(cls: type[Scenario]) -> tuple[str, ...]:
    """The parameters a scenario class takes (its dataclass fields)."""
    return tuple(field.name for field in dataclasses.fields(cls))


def required_parameters(cls: type[Scenario]) -> tuple[str, ...]:
    """The parameters a scenario class cannot do without (fields with no default)."""
    return tuple(field.name for field in dataclasses.fields(cls)
                 if field.default is dataclasses.MISSING
                 and field.default_factory is dataclasses.MISSING)


def make_text_scenario(name: str | Scenario, *, tokens: int,
                       synthetic_fraction: float | None = None, K: int | None = None,
                       choices: tuple[str, ...] | None = None,
                       where: str = "scenario") -> Scenario:
    """A scenario whose samples are tokens of text: ``tokens`` synthetic tokens per
    generation, and for the mixtures a real corpus of N = ``tokens`` with n = N f / (1 − f)
    synthetic tokens, so that the synthetic share n / (N + n) is f (the paper's Fig. 5:
    f = 0.5 and 0.2). ``choices``: the names the caller runs (default: every named one)."""
    if isinstance(name, Scenario):
        return name
    choices = choices or tuple(k for k in SCENARIOS if k != "custom")
    check_choice(name, "scenario", choices, where=where)
    check_int(tokens, "tokens", low=1, where=where)
    if name in ("partially-synthetic", "fresh-real"):
        if synthetic_fraction is None:
            raise ValueError(f"The 'synthetic_fraction' parameter of {where} is required by "
                             f"{name!r} (Fig. 5 uses 0.5 and 0.2).")
        f = check_float(synthetic_fraction, "synthetic_fraction", low=0.0, high=1.0,
                        low_open=True, where=where)
        if f >= 1.0:
            raise ValueError(f"The 'synthetic_fraction' parameter of {where} must be below 1 "
                             f"for a mixture; use scenario 'fully-synthetic' for 1.")
        n = max(1, round(tokens * f / (1 - f)))
        return PartiallySynthetic(n=n, N=tokens) if name == "partially-synthetic" \
            else FreshReal(n=n, N=tokens)
    if name == "most-recent":
        if K is None:
            raise ValueError(f"The 'K' parameter of {where} is required by 'most-recent'.")
        return MostRecent(n=tokens, K=check_int(K, "K", low=1, where=where))
    if name == "accumulate":
        return Accumulate(n=tokens, N=tokens)
    if name == "accumulate-subsample":
        return AccumulateSubsample(n=tokens, N=tokens)
    if name == "random-pool":
        return RandomPool(n=tokens)
    return FullySynthetic(n=tokens)
