"""Inputs of one n-gram run, validated once (pydantic v2, frozen, unknown keys refused)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .._validation import house_message
from ..scenarios import SCENARIOS, Scenario, make_text_scenario
from .fixed import UNIT
from .tokenize import TOKENIZERS

__all__ = ["LOOPS", "NgramSpec"]

LOOPS = ("fixed", "generative")
ScenarioName = Literal[tuple(k for k in SCENARIOS if k != "custom")]  # type: ignore[valid-type]
#: Fields only one loop reads: given for the other they would do nothing.
LOOP_FIELDS = {"ratio": "fixed", "min_count": "fixed", "tokens": "generative",
               "streams": "generative"}
#: Optional scenario parameters and the scenarios that read them.
SCENARIO_FIELDS = {"synthetic_fraction": ("partially-synthetic", "fresh-real"),
                   "K": ("most-recent",)}


class NgramSpec(BaseModel):
    """One n-gram run: the corpus and its tokens, the model's order, the loop and scenario.

    Defaults: tiny Shakespeare's characters, order 2, the fixed-contexts loop, fully
    synthetic, 10 generations, 100 runs, each context resampled with S_j = |C_j| / 100.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    corpus: str | None = Field(None, description="text file (default: the cached tiny "
                                                 "Shakespeare, see download)")
    download: bool = Field(False, description="fetch tiny Shakespeare (checksum verified)")
    tokenizer: Literal[TOKENIZERS] = "char"  # type: ignore[valid-type]
    vocab_size: int | None = Field(None, ge=257, le=1_000_000, description="BPE vocabulary")
    order: int = Field(2, ge=0, le=16, description="k: tokens of context")
    loop: Literal[LOOPS] = "fixed"  # type: ignore[valid-type]
    scenario: ScenarioName = "fully-synthetic"
    synthetic_fraction: float | None = Field(None, gt=0.0, lt=1.0)
    K: int | None = Field(None, ge=1, le=16)
    generations: int = Field(10, ge=1, le=10_000)
    runs: int | None = Field(None, ge=1, le=100_000)
    ratio: float | None = Field(None, gt=0.0, le=1000.0,
                                description="fixed loop: S_j = max(1, round(ratio |C_j|))")
    min_count: int | None = Field(None, ge=1, description="fixed loop: contexts seen fewer "
                                                          "times in the corpus are left out")
    tokens: int | None = Field(None, ge=1, le=10**10,
                               description="generative loop: tokens each model writes")
    streams: int | None = Field(None, ge=1, le=10**7,
                                description="generative loop: parallel streams")
    contexts: int = Field(300, ge=1, le=100_000, description="contexts for the L1 metrics")
    samples: int = Field(3, ge=0, le=1000, description="decoded streams kept per model")
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> NgramSpec:
        if self.vocab_size is not None and self.tokenizer != "bpe":
            raise ValueError(house_message("vocab_size", "apply to the bpe tokenizer only",
                                           self.vocab_size, "ngram"))
        if self.corpus is not None and self.download:
            raise ValueError("The 'download' parameter of ngram fetches the default corpus; "
                             "it does nothing with 'corpus' given.")
        for field, loop in LOOP_FIELDS.items():
            if getattr(self, field) is not None and self.loop != loop:
                raise ValueError(f"The '{field}' parameter of ngram applies to the {loop} "
                                 f"loop only. Got {getattr(self, field)} with loop "
                                 f"{self.loop!r}.")
        for field, readers in SCENARIO_FIELDS.items():
            if getattr(self, field) is not None and self.scenario not in readers:
                raise ValueError(f"The '{field}' parameter of ngram applies to "
                                 f"{' and '.join(map(repr, readers))} only. Got "
                                 f"{getattr(self, field)} with scenario {self.scenario!r}.")
        self.build_scenario()  # a missing fraction or K is refused here
        return self

    # Resolved values (None means: the loop's default).
    @property
    def n_runs(self) -> int:
        return self.runs if self.runs is not None else (100 if self.loop == "fixed" else 1)

    @property
    def resolved_ratio(self) -> float:
        return self.ratio if self.ratio is not None else 0.01

    @property
    def resolved_min_count(self) -> int:
        return self.min_count if self.min_count is not None else 1

    @property
    def resolved_tokens(self) -> int:
        return self.tokens if self.tokens is not None else 1_000_000

    @property
    def resolved_streams(self) -> int:
        return self.streams if self.streams is not None else 1000

    def build_scenario(self) -> Scenario:
        """The scenario in the loop's units: UNIT per S_j (fixed) or tokens (generative)."""
        unit = UNIT if self.loop == "fixed" else self.resolved_tokens
        return make_text_scenario(self.scenario, tokens=unit,
                                  synthetic_fraction=self.synthetic_fraction, K=self.K,
                                  where="ngram")
