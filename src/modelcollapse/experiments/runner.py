"""Run a figure: simulate each cell once (or load it), compute the numbers the report lists
and the theory they are set against, and draw the figure.

Every cell's result is saved beside the figure, ``<out>/<fig>/results/<cell>.zarr``, with a
fingerprint of what produced it (its full spec: seed and kept trajectories included). A later
run loads each cell whose fingerprint matches and simulates only the others: an interrupted
run resumes where it stopped, and ``replot`` re-draws without simulating at all. Specs:
:mod:`.figure_spec`.
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
    """Wraps a scenario and keeps the fitted model p(m) = counts / n^(m) (eq. 2, eq. 5) of
    the first ``kept_rows`` rows at a few generations: the metrics hold no distributions, and
    Fig. 1 plots them.

    Rows are the loop's (run, context) rows in live-support coordinates, run-major, so the
    first rows are the kept runs 0 … k − 1; they stay in place because the cell runs with
    ``stop_when_absorbed=False``. The loop's first chunk of runs holds them: later chunks
    record nothing.
    """

    def __init__(self, inner: Scenario, generations: Sequence[int], kept_rows: int):
        self.inner = inner
        self.name = inner.name
        self.real = inner.real
        self.lag = inner.lag
        self.uses_real = inner.uses_real
        self.pooled = inner.pooled
        self.generations = frozenset(generations)
        self.kept_rows = kept_rows
        self.recorded: dict[int, np.ndarray] = {}

    def counts(self, m: int) -> np.ndarray:
        return self.inner.counts(m)

    def corpus_size(self) -> int:
        return self.inner.corpus_size()

    def describe(self) -> str:
        return self.inner.describe()

    def training_set(self, m: int, history):
        model = self.inner.training_set(m, history)
        if m in self.generations and m not in self.recorded:
            self.recorded[m] = model.counts[: self.kept_rows] / model.size  # (rows, live)
        return model


def _fingerprint(cell: Cell, snapshots: Sequence[int]) -> str:
    return json.dumps({"spec": cell.spec.model_dump(mode="json"), "snapshots": list(snapshots)},
                      sort_keys=True)


def simulate_cell(cell: Cell, *, snapshots: Sequence[int] = ()) -> Result:
    """Simulate one cell (the loop of :func:`modelcollapse.loop.run_loop` on its spec,
    trajectories kept as the spec asks).

    With ``snapshots`` the result also holds ``p_snapshot`` (trajectory_run, context,
    snapshot, token): the fitted distributions of the kept runs at those generations (0 =
    p(0) itself).
    """
    spec = cell.spec
    p0 = np.asarray(spec.build_p0(), dtype=np.float64)
    scenario = spec.build_scenario()
    kept = spec.kept_runs()
    recorder = (_SnapshotRecorder(scenario, snapshots, kept * np.atleast_2d(p0).shape[0])
                if snapshots else None)
    result = run_loop(p0, recorder or scenario, n_runs=spec.runs, n_generations=spec.generations,
                      seed=spec.seed, metrics=spec.metrics, progress=False,
                      stop_when_absorbed=recorder is None, trajectories=spec.trajectories,
                      trajectory_memory_mb=spec.trajectory_memory_mb,
                      spec=spec.model_dump(mode="json"))
    data = result.data
    if recorder is not None:
        data = data.assign(p_snapshot=(("trajectory_run", "context", "snapshot", "token"),
                                       _snapshot_array(p0, recorder, snapshots, kept)))
        data = data.assign_coords(snapshot=list(snapshots), trajectory_run=np.arange(kept))
    data.attrs["experiment_fingerprint"] = _fingerprint(cell, snapshots)
    return Result(data)


def _snapshot_array(p0: np.ndarray, recorder: _SnapshotRecorder, snapshots: Sequence[int],
                    runs: int) -> np.ndarray:
    """Map recorded live-support rows of the kept runs back to vocabulary ids: (run, context,
    snapshot, token)."""
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
    collapsed (the paper's histograms) and the censored runs are counted beside it. Metrics
    at the last generation come from every run's last value (a spread of exactly 0 when every
    run ends at the same Dirac mass), at other generations from the result's per-generation
    means and standard errors over every run.
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
    for metric, name in (("sigma", "sigma"), ("l1_to_first", "l1_first")):
        if metric not in result.metrics:
            continue
        mean, se = mean_and_se(ds[f"{metric}_final"].values.ravel())
        out[f"{name}_final"], out[f"{name}_final_se"] = _num(mean), _num(se)
        out[f"{name}_plateau"], out[f"{name}_plateau_se"] = _plateau(result, metric, rows)
    collapsed, _ = result.mean("collapsed")
    for m in snapshots:
        hits = round(float(collapsed[m]) * rows)  # the fraction of rows collapsed at m
        out[f"dirac_fraction@{m}"] = hits / rows
        out[f"dirac_fraction@{m}_se"] = _binomial_se(hits, rows)
        if "sigma" in result.metrics:
            mean, se = result.mean("sigma")
            out[f"sigma@{m}"], out[f"sigma@{m}_se"] = _num(mean[m]), _num(se[m])
    return out


def _plateau(result: Result, metric: str, rows: int) -> tuple[float | None, float | None]:
    """The metric averaged over the second half, generations G//2 … G, and over every row,
    with its standard error.

    The mean is that of the per-generation means. Its standard error needs each row's own
    time average (a row's generations are correlated), so it comes from the kept runs:
    they are the first runs of i.i.d. ones, a sample of them, and sd(their averages) / √rows
    estimates it (the exact per-row se when every run is kept); None under two kept rows.
    """
    half = slice(result.n_generations // 2, result.n_generations + 1)
    mean, _ = result.mean(metric)
    kept = result.trajectories
    averages = (np.empty(0) if kept is None
                else kept[metric].values[..., half].mean(axis=-1).ravel())  # per kept row
    se = np.std(averages, ddof=1) / np.sqrt(rows) if averages.size > 1 else np.nan
    return _num(mean[half].mean()), _num(se)


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
