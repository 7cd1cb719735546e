"""Reproduce the paper's statistical figures (1, 2, 3, 4 and 6) from small TOML specs.

    >>> from modelcollapse.experiments import reproduce
    >>> done = reproduce(["fig6"], out="results", quick=True)     # doctest: +SKIP
    >>> done.report_html                                           # doctest: +SKIP
    PosixPath('results/report.html')

Each figure is a TOML spec in ``experiments/specs``, read by :mod:`.figure_spec`;
:mod:`.runner` runs any spec (one saved result per cell, resumable), :mod:`.overlays` wires
the theory to it, :mod:`.figures` draws it, and :mod:`modelcollapse.report` writes the report
that sets our numbers beside the paper's and beside theory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .figure_spec import FIGURES, Figure, load_figure
from .runner import FigureRun, run_figure

__all__ = ["FIGURES", "Figure", "FigureRun", "Reproduction", "load_figure", "reproduce",
           "reproduce_fig5", "resolve_figures", "run_figure"]


@dataclass
class Reproduction:
    """Figures run (or re-plotted) and the report written over everything in ``out``."""

    out: Path
    runs: list[FigureRun]
    report_markdown: Path
    report_html: Path


def resolve_figures(names: Sequence[str]) -> list[str]:
    """Figure names in paper order; ``"all"`` stands for every statistical figure."""
    chosen: list[str] = []
    for name in names:
        if name == "all":
            chosen += FIGURES
        elif name in FIGURES:
            chosen.append(name)
        else:
            raise ValueError(f"Figure {name!r} unknown. Choose from {[*FIGURES, 'all']}.")
    if not chosen:
        raise ValueError(f"Name at least one figure among {[*FIGURES, 'all']}.")
    return sorted(set(chosen), key=FIGURES.index)


def reproduce(figures: Sequence[str] = ("all",), *, out: str | Path = "results",
              quick: bool = False, replot: bool = False, runs: int | None = None,
              progress: bool | None = None) -> Reproduction:
    """Run (or, with ``replot``, re-draw from saved results) the named figures under
    ``out/<fig>/`` and write ``out/report.md`` and ``out/report.html``.

    ``quick`` uses each spec's ``[quick]`` settings; ``runs`` overrides runs per cell. Every
    spec is validated before anything runs.
    """
    from ..report import write_report

    out = Path(out)
    specs = [load_figure(name, quick=quick, runs=runs) for name in resolve_figures(figures)]
    runs_done = [run_figure(spec, out, replot=replot, progress=progress) for spec in specs]
    markdown, html = write_report(out)
    return Reproduction(out, runs_done, markdown, html)


def reproduce_fig5(out: str | Path = "results", *, preset: str = "cpu", device: str = "cpu",
                   corpus: str | Path | None = None, download: bool = False,
                   progress: bool | None = None) -> Path:
    """Run (or resume) the transformer experiment of Fig. 5 (:func:`modelcollapse.lm.
    run_figure5`) into ``out/fig5/`` and write its ``summary.json`` for the report.

    The paper states no numbers for Fig. 5; the report lists, per scenario, the drift
    ‖p(m) − p(1)‖₁ at m = 2 and at the last generation, the validation loss on real text at
    m = 0, 1 and the last generation, and the paired
    gap between the fully synthetic loop and each mixture at the last generation.
    """
    import json

    from .._files import atomic_write_text
    from ..lm import run_figure5  # needs the lm extra (PyTorch)

    directory = Path(out) / "fig5"
    done = run_figure5(directory, preset=preset, device=device, corpus=corpus,
                       download=download, progress=progress)
    numbers = done.summary
    last = numbers["n_generations"]
    gaps = numbers["gap_at_last_generation"]["fully_synthetic_minus"]
    cells = []
    for label, scenario in numbers["scenarios"].items():
        l1 = scenario["l1_to_first"]
        loss = scenario["final_val_loss"]["mean"]
        # l1["mean"][k] is generation k + 1; at m = 1 the drift is 0 by definition.
        values = {"l1_first@2": l1["mean"][1], "l1_first@2_se": l1["se"][1],
                  f"l1_first@{last}": l1["mean"][-1], f"l1_first@{last}_se": l1["se"][-1],
                  "val_loss@0": loss[0], "val_loss@1": loss[1], f"val_loss@{last}": loss[-1]}
        if label in gaps:
            values["gap_l1_final"] = gaps[label]["mean"]
            values["gap_l1_final_se"] = gaps[label]["se"]
        cells.append({"key": label, "label": label, "tags": {}, "scenario": scenario["scenario"],
                      "seed": numbers["seeds"][0], "numbers": values, "paper": {},
                      "comparison": []})
    summary = {
        "figure": "fig5", "title": "GPT-style transformers trained on their own text",
        "paper": "Figure 5: GPT-2-style model on tiny Shakespeare, fully synthetic against "
                 "50 % and 20 % synthetic mixtures, 10 generations",
        "mode": "quick" if preset == "tiny" else f"preset {preset}",
        "report": ["l1_first@2", f"l1_first@{last}", "gap_l1_final", "val_loss@0",
                   "val_loss@1", f"val_loss@{last}"],
        "notes": f"Preset '{preset}' on {numbers['device']}. The paper states no numbers: the "
                 "drift of the fully synthetic loop grows over generations while the mixtures "
                 "stay flat; the gap is paired over the same contexts.",
        "cells": cells, "verdict": [], "files": [done.figure.name], "simulated_cells": [],
        "seconds": {"wall": round(numbers["seconds"]["wall"], 3)},
    }
    atomic_write_text(directory / "summary.json", json.dumps(summary, indent=2, allow_nan=False))
    return directory / "summary.json"
