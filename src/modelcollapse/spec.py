"""The simulation spec: every input of ``simulate``, validated once (pydantic v2, frozen).

The CLI flags, a TOML file and the Python API all build this one model, so they share every
check. Unknown keys fail (``extra="forbid"``): a typo in a TOML key must not vanish.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ._validation import house_message, read_toml
from .distributions import (
    dirichlet_distribution,
    load_distribution,
    target_distribution,
    uniform_distribution,
    zipf_distribution,
)
from .engine.plan import REPRESENTATIONS, check_device_name
from .engine.recorder import TRAJECTORY_MEMORY_MB, kept_runs
from .metrics import METRICS, resolve_metrics
from .rng import generator
from .scenarios import SCENARIOS, Scenario, make_scenario, parameters, required_parameters

__all__ = ["SimulationSpec", "check_scenario_fields", "load_spec"]

#: S0 of family 'target' unless given (the paper's Fig. 3/6 p(0)).
TARGET_S0 = 0.1
#: Fields a p(0) file replaces: giving one beside the file would do nothing.
P0_FILE_REPLACES = ("vocab", "support", "S0", "family", "zipf_exponent", "dirichlet_alpha",
                    "contexts", "distribution_seed")
#: Fields that only one family of p(0) reads.
FAMILY_FIELDS = {"S0": "target", "zipf_exponent": "zipf", "dirichlet_alpha": "dirichlet"}
#: Fields that describe the scenario; each scenario reads those among its parameters.
SCENARIO_PARAMETERS = ("n", "N", "K", "window_split")

#: Largest size of anything counted by index (tokens, contexts, runs, generations): 32-bit.
INDEX_MAX = 2**31 - 1
#: Largest number of samples per generation: counts are 64-bit integers, and sums of samples
#: over generations must fit in them too.
SAMPLES_MAX = 10**15

ScenarioName = Literal[tuple(k for k in SCENARIOS if k != "custom")]  # type: ignore[valid-type]


class SimulationSpec(BaseModel):
    """Inputs of one simulation of the statistical loop. Defaults: the paper's Fig. 6 p(0)
    (s = 600, s̃ = 52, S0 = 0.1), fully synthetic with n = 10."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    vocab: int = Field(600, ge=1, le=INDEX_MAX, description="vocabulary size s")
    support: int | None = Field(52, ge=1, le=INDEX_MAX, description="support size s̃ of p(0)")
    family: Literal["target", "zipf", "dirichlet", "uniform"] = "target"
    p0: str | None = Field(None, description="file holding p(0): .npy, .txt, .csv or .json")
    # After family and p0: its default depends on them (see _target_default).
    S0: float | None = Field(None, gt=0, le=1, validate_default=True,
                             description="Σ p_i² of p(0); a parameter of family 'target' "
                                         f"only (default {TARGET_S0}), None for the others")
    zipf_exponent: float = Field(1.0, ge=0)
    dirichlet_alpha: float = Field(1.0, gt=0)
    contexts: int = Field(1, ge=1, le=INDEX_MAX,
                          description="independent contexts (rows of p(0))")
    distribution_seed: int | None = Field(None, ge=0, description="seed for p(0); default: seed")

    scenario: ScenarioName = "fully-synthetic"
    n: int = Field(10, ge=1, le=SAMPLES_MAX, description="synthetic samples per generation")
    N: int | None = Field(None, ge=1, le=SAMPLES_MAX,
                          description="real samples (fixed corpus or fresh)")
    K: int | None = Field(None, ge=1, le=INDEX_MAX,
                          description="window of the most-recent scenario")
    window_split: Literal["even", "literal"] = "even"

    generations: int = Field(100, ge=1, le=INDEX_MAX)
    runs: int = Field(100, ge=1, le=INDEX_MAX)
    seed: int | None = Field(None, ge=0)
    metrics: tuple[str, ...] | None = None
    backend: Literal["numpy", "torch"] = "numpy"
    device: str = "cpu"
    representation: Literal[REPRESENTATIONS] = Field(  # type: ignore[valid-type]
        "auto", description="how the engine holds a model: its training tokens, its counts, "
                            "or whichever the plan's rule picks (docs/backends.md)")
    trajectories: Literal["auto", "all", "none"] | int = Field(
        "auto", description="runs whose every generation is kept: 'all', 'none', the first k, "
                            "or 'auto' (all that fit in trajectory_memory_mb); means and "
                            "standard errors always cover every run")
    trajectory_memory_mb: float = Field(TRAJECTORY_MEMORY_MB, gt=0,
                                        description="memory kept trajectories may take (MB)")

    @field_validator("S0")
    @classmethod
    def _target_default(cls, value: float | None, info: ValidationInfo) -> float | None:
        """S0 is TARGET_S0 unless given for family 'target', the one family it describes, and
        None for the others and for a p(0) file: a stored spec never records an S0 its p(0)
        does not have as a parameter."""
        if value is None and info.data.get("family") == "target" and info.data.get("p0") is None:
            return TARGET_S0
        return value

    @model_validator(mode="before")
    @classmethod
    def _plain_values(cls, data):
        """Numbers from numpy as Python's, a list of metrics as a tuple, a torch device as
        its name: what a Python caller naturally passes, before the strict checks."""
        if not isinstance(data, dict):
            return data
        out = {}
        for key, value in data.items():
            if isinstance(value, np.generic):
                value = value.item()
            elif key == "metrics" and isinstance(value, list):
                value = tuple(value)
            elif key == "device" and type(value).__name__ == "device":
                value = str(value)
            out[key] = value
        return out

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> SimulationSpec:
        # Messages name the verb the user ran: simulate, or a verb that builds p(0) from the
        # same fields (theory, budget: validation context {"where": verb}).
        where = (info.context or {}).get("where", "simulate")
        self._check_p0_fields(where)
        self._check_scenario_fields(where)
        if self.backend == "torch":
            check_device_name(self.device)
        elif self.device != "cpu":
            raise ValueError(f"The 'device' parameter of {where} is {self.device!r}, which "
                             f"needs backend 'torch'.")
        if self.representation == "counts" and self.build_scenario().needs_token_order:
            raise ValueError(f"The 'representation' parameter of {where} cannot be 'counts' "
                             f"for scenario '{self.scenario}': it needs the order of the "
                             f"tokens.")
        if self.metrics is not None:
            unknown = sorted(set(self.metrics) - set(METRICS))
            if unknown:
                raise ValueError(house_message("metrics", f"be among {list(METRICS)}",
                                               unknown[0], where))
        if isinstance(self.trajectories, int) and self.trajectories < 0:
            raise ValueError(house_message("trajectories", "be 'auto', 'all', 'none' or a "
                                           "number of runs ≥ 0", self.trajectories, where))
        return self

    def _check_p0_fields(self, where: str) -> None:
        given = self.model_fields_set
        if self.p0 is not None:
            clash = sorted(given & set(P0_FILE_REPLACES))
            if clash:
                raise ValueError(f"The 'p0' and '{clash[0]}' parameters of {where} conflict: "
                                 f"p(0) comes from the file, so give one or the other.")
            if not Path(self.p0).is_file():
                raise ValueError(house_message("p0", "name an existing file", self.p0,
                                               where))
            return
        for field, family in FAMILY_FIELDS.items():
            if field in given and self.family != family:
                raise ValueError(f"The '{field}' parameter of {where} applies to family "
                                 f"'{family}' only; family is '{self.family}'.")
        if self.support is not None and self.support > self.vocab:
            raise ValueError(house_message("support", f"be at most 'vocab' ({self.vocab})",
                                           self.support, where))
        if self.family == "target":
            if self.support is None or self.S0 is None:
                raise ValueError(f"The 'support' and 'S0' parameters of {where} are both "
                                 "required by family 'target'.")
            low = 1 / self.support
            if not low - 1e-12 <= self.S0 <= 1.0:
                raise ValueError(house_message(
                    "S0", f"be in [1/support, 1] = [{low:.6g}, 1] for support {self.support}",
                    self.S0, where).removesuffix(".")
                    + " (family 'uniform' spreads p(0) evenly over any support).")
            if self.S0 == 1.0 and self.support != 1:
                raise ValueError(f"The 'S0' parameter of {where} can be 1 only when 'support' "
                                 "is 1.")

    def _check_scenario_fields(self, where: str) -> None:
        check_scenario_fields(self, where)

    def kept_runs(self, *, streamed: bool = False) -> int:
        """How many runs keep their trajectories; ValueError when they would not fit in
        ``trajectory_memory_mb`` and cannot be ``streamed`` to a store (see
        :func:`modelcollapse.recorder.kept_runs`)."""
        contexts = (self.contexts if self.p0 is None
                    else np.atleast_2d(load_distribution(self.p0, where="simulate")).shape[0])
        kept, _ = kept_runs(self.trajectories, n_runs=self.runs, n_contexts=contexts,
                            n_generations=self.generations,
                            n_metrics=len(resolve_metrics(self.metrics)),
                            memory_mb=self.trajectory_memory_mb, streamed=streamed,
                            where="the spec")
        return kept

    # --- resolution into what the loop consumes ---------------------------------------------
    def build_p0(self, where: str = "simulate") -> np.ndarray:
        """p(0) as (vocab,) or (contexts, vocab), built from ``distribution_seed`` (or ``seed``);
        ``where``: the verb messages about a p(0) file name."""
        if self.p0 is not None:
            return load_distribution(self.p0, where=where)
        rng = generator(self.distribution_seed if self.distribution_seed is not None
                        else (self.seed if self.seed is not None else 0))
        rows = [self._one_distribution(rng) for _ in range(self.contexts)]
        return rows[0] if self.contexts == 1 else np.stack(rows)

    def _one_distribution(self, rng: np.random.Generator) -> np.ndarray:
        if self.family == "target":
            return target_distribution(self.vocab, self.support, self.S0, seed=rng)
        if self.family == "zipf":
            return zipf_distribution(self.vocab, self.zipf_exponent, support=self.support)
        if self.family == "dirichlet":
            return dirichlet_distribution(self.vocab, self.dirichlet_alpha,
                                          support=self.support, seed=rng)
        return uniform_distribution(self.vocab, support=self.support)

    def build_scenario(self) -> Scenario:
        return make_scenario(self.scenario, n=self.n, N=self.N, K=self.K, split=self.window_split)


