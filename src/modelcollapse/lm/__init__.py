"""Recursive training of GPT-style transformers on real text (paper §4.1, Fig. 5, appendix C).

    >>> from modelcollapse import lm
    >>> res = lm.run("partially-synthetic", synthetic_fraction=0.5, n_generations=10,
    ...              preset="cpu", corpus="tinyshakespeare.txt", out="runs/half")
    >>> res.summary()["generations"][-1]["l1_to_first"]

Needs the ``lm`` extra (PyTorch); ``import modelcollapse`` does not import this package.
"""

from ..corpus import CORPUS_SHA256, CORPUS_URL, CharTokenizer, Corpus, load_corpus, load_text
from .checks import RunRequest, check_run
from .figure5 import Figure5Result, run_figure5
from .generate import SampleResult, Sampling, sample_streams
from .gpt import GPT, GPTConfig
from .loop import LM_SCENARIOS, REAL_SOURCES, data_plan, make_lm_scenario, run
from .metrics import context_probs, diversity, l1_per_context
from .presets import CPU, PAPER, PRESETS, TINY, Preset, get_preset
from .result import GenerationRecord, RunResult, load_run
from .train import Engine, WindowSampler

__all__ = [
    "CORPUS_SHA256",
    "CORPUS_URL",
    "CPU",
    "GPT",
    "LM_SCENARIOS",
    "PAPER",
    "PRESETS",
    "REAL_SOURCES",
    "TINY",
    "CharTokenizer",
    "Corpus",
    "Engine",
    "Figure5Result",
    "GPTConfig",
    "GenerationRecord",
    "Preset",
    "RunRequest",
    "RunResult",
    "SampleResult",
    "Sampling",
    "WindowSampler",
    "check_run",
    "context_probs",
    "data_plan",
    "diversity",
    "get_preset",
    "l1_per_context",
    "load_corpus",
    "load_run",
    "load_text",
    "make_lm_scenario",
    "run",
    "run_figure5",
    "sample_streams",
]


def __dir__() -> list[str]:
    return sorted(__all__)
