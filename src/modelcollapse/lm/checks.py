"""Every input of a transformer run checked in one place, before any work or any write.

:func:`check_run` is what ``lm.run`` and ``modelcollapse lm run`` both call first: types and
ranges, settings that a scenario would ignore (refused, since the settings are stored with
the result), the corpus file and whether it is long enough for the preset, the output
folder, and the run's size against the machine (:mod:`modelcollapse.lm.footprint`). Each
refusal is one ValueError or TypeError in the house format, naming the parameter and the
rule; the CLI turns it into one line and exit code 2.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .._files import check_output_folder
from .._validation import check_choice, check_int, house_message
from ..corpus import Corpus, load_corpus
from ..rng import resolve_entropy
from ..scenarios import Scenario
from .footprint import (
    RunFootprint,
    check_footprints,
    estimate_run,
    generations_done,
    real_tokens_needed,
)
from .generate import Sampling
from .plan import (
    LM_SCENARIOS,
    REAL_SOURCES,
    SCENARIO_PARAMETERS,
    make_lm_scenario,
    stream_unit,
)
from .presets import Preset, get_preset

__all__ = ["DEVICES", "RunRequest", "check_corpus", "check_run", "request_footprint",
           "resolve_device"]

#: Devices a run can be given: "auto" is CUDA when there is one, else the CPU.
DEVICES = "'auto', 'cpu', 'cuda' or 'cuda:<index>'"


@dataclass(frozen=True)
class RunRequest:
    """A checked run: everything resolved, ready for the loop."""

    scenario: Scenario
    n_generations: int
    preset: Preset
    corpus: Corpus
    device: str
    real: str
    sampling: Sampling
    entropy: int
    out: Path


def resolve_device(device: object, *, where: str = "lm.run") -> str:
    """``device`` as a torch device string that exists here ("auto": CUDA when available)."""
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise ValueError(house_message("device", f"be {DEVICES}", device, where))
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"The 'device' parameter of {where} is {device!r}, but no CUDA "
                             f"device is available here: choose 'cpu' or 'auto'.")
        index, count = int(device.partition(":")[2] or 0), torch.cuda.device_count()
        if index >= count:
            raise ValueError(f"The 'device' parameter of {where} is {device!r}, but this "
                             f"machine has {count} CUDA device(s), 'cuda:0' … "
                             f"'cuda:{count - 1}'.")
    return device


def check_corpus(corpus: str | Path | Corpus | None, *, download: bool = False,
                 preset: Preset | None = None, where: str = "lm.run") -> Corpus:
    """The corpus, loaded and checked: a readable UTF-8 text long enough for ``preset`` (a
    context window in both its training and its validation split)."""
    if not isinstance(download, bool):
        raise TypeError(house_message("download", "be true or false", download, where))
    if isinstance(corpus, Corpus):
        loaded = corpus
    else:
        if corpus is not None and download:
            raise ValueError(f"The 'download' parameter of {where} fetches the default "
                             f"corpus, so it does nothing when 'corpus' names a file "
                             f"({str(corpus)!r}): give one of the two.")
        if corpus is not None and not isinstance(corpus, (str, Path)):
            raise TypeError(house_message("corpus", "be a path to a text file", corpus, where))
        loaded = load_corpus(corpus, download=download)
    if preset is not None:
        need = preset.block_size + 1
        shortest = min(len(loaded.train), len(loaded.val))
        if shortest < need:
            raise ValueError(f"The 'corpus' parameter of {where} must hold at least {need} "
                             f"tokens in each split for preset '{preset.name}' (one context "
                             f"window; validation is the last 10 %). Got {len(loaded.train)} "
                             f"and {len(loaded.val)} instead.")
    return loaded


def _check_scenario_parameters(scenario: str | Scenario, given: Mapping[str, object],
                               where: str) -> None:
    """Refuse a parameter the scenario does not read: it would do nothing."""
    name = scenario.name if isinstance(scenario, Scenario) else scenario
    reads = () if isinstance(scenario, Scenario) else SCENARIO_PARAMETERS.get(scenario, ())
    for field, value in given.items():
        if value is not None and field not in reads:
            readers = sorted(s for s, fields in SCENARIO_PARAMETERS.items() if field in fields)
            whom = ("a scenario given as an object carries its own" if
                    isinstance(scenario, Scenario) else f"only {readers} read it")
            raise ValueError(f"The '{field}' parameter of {where} must be left unset with "
                             f"scenario {name!r} ({whom}). Got {value!r} instead.")


def check_run(scenario: str | Scenario = "fully-synthetic", *, out: str | Path,
              n_generations: int = 10, preset: str | Preset = "paper", seed=0,
              device: object = "cpu", corpus: str | Path | Corpus | None = None,
              download: bool = False, real: str = "p0",
              synthetic_fraction: float | None = None, K: int | None = None,
              sampling: Sampling | None = None, check_size: bool = True,
              where: str = "lm.run", names: Mapping[str, str] | None = None) -> RunRequest:
    """Check every input of :func:`modelcollapse.lm.run` (same parameters) and return the
    resolved request; raise one ValueError or TypeError naming the parameter and the rule.

    Cheap checks come first, so that a bad flag is refused before a file is read; the
    output folder and the run's size (memory and disk, against this machine) come last.
    ``names`` renames parameters in messages (the CLI's ``--generations`` is
    ``n_generations`` here); ``check_size=False`` leaves the size to the caller.
    """
    names = dict(names or {})
    gen_name = names.get("n_generations", "n_generations")
    if not isinstance(scenario, Scenario):
        check_choice(scenario, "scenario", LM_SCENARIOS, where=where)
    n_generations = check_int(n_generations, gen_name, low=1, where=where)
    if not isinstance(preset, (str, Preset)):
        raise TypeError(house_message("preset", "be a preset name or a Preset", preset, where))
    preset = get_preset(preset)
    check_choice(real, "real", REAL_SOURCES, where=where)
    _check_scenario_parameters(scenario, {"synthetic_fraction": synthetic_fraction, "K": K},
                               where)
    if K is not None:
        check_int(K, "K", low=1, where=where)
    sampling = Sampling() if sampling is None else sampling
    if not isinstance(sampling, Sampling):
        raise TypeError(house_message("sampling", "be a Sampling", sampling, where))
    if sampling != Sampling() and real == "text" and n_generations == 1:
        raise ValueError(f"The 'sampling' parameter of {where} does nothing here: with real "
                         f"'text' and 1 generation no model generates text. Got {sampling} "
                         f"instead.")
    entropy = resolve_entropy(seed)
    device = resolve_device(device, where=where)
    corpus = check_corpus(corpus, download=download, preset=preset, where=where)
    if sampling.top_k is not None and sampling.top_k > corpus.vocab_size:
        raise ValueError(f"The 'top_k' parameter of {where} must be an int in the range "
                         f"[1, {corpus.vocab_size}] (the corpus has {corpus.vocab_size} "
                         f"tokens). Got {sampling.top_k} instead.")
    tokens = preset.corpus_tokens or len(corpus.train)
    scen = make_lm_scenario(scenario, tokens=tokens, synthetic_fraction=synthetic_fraction,
                            K=K, where=where)
    L = preset.window_stream_length
    if real == "text":
        need = real_tokens_needed(scen, n_generations, stream_unit(real, L))
        if need > len(corpus.train):
            raise ValueError(f"The 'real' parameter of {where} is 'text', and scenario "
                             f"{scen.describe()} needs {need:,.0f} real tokens over "
                             f"{n_generations} generations; the training text has "
                             f"{len(corpus.train):,}: choose fewer '{gen_name}', a smaller "
                             f"'corpus_tokens' or real 'p0'.")
    out = check_output_folder(out, "out")
    request = RunRequest(scen, n_generations, preset, corpus, device, real, sampling, entropy,
                         out)
    if check_size:
        check_footprints([request_footprint(request)], out=out, device=device, where=where,
                         generations=gen_name)
    return request


def request_footprint(request: RunRequest) -> RunFootprint:
    """The :class:`~modelcollapse.lm.footprint.RunFootprint` of a checked request, counting
    only the generations its folder does not hold yet."""
    return estimate_run(request.scenario, request.n_generations, request.preset,
                        vocab_size=request.corpus.vocab_size,
                        train_tokens=len(request.corpus.train), real=request.real,
                        done=generations_done(request.out, request.n_generations))
