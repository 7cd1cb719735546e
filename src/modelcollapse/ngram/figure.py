"""``reproduce fig5-ngram``: the paper's Fig. 5 with n-gram models in place of the transformer.

Tiny Shakespeare's characters; for each order k ∈ {1, 2, 3}, the generative loop (each model
writes a corpus of 10⁶ tokens) fully synthetic, 50 % and 20 % synthetic, 10 generations;
‖p(m) − p(1)‖₁ at the same 300 contexts sampled from p(0) and the validation cross-entropy.
The transformer's values at m = 10 (docs/lm.md, the paper preset on one H100) are drawn beside
them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._files import atomic_write_text, check_output_folder
from ..corpus import load_text
from .plots import plot_figure5_ngram
from .result import NgramResult
from .runner import run
from .spec import NgramSpec

__all__ = ["FIG5_NGRAM_SCENARIOS", "Figure5NgramResult", "run_figure5"]

#: label → (scenario, synthetic fraction), as Fig. 5.
FIG5_NGRAM_SCENARIOS = {"fully synthetic": ("fully-synthetic", None),
                        "50 % synthetic": ("partially-synthetic", 0.5),
                        "20 % synthetic": ("partially-synthetic", 0.2)}
#: ‖p(10) − p(1)‖₁ of the transformer (docs/lm.md: paper preset, one H100, one seed).
TRANSFORMER_L1_AT_10 = {"fully synthetic": 0.882, "50 % synthetic": 0.296,
                        "20 % synthetic": 0.286}


@dataclass
class Figure5NgramResult:
    results: dict[int, dict[str, NgramResult]]
    numbers: dict
    figure: Path | None


def run_figure5(out: str | Path | None = None, *, corpus: str | Path | None = None,
                download: bool = False, text: str | None = None,
                orders: tuple[int, ...] = (1, 2, 3), generations: int = 10,
                tokens: int = 1_000_000, seed: int = 0,
                progress: bool | None = None) -> Figure5NgramResult:
    """Run fig5-ngram; with ``out``, write ``fig5_ngram.png`` and ``fig5_ngram.json`` there."""
    folder = check_output_folder(out) if out is not None else None
    started = time.perf_counter()
    if text is None:
        text = load_text(corpus, download=download)
    results: dict[int, dict[str, NgramResult]] = {}
    for k in orders:
        results[k] = {}
        for label, (scenario, fraction) in FIG5_NGRAM_SCENARIOS.items():
            spec = NgramSpec(corpus=None if corpus is None else str(corpus), order=k,
                             loop="generative", scenario=scenario,
                             synthetic_fraction=fraction, generations=generations,
                             tokens=tokens, seed=seed)
            results[k][label] = run(spec, text=text, progress=progress)
    numbers = figure_numbers(results)
    numbers["seconds"] = time.perf_counter() - started
    figure = None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        figure = plot_figure5_ngram(results, folder / "fig5_ngram.png", TRANSFORMER_L1_AT_10)
        atomic_write_text(folder / "fig5_ngram.json", json.dumps(numbers, indent=1))
        summary = report_summary(results, numbers, figure.name, seed=seed,
                                 mode="quick" if tokens < 1_000_000 else "full")
        atomic_write_text(folder / "summary.json", json.dumps(summary, indent=2))
    return Figure5NgramResult(results, numbers, figure)


def report_summary(results: dict[int, dict[str, NgramResult]], numbers: dict, image: str, *,
                   seed: int, mode: str) -> dict:
    """The figure as a section of the ``reproduce`` report (the layout of its
    ``summary.json``): per order and scenario the drift ‖p(m) − p(1)‖₁ at m = 2 and at the
    last generation (± se over the contexts), the paired gap of the fully synthetic loop over
    it, and the validation cross-entropy at m = 0, 1 and the last generation."""
    cells = []
    for k, by_label in results.items():
        gaps = numbers["orders"][str(k)]["fully_minus"]
        for label, result in by_label.items():
            per_context = result.data["l1_to_first_context"].values
            last = per_context.shape[0] - 1
            se = per_context.std(axis=1, ddof=1) / np.sqrt(per_context.shape[1])
            ce = result.data["cross_entropy_mean"].values
            values = {"l1_first@2": per_context[2].mean(), "l1_first@2_se": se[2],
                      f"l1_first@{last}": per_context[last].mean(),
                      f"l1_first@{last}_se": se[last],
                      "val_loss@0": ce[0], "val_loss@1": ce[1], f"val_loss@{last}": ce[last]}
            if label in gaps:
                values["gap_l1_final"] = gaps[label]["mean"]
                values["gap_l1_final_se"] = gaps[label]["se"]
            cells.append({"key": f"k{k}-{label}", "label": f"k = {k}, {label}", "tags": {},
                          "scenario": result.data.attrs["scenario"], "seed": seed,
                          "numbers": {q: float(v) for q, v in values.items()},
                          "paper": {}, "comparison": []})
    return {
        "figure": "fig5-ngram", "title": "n-gram models of the text trained on their own text",
        "paper": "Figure 5 with the paper's statistical model (n-gram models of tiny "
                 "Shakespeare's characters, orders 1–3) in place of the transformer",
        "mode": mode,
        "report": ["l1_first@2", f"l1_first@{last}", "gap_l1_final", "val_loss@0",
                   "val_loss@1", f"val_loss@{last}"],
        "notes": "Generative loop: each model writes the corpus the next one is counted from. "
                 "Validation loss is the Witten–Bell cross-entropy of the held-out text; the "
                 "gap is paired over the same 300 contexts.",
        "cells": cells, "verdict": [], "files": [image], "simulated_cells": [],
        "seconds": {"wall": round(numbers["seconds"], 3)},
    }


def figure_numbers(results: dict[int, dict[str, NgramResult]]) -> dict:
    """Per order: ‖p(G) − p(1)‖₁ ± se over the sampled contexts per scenario, and the fully
    synthetic value minus each mixture's, paired over the same contexts, with its z."""
    out: dict = {"orders": {}}
    for k, by_label in results.items():
        per_context = {label: r.data["l1_to_first_context"].values[-1]
                       for label, r in by_label.items()}
        row: dict = {"l1_at_last": {}, "fully_minus": {}}
        for label, values in per_context.items():
            row["l1_at_last"][label] = {"mean": float(values.mean()),
                                        "se": float(values.std(ddof=1) / np.sqrt(values.size))}
            ce = by_label[label].data["cross_entropy_mean"].values
            row["l1_at_last"][label]["cross_entropy_first_last"] = [float(ce[1]), float(ce[-1])]
        full = per_context["fully synthetic"]
        for label, values in per_context.items():
            if label == "fully synthetic":
                continue
            diff = full - values
            se = float(diff.std(ddof=1) / np.sqrt(diff.size))
            row["fully_minus"][label] = {"mean": float(diff.mean()), "se": se,
                                         "z": float(diff.mean() / se) if se > 0 else None}
        out["orders"][str(k)] = row
    return out
