"""Run a figure: simulate each cell once (or load it), compute the numbers the report lists
and the theory they are set against, and draw the figure.

Every cell's result is saved beside the figure, ``<out>/<fig>/results/<cell>.zarr``, with a
fingerprint of what produced it (its full spec and seed). A later run loads each cell whose
fingerprint matches and simulates only the others: an interrupted run resumes where it
stopped, and ``replot`` re-draws without simulating at all. Specs: :mod:`.figure_spec`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..loop import run_loop
from ..metrics import mean_and_se
from ..results import Result, atomic_write_text
from ..scenarios import Scenario
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
    "quantity_label",
    "run_figure",
    "simulate_cell",
]

# ---------------------------------------------------------------------------------------------
# Simulating a cell


class _SnapshotRecorder(Scenario):
    """Wraps a scenario and keeps the fitted model p(m) = counts / n^(m) (eq. 2, eq. 5) at a
    few generations: the metrics hold no distributions, and Fig. 1 plots them.

    Rows are the loop's (run, context) rows in live-support coordinates; they stay in place
    because the cell runs with ``stop_when_absorbed=False``.
    """

    def __init__(self, inner: Scenario, generations: Sequence[int]):
        self.inner = inner
        self.name = inner.name
        self.real = inner.real
        self.lag = inner.lag
        self.uses_real = inner.uses_real
        self.pooled = inner.pooled
        self.generations = frozenset(generations)
        self.recorded: dict[int, np.ndarray] = {}

    def counts(self, m: int) -> np.ndarray:
        return self.inner.counts(m)

    def corpus_size(self) -> int:
        return self.inner.corpus_size()

    def describe(self) -> str:
        return self.inner.describe()

    def training_set(self, m: int, history):
        model = self.inner.training_set(m, history)
        if m in self.generations:
            self.recorded[m] = model.counts / model.size  # (rows, live support)
        return model


def _fingerprint(cell: Cell, snapshots: Sequence[int]) -> str:
    return json.dumps({"spec": cell.spec.model_dump(mode="json"), "snapshots": list(snapshots)},
                      sort_keys=True)


def simulate_cell(cell: Cell, *, snapshots: Sequence[int] = ()) -> Result:
    """Simulate one cell (the loop of :func:`modelcollapse.loop.run_loop` on its spec).

    With ``snapshots`` the result also holds ``p_snapshot`` (run, context, snapshot, token):
    the fitted distributions at those generations (0 = p(0) itself).
    """
    spec = cell.spec
    p0 = np.asarray(spec.build_p0(), dtype=np.float64)
    scenario = spec.build_scenario()
    recorder = _SnapshotRecorder(scenario, snapshots) if snapshots else None
    result = run_loop(p0, recorder or scenario, n_runs=spec.runs, n_generations=spec.generations,
                      seed=spec.seed, metrics=spec.metrics, progress=False,
                      stop_when_absorbed=recorder is None, spec=spec.model_dump(mode="json"))
    data = result.data
    if recorder is not None:
        data = data.assign(p_snapshot=(("run", "context", "snapshot", "token"),
                                       _snapshot_array(p0, recorder, snapshots, spec.runs)))
        data = data.assign_coords(snapshot=list(snapshots))
    data.attrs["experiment_fingerprint"] = _fingerprint(cell, snapshots)
    return Result(data)


def _snapshot_array(p0: np.ndarray, recorder: _SnapshotRecorder, snapshots: Sequence[int],
                    runs: int) -> np.ndarray:
    """Map recorded live-support rows back to vocabulary ids: (run, context, snapshot, token)."""
    p0 = p0[None, :] if p0.ndim == 1 else p0
    contexts, vocab = p0.shape
    out = np.zeros((runs, contexts, len(snapshots), vocab))
    for j, m in enumerate(snapshots):
        if m == 0:
            out[:, :, j] = p0[None]
            continue
        live = recorder.recorded[m].reshape(runs, contexts, -1)
        for c in range(contexts):
            # The loop's live coordinates are the support of p(0) in increasing token order.
            ids = np.flatnonzero(p0[c] > 0)
            out[:, c, j, ids] = live[:, c, : ids.size]
    return out


def _load_current(path: Path, fingerprint: str) -> Result | None:
    if not path.exists():
        return None
    try:
        result = Result.load(path)
    except (OSError, ValueError, KeyError):
        return None
    return result if result.data.attrs.get("experiment_fingerprint") == fingerprint else None


# ---------------------------------------------------------------------------------------------
# Numbers per cell


def measure(result: Result, *, snapshots: Sequence[int] = ()) -> dict[str, float | int | None]:
    """The measured numbers of one cell (names of :data:`QUANTITIES`), over runs × contexts.

    T is the first generation whose model is a Dirac mass; its mean is over the runs that
    collapsed (the paper's histograms) and the censored runs are counted beside it.
    """
    ds = result.data
    times = ds["collapse_time"].values.ravel()
    rows = times.size
    done = times[~np.isnan(times)]
    out: dict[str, float | int | None] = {"runs": int(ds.sizes["run"]), "rows": rows}
    t_mean, t_se = mean_and_se(done) if done.size else (np.nan, np.nan)
    out.update(T_mean=_num(t_mean), T_mean_se=_num(t_se),
               T_sd=_num(np.std(done, ddof=1)) if done.size > 1 else None,
               collapsed_runs=int(done.size), censored_runs=int(rows - done.size))
    out.update(collapsed_fraction=done.size / rows,
               collapsed_fraction_se=_binomial_se(done.size, rows))
    absorb = ds["absorption_time"].values.ravel()
    a_done = absorb[~np.isnan(absorb)]
    a_mean, a_se = mean_and_se(a_done) if a_done.size else (np.nan, np.nan)
    out.update(absorption_mean=_num(a_mean), absorption_mean_se=_num(a_se),
               absorption_censored=int(rows - a_done.size))
    last = ds.sizes["generation"] - 1
    half = slice(last // 2, last + 1)
    for metric, name in (("sigma", "sigma"), ("l1_to_first", "l1_first")):
        if metric not in ds:
            continue
        values = ds[metric].values.reshape(rows, -1)              # (rows, generation)
        mean, se = mean_and_se(values, axis=0)
        out[f"{name}_final"], out[f"{name}_final_se"] = _num(mean[last]), _num(se[last])
        plateau = values[:, half].mean(axis=1)                    # per-row time average
        p_mean, p_se = mean_and_se(plateau)
        out[f"{name}_plateau"], out[f"{name}_plateau_se"] = _num(p_mean), _num(p_se)
    collapsed = ds["collapsed"].values.reshape(rows, -1)
    for m in snapshots:
        hits = int(collapsed[:, m].sum())
        out[f"dirac_fraction@{m}"] = hits / rows
        out[f"dirac_fraction@{m}_se"] = _binomial_se(hits, rows)
        if "sigma" in ds:
            mean, se = mean_and_se(ds["sigma"].values.reshape(rows, -1)[:, m])
            out[f"sigma@{m}"], out[f"sigma@{m}_se"] = _num(mean), _num(se)
    return out


def _binomial_se(hits: int, trials: int) -> float:
    """Standard error of a fraction hits / trials, from a half count added to each side so
    that 0 or all hits still gets a spread (an exact 0 would make any difference infinite)."""
    shrunk = (hits + 0.5) / (trials + 1)
    return float(np.sqrt(shrunk * (1 - shrunk) / trials))


def _num(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


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


def _verdict(figure: Figure, cells: list[dict]) -> list[dict]:
    """Per value of the ``compare_by`` tag: the largest |z| against the paper, and whether
    every stated number agrees. Cells tagged ``"any"`` belong to every reading."""
    tag = figure.options.compare_by
    if tag is None:
        return []
    groups = sorted({c["tags"].get(tag) for c in cells} - {None, "any"})
    out = []
    for group in groups:
        rows = [r for c in cells if c["tags"].get(tag) == group for r in c["comparison"]]
        if not rows:
            continue
        zs = [abs(r["z"]) if r["z"] is not None else float("inf") for r in rows]
        out.append({"tag": tag, "value": group, "max_abs_z": _num(max(zs)),
                    "agrees": all(r["agrees"] for r in rows),
                    "quantities": [r["quantity"] for r in rows]})
    return out


# ---------------------------------------------------------------------------------------------
# Running a figure


class MissingResultError(ValueError):
    """``replot`` found no saved result (with matching settings) for a cell."""


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

    Cells already saved with the same fingerprint are loaded, not simulated. With ``replot``
    nothing is simulated: a missing cell is an error.
    """
    directory = Path(out) / figure.id
    snapshots = figure.options.snapshots
    started = time.perf_counter()
    results: dict[str, Result] = {}
    simulated = []
    bar = tqdm(figure.cells, desc=figure.id, unit="cell", file=sys.stderr,
               disable=None if progress is None else not progress, leave=False)
    for cell in bar:
        path = directory / "results" / f"{cell.key}.zarr"
        result = _load_current(path, _fingerprint(cell, snapshots))
        if result is None:
            if replot:
                raise MissingResultError(
                    f"{figure.id}: no saved result for cell {cell.key!r} made with these "
                    f"settings in {path}; run without --replot first (with the same --quick "
                    f"and --runs)")
            result = simulate_cell(cell, snapshots=snapshots)
            result.save(path)
            simulated.append(cell.key)
        results[cell.key] = result
    bar.close()
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
                      "comparison": compare_to_paper(numbers, c.paper, figure.paper_runs)})

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