def load_spec(path: str | Path, **overrides) -> SimulationSpec:
    """Read a TOML spec (the same keys as :class:`SimulationSpec`); ``overrides`` win."""
    data = read_toml(path, "config")
    data.update({k: v for k, v in overrides.items() if v is not None})
    if isinstance(data.get("metrics"), list):
        data["metrics"] = tuple(data["metrics"])
    return SimulationSpec(**data)


def check_scenario_fields(spec: BaseModel, where: str) -> None:
    """The scenario fields (:data:`SCENARIO_PARAMETERS`) a spec sets: each one taken by its
    scenario, every one the scenario needs given (shared by every spec that names a
    scenario: ``simulate``'s, ``functional``'s)."""
    cls = SCENARIOS[spec.scenario]
    takes = {"window_split" if p == "split" else p for p in parameters(cls)}
    unused = sorted((spec.model_fields_set & set(SCENARIO_PARAMETERS)) - takes)
    if unused:
        raise ValueError(f"The '{unused[0]}' parameter of {where} means nothing for "
                         f"scenario '{spec.scenario}', which takes "
                         f"{', '.join(sorted(takes)) or 'no parameter'}.")
    for field in required_parameters(cls):
        if getattr(spec, field) is None:
            what = type(spec).model_fields[field].description
            raise ValueError(f"The '{field}' parameter of {where} is required by "
                             f"scenario '{spec.scenario}' ({what}).")
    if (spec.scenario == "most-recent" and spec.window_split == "literal"
            and spec.K > spec.n):
        raise ValueError(house_message("K", f"be at most 'n' ({spec.n}) with window_split "
                                       "'literal'", spec.K, where))
