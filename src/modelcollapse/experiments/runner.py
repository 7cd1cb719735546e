"""Run a figure: simulate each cell once (or load it), compute the numbers the report lists
and the theory they are set against, and draw the figure.

Every cell's result is saved beside the figure, ``<out>/<fig>/results/<cell>.zarr``, with a
fingerprint of what produced it (its full spec: seed and kept trajectories included). A later
run reuses a cell only when its store loads whole (every variable, shape and checksum
recorded at save: :meth:`~modelcollapse.results.Result.load`) and its fingerprint matches,
and simulates the others: an interrupted run resumes where it stopped, a damaged cell is
simulated again (same seed, same numbers), and ``replot`` re-draws without simulating at
all. Specs: :mod:`.figure_spec`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .._files import atomic_write_text, remove_stale_temps
from ..api import simulate
from ..results import DamagedResultError, Result
from . import overlays
from .figure_spec import (
    FIGURES,
    LAYOUT_NAMES,
    QUANTITIES,
    SPEC_DIR,
    Z_AGREE,
    Cell,
    Figure,
    FigureFile,
    load_figure,
    quantity_label,
)
from .measure import measure, number

__all__ = [
    "FIGURES",
    "LAYOUT_NAMES",
    "QUANTITIES",
    "SPEC_DIR",
    "Cell",
    "Figure",
    "FigureFile",
    "FigureRun",
    "MissingResultError",
    "compare_to_paper",
    "load_figure",
    "measure",
    "needs_full_run",
    "quantity_label",
    "run_figure",
    "simulate_cell",
]

# ---------------------------------------------------------------------------------------------
# Simulating a cell


def _fingerprint(cell: Cell, snapshots: Sequence[int]) -> str:
    return json.dumps({"spec": cell.spec.model_dump(mode="json"), "snapshots": list(snapshots)},
                      sort_keys=True)


def simulate_cell(cell: Cell, *, snapshots: Sequence[int] = ()) -> Result:
    """Simulate one cell: :func:`modelcollapse.simulate` on its spec (backend, device and
    representation included), trajectories kept as the spec asks.

    With ``snapshots`` the result also holds ``p_snapshot`` (trajectory_run, context,
    snapshot, token): the fitted distributions of the kept runs at those generations (0 =
    p(0) itself). Such a cell simulates every run to the end (the figures that show
    snapshots were drawn that way).
    """
    result = simulate(cell.spec, progress=False, snapshots=snapshots,
                      stop_when_absorbed=not snapshots)
    result.data.attrs["experiment_fingerprint"] = _fingerprint(cell, snapshots)
    return result


#: Why a cell's saved result was not reused, when it was not damaged.
_ABSENT = "has no saved result"
_OTHER_SETTINGS = "has a saved result made with other settings"
_UNREADABLE = "has a saved result this version cannot read"


def _saved_cell(path: Path, fingerprint: str) -> tuple[Result | None, str]:
    """The saved result of a cell when it is whole and made with these settings; else None
    and why not ("is damaged (…)" when the store does not load whole)."""
    if not path.exists():
        return None, _ABSENT
    try:
        result = Result.load(path)
    except DamagedResultError as exc:
        return None, f"is damaged ({exc.summary})"
    except (OSError, ValueError, KeyError):  # a newer layout, say
        return None, _UNREADABLE
    if result.data.attrs.get("experiment_fingerprint") != fingerprint:
        return None, _OTHER_SETTINGS
    return result, ""


def compare_to_paper(numbers: dict, paper: dict[str, float],
                     paper_runs: int | None = None) -> list[dict]:
    """Each number the paper states beside ours, z = (ours − paper) / √(se² + se_paper²).

    The paper's numbers come from ``paper_runs`` runs of the same experiment, so they carry
    a sampling error of their own: se_paper = se · √(runs / paper_runs), the spread of ours
    scaled to their count. Without ``paper_runs`` the paper's numbers count as exact.
    """
    rows = []
    for name, stated in paper.items():
        ours, se = numbers.get(name), numbers.get(f"{name}_se")
        if se and paper_runs:
            se = se * math.sqrt(1.0 + numbers["runs"] / paper_runs)
        if ours is None:
            z = None
        elif se:
            z = (ours - stated) / se
        else:  # no spread (every run gave the same value): agreement is equality
            z = 0.0 if ours == stated else None
        rows.append({"quantity": name, "paper": stated, "ours": ours, "se": se,
                     "z": None if z is None else float(z),
                     "agrees": z is not None and abs(z) < Z_AGREE})
    return rows


#: Quantities that count or average over the whole horizon: a shorter one (quick mode)
#: changes what they estimate, so the paper's full-horizon number is no yardstick.
HORIZON_QUANTITIES = ("collapsed_runs", "collapsed_fraction", "censored_runs",
                      "absorption_censored", "gap_l1_final")
#: Means over the runs that collapsed (or were absorbed), with the count of the others: the
#: same estimate at any horizon when no run is censored, biased low when some are.
CENSORED_MEANS = {"T_mean": "censored_runs", "T_sd": "censored_runs",
                  "absorption_mean": "absorption_censored"}


def needs_full_run(quantity: str, numbers: dict, cell: Cell, figure: Figure) -> str | None:
    """Why a stated number cannot be judged from this run, or None when it can: in quick mode
    over a shorter horizon than the full run's, a number over the whole horizon (a count of
    collapsed runs, a last-generation or second-half mean), or a mean over the collapsed
    runs when some run was censored."""
    full, horizon = cell.full_generations, cell.spec.generations
    if not figure.quick or full is None or horizon >= full:
        return None
    if quantity in CENSORED_MEANS:
        censored = numbers.get(CENSORED_MEANS[quantity])
        if not censored:
            return None
        return (f"{censored} of {numbers.get('runs', cell.spec.runs)} runs censored at "
                f"{horizon} of {full} generations")
    if quantity in HORIZON_QUANTITIES or quantity.endswith(("_final", "_plateau")):
        return f"measured over {horizon} of {full} generations"
    return None


def _mark_quick(figure: Figure, cell: Cell, numbers: dict, rows: list[dict]) -> list[dict]:
    """Rows that only the full horizon can judge get ``agrees = None`` and the reason."""
    for row in rows:
        why = needs_full_run(row["quantity"], numbers, cell, figure)
        if why is not None:
            row["agrees"], row["needs_full_run"] = None, why
    return rows


def _verdict(figure: Figure, cells: list[dict]) -> list[dict]:
    """Per value of the ``compare_by`` tag: the largest |z| against the paper, and whether
    every stated number agrees. Cells tagged ``"any"`` belong to every reading. ``agrees``
    is None (``needs_full_run`` True) when no judged number differs but some need the full
    run (quick mode); the largest |z| is over the judged numbers."""
    tag = figure.options.compare_by
    if tag is None:
        return []
    groups = sorted({c["tags"].get(tag) for c in cells} - {None, "any"})
    out = []
    for group in groups:
        rows = [r for c in cells if c["tags"].get(tag) == group for r in c["comparison"]]
        if not rows:
            continue
        judged = [r for r in rows if r["agrees"] is not None] or rows
        zs = [abs(r["z"]) if r["z"] is not None else float("inf") for r in judged]
        pending = any(r["agrees"] is None for r in rows)
        differs = any(r["agrees"] is False for r in rows)
        out.append({"tag": tag, "value": group, "max_abs_z": number(max(zs)),
                    "agrees": False if differs else (None if pending else True),
                    "needs_full_run": pending and not differs,
                    "quantities": [r["quantity"] for r in rows]})
    return out


# ---------------------------------------------------------------------------------------------
# Running a figure


def _cell_path(directory: Path, cell: Cell) -> Path:
    return directory / "results" / f"{cell.key}.zarr"


def _saved_results(figure: Figure, directory: Path) -> dict[str, Result]:
    """Every cell's saved result, or one MissingResultError naming each cell that has none
    whole with these settings."""
    results, missing = {}, []
    for cell in figure.cells:
        fingerprint = _fingerprint(cell, figure.options.snapshots)
        result, why = _saved_cell(_cell_path(directory, cell), fingerprint)
        if result is None:
            missing.append(f"cell {cell.key!r} {why}")
        else:
            results[cell.key] = result
    if missing:
        raise MissingResultError(
            f"{figure.id}: cannot re-plot from {directory / 'results'}: {', '.join(missing)}; "
            f"run without --replot first (with the same --quick and --runs)")
    return results


def _simulate_missing(figure: Figure, directory: Path, progress: bool | None
                      ) -> tuple[dict[str, Result], list[str]]:
    """Every cell's result, loaded when saved whole, else simulated and saved; and the keys
    of the cells simulated."""
    results, simulated = {}, []
    snapshots = figure.options.snapshots
    bar = tqdm(figure.cells, desc=figure.id, unit="cell", file=sys.stderr,
               disable=None if progress is None else not progress, leave=False)
    for cell in bar:
        path = _cell_path(directory, cell)
        result, why = _saved_cell(path, _fingerprint(cell, snapshots))
        if result is None:
            if why.startswith("is damaged"):
                tqdm.write(f"{figure.id}: cell {cell.key!r} {why}; simulating it again",
                           file=sys.stderr)
            result = simulate_cell(cell, snapshots=snapshots)
            result.save(path)
            simulated.append(cell.key)
        results[cell.key] = result
    bar.close()
    return results, simulated


class MissingResultError(ValueError):
    """``replot`` found no whole saved result (with matching settings) for some cells."""


@dataclass
class FigureRun:
    """What running a figure produced: results per cell, theory, summary, files."""

    figure: Figure
    directory: Path
    results: dict[str, Result]
    theory: dict[str, overlays.CellTheory]
    summary: dict
    files: list[Path]


def run_figure(figure: Figure, out: str | Path, *, replot: bool = False,
               progress: bool | None = None) -> FigureRun:
    """Simulate (or load) every cell of ``figure`` under ``out/<id>/``, then write the plots
    (PNG and PDF) and ``summary.json`` there.

    Cells saved whole with the same fingerprint are loaded, not simulated; a damaged one is
    simulated again (one line on stderr says so). With ``replot`` nothing is simulated: a
    missing or damaged cell is an error naming every such cell. Temporaries that killed
    saves left in the figure's folder are removed first.
    """
    directory = Path(out) / figure.id
    remove_stale_temps(directory)
    snapshots = figure.options.snapshots
    started = time.perf_counter()
    if replot:
        results, simulated = _saved_results(figure, directory), []
    else:
        results, simulated = _simulate_missing(figure, directory, progress)
    simulate_s = time.perf_counter() - started

    theory = {c.key: overlays.cell_theory(c.theory, results[c.key].data["p0"].values,
                                               c.spec, snapshots=snapshots)
              for c in figure.cells}
    cells = []
    for c in figure.cells:
        numbers = {**measure(results[c.key], snapshots=snapshots), **theory[c.key].numbers}
        cells.append({"key": c.key, "label": c.label, "tags": c.tags,
                      "scenario": results[c.key].data.attrs.get("scenario", ""),
                      "seed": c.spec.seed, "numbers": numbers, "paper": c.paper,
                      "comparison": _mark_quick(figure, c, numbers, compare_to_paper(
                          numbers, c.paper, figure.paper_runs))})

    from .figures import draw  # matplotlib is imported only when drawing

    plot_started = time.perf_counter()
    files = draw(figure, results, theory, directory)
    summary = {
        "figure": figure.id, "title": figure.title, "paper": figure.paper,
        "mode": "quick" if figure.quick else "full", "paper_runs": figure.paper_runs,
        "report": list(figure.report),
        "notes": figure.notes, "cells": cells, "verdict": _verdict(figure, cells),
        "files": [f.relative_to(directory).as_posix() for f in files],
        "simulated_cells": simulated,
        "seconds": {"simulate": round(simulate_s, 3),
                    "plot": round(time.perf_counter() - plot_started, 3)},
    }
    atomic_write_text(directory / "summary.json", json.dumps(summary, indent=2, allow_nan=False))
    return FigureRun(figure, directory, results, theory, summary, files)
