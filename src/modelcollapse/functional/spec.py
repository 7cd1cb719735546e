"""The spec of a functional-model simulation, validated once (pydantic v2, frozen, strict).

The Python API and ``modelcollapse functional run`` build this one model, so they share every
check; unknown keys fail (``extra="forbid"``).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from .._validation import house_message
from ..scenarios import SCENARIOS, Scenario, make_scenario
from ..spec import check_scenario_fields
from .model import EMBEDDINGS, P0_FAMILIES
from .solvers import SOLVERS

__all__ = ["FunctionalSpec"]

ScenarioName = Literal[tuple(k for k in SCENARIOS if k != "custom")]  # type: ignore[valid-type]
FAMILY_FIELDS = {"S0": ("target",), "zipf_exponent": ("zipf",),
                 "dirichlet_alpha": ("dirichlet",), "p0_scale": ("softmax", "logits")}
_DEVICE = re.compile(r"^(cpu|cuda|cuda:\d+|auto)$")
#: Largest size of anything counted by index.
INDEX_MAX = 2**31 - 1


class FunctionalSpec(BaseModel):
    """Inputs of one simulation of the softmax model on context embeddings. Defaults: the
    issue's grid point c = 81 contexts, s = 100 tokens, d = 81 Gaussian embeddings, λ = 0,
    fully synthetic with n = 10 samples per context, 200 runs, 100 generations."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    contexts: int = Field(81, ge=1, le=INDEX_MAX, description="number of contexts c")
    vocab: int = Field(100, ge=2, le=INDEX_MAX, description="vocabulary size s")
    dim: int = Field(81, ge=1, le=INDEX_MAX, description="embedding dimension d")
    embedding: Literal[EMBEDDINGS] = "gaussian"  # type: ignore[valid-type]
    family: Literal[P0_FAMILIES] = "logits"  # type: ignore[valid-type]
    p0_scale: float = Field(1.0, gt=0, description="scale of p(0)'s logits (softmax, logits)")
    support: int | None = Field(None, ge=1, le=INDEX_MAX,
                                description="support of p(0) (statistical families)")
    S0: float = Field(0.1, gt=0, le=1, description="Σ p_i² of p(0) (family target)")
    zipf_exponent: float = Field(1.0, ge=0)
    dirichlet_alpha: float = Field(1.0, gt=0)
    distribution_seed: int | None = Field(None, ge=0,
                                          description="seed of embeddings and p(0); default: seed")

    weight_decay: float = Field(0.0, ge=0, description="λ of (λ/2)‖W‖²")
    solver: Literal[SOLVERS] = "auto"  # type: ignore[valid-type]
    tol: float = Field(1e-6, gt=0, lt=1, description="solver tolerance on c‖∇F‖∞")
    max_iter: int = Field(200, ge=1, le=10**6, description="Newton (L-BFGS) iterations at most")
    steps: int | None = Field(None, ge=1, le=10**6,
                              description="gradient steps from zero (solver gd: early stopping)")
    collapse_tolerance: float = Field(1e-3, gt=0, lt=1,
                                      description="ε: a model is collapsed when ‖p‖∞ ≥ 1 − ε")

    scenario: ScenarioName = "fully-synthetic"
    n: int = Field(10, ge=1, le=10**9, description="synthetic samples per context")
    N: int | None = Field(None, ge=1, le=10**9, description="real samples per context")
    K: int | None = Field(None, ge=1, le=INDEX_MAX, description="window of most-recent")
    window_split: Literal["even", "literal"] = "even"

    generations: int = Field(100, ge=1, le=INDEX_MAX)
    runs: int = Field(200, ge=1, le=INDEX_MAX)
    seed: int | None = Field(None, ge=0)
    device: str = "cpu"
    trajectories: Literal["auto", "all", "none"] | int = "auto"

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> FunctionalSpec:
        where = (info.context or {}).get("where", "functional")
        given = self.model_fields_set
        if self.embedding == "onehot" and self.dim < self.contexts:
            raise ValueError(house_message("dim", f"be at least 'contexts' ({self.contexts}) "
                                           "for onehot embeddings", self.dim, where))
        for field, families in FAMILY_FIELDS.items():
            if field in given and self.family not in families:
                raise ValueError(f"The '{field}' parameter of {where} applies to family "
                                 f"{' or '.join(repr(f) for f in families)} only; family is "
                                 f"'{self.family}'.")
        if self.support is not None:
            if self.family in ("softmax", "logits"):
                raise ValueError(f"The 'support' parameter of {where} applies to the "
                                 f"statistical families only; family is '{self.family}'.")
            if self.support > self.vocab:
                raise ValueError(house_message("support", f"be at most 'vocab' ({self.vocab})",
                                               self.support, where))
        if self.family == "target":
            low = 1 / (self.support or self.vocab)
            if not low - 1e-12 <= self.S0 < 1.0:
                raise ValueError(house_message("S0", f"be in [1/support, 1) = [{low:.6g}, 1)",
                                               self.S0, where))
        if self.steps is not None and self.solver != "gd":
            raise ValueError(f"The 'steps' parameter of {where} applies to solver 'gd' only; "
                             f"solver is '{self.solver}'.")
        if not _DEVICE.match(self.device):
            raise ValueError(house_message("device", "be cpu, cuda, cuda:N or auto",
                                           self.device, where))
        if isinstance(self.trajectories, int) and self.trajectories < 0:
            raise ValueError(house_message("trajectories", "be 'auto', 'all', 'none' or a "
                                           "number of runs ≥ 0", self.trajectories, where))
        self._check_scenario(where)
        return self

    def _check_scenario(self, where: str) -> None:
        check_scenario_fields(self, where)
        self.build_scenario()

    @property
    def gd_steps(self) -> int:
        """Gradient steps of solver gd (default 100)."""
        return 100 if self.steps is None else self.steps

    def build_scenario(self) -> Scenario:
        return make_scenario(self.scenario, n=self.n, N=self.N, K=self.K,
                             split=self.window_split)
