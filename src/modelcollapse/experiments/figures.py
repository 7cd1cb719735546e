"""Figure layouts of the paper, built from the panel functions of :mod:`modelcollapse.plots`.

One function per layout (not per figure): a figure spec names its layout, and the layout
arranges that figure's cells into panels. Each writes ``<id>.png`` and ``<id>.pdf`` (Fig. 6
also ``<id>_readings.*``) into the figure's folder and returns the paths.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..plots import (
    BOUND_COLOR,
    DIFFUSION_COLOR,
    MEAN_COLOR,
    THEORY_COLOR,
    Curve,
    plot_collapse_histogram,
    plot_collapse_time_vs_n,
    plot_distribution,
    plot_relative_difference,
    plot_runs,
    plot_simplex,
    save_figure,
)
from ..results import Result
from .figure_spec import Cell, Figure
from .measure import measure
from .overlays import CellTheory, collapse_time_curves

__all__ = ["LAYOUTS", "draw"]

Results = dict[str, Result]
Theories = dict[str, CellTheory]


def _save(fig, directory: Path, name: str) -> list[Path]:
    png = save_figure(fig, directory / f"{name}.png", pdf=True)
    return [png, png.with_suffix(".pdf")]


def _sigma_theory(theory: CellTheory) -> tuple[np.ndarray | None, str]:
    if "S_eq9" in theory.curves:
        return theory.curves["S_eq9"], "$S_m$, eq. 9"
    if "S_eq6" in theory.curves:
        return theory.curves["S_eq6"], "$S_m$, eq. 6"
    if "S_exact" in theory.curves:
        return theory.curves["S_exact"], "$S_m$, exact"
    return None, ""


def simplex(figure: Figure, results: Results, theory: Theories, directory: Path) -> list[Path]:
    """Fig. 1: one row per cell (reading), one ternary panel per snapshot generation; the
    contexts of the first run (the spec keeps its snapshots) are the points."""
    snapshots = figure.options.snapshots
    rows, cols = len(figure.cells), len(snapshots)
    fig, axes = plt.subplots(rows, cols, figsize=(2.5 * cols, 2.6 * rows), squeeze=False)
    for r, cell in enumerate(figure.cells):
        snaps = results[cell.key].data["p_snapshot"].isel(trajectory_run=0).values  # (c, snap, 3)
        for j, m in enumerate(snapshots):
            plot_simplex(axes[r, j], snaps[:, j], title=f"$p^{{({m})}}$")
        axes[r, 0].text(-0.25, 0.4, cell.label, rotation=90, ha="center", va="center",
                        fontsize=8, transform=axes[r, 0].transData)
    fig.suptitle(f"{figure.title} (run 1 of {figure.cells[0].spec.runs})", fontsize=10)
    fig.tight_layout()
    return _save(fig, directory, figure.id)


def collapse_time_vs_n(figure: Figure, results: Results, theory: Theories,
                       directory: Path) -> list[Path]:
    """Fig. 2: one column per p(0); top its distribution, middle mean T against n with the
    eq. 8 lower bound and the exact E[T] as curves over n, bottom the relative difference to
    the exact E[T] of the diffusion prediction (Littler) and of the simulated means: the two
    theory curves coincide to a line's width in the middle row."""
    groups: dict[str, list[Cell]] = {}
    for cell in figure.cells:
        groups.setdefault(cell.tags["p0"], []).append(cell)
    fig, axes = plt.subplots(3, len(groups), figsize=(4.2 * len(groups), 8.6), squeeze=False,
                             gridspec_kw={"height_ratios": [1, 1.15, 0.8]})
    for j, cells in enumerate(groups.values()):
        cells = sorted(cells, key=lambda c: c.spec.n)
        p0 = results[cells[0].key].data["p0"].values[0]
        label = cells[0].tags.get("p0_label", cells[0].key)
        plot_distribution(axes[0, j], p0, title=label)
        n = np.array([c.spec.n for c in cells])
        numbers = [measure(results[c.key]) for c in cells]
        mean = np.array([_nan(x["T_mean"]) for x in numbers])
        se = np.array([_nan(x["T_mean_se"]) for x in numbers])
        grid = np.unique(np.r_[np.linspace(n.min(), n.max(), 25).round().astype(int), n])
        curves = collapse_time_curves(p0, grid)
        plot_collapse_time_vs_n(
            axes[1, j], n, mean, se,
            curves=[Curve(grid, curves["T_lower_eq8"], "eq. 8 lower bound", color=BOUND_COLOR),
                    Curve(grid, curves["T_exact"], "exact E[T]", color=THEORY_COLOR)],
            title=label)
        exact_at_n = curves["T_exact"][np.searchsorted(grid, n)]
        plot_relative_difference(
            axes[2, j], n, (mean - exact_at_n) / exact_at_n, np.nan_to_num(se) / exact_at_n,
            curves=[Curve(grid, (curves["T_diffusion"] - curves["T_exact"]) / curves["T_exact"],
                          "diffusion (Littler)", style=":", color=DIFFUSION_COLOR)])
    fig.suptitle(figure.title, fontsize=10)
    fig.tight_layout()
    return _save(fig, directory, figure.id)


def _nan(x: float | None) -> float:
    return np.nan if x is None else x


#: Theory overlaid on a metric's panel: curve name in CellTheory.curves -> legend label.
METRIC_THEORY = {"l1_to_first": (("l1_exact", r"$E\|p^{(m)} - p^{(1)}\|_1$, exact"),)}


def _metric_theory(metric: str, theory: CellTheory) -> tuple[np.ndarray | None, str]:
    if metric == "sigma":
        return _sigma_theory(theory)
    for name, label in METRIC_THEORY.get(metric, ()):
        if name in theory.curves:
            return theory.curves[name], label
    return None, ""


#: A row of panels shares one y-axis unless its panels' tops differ by more than this factor
#: (σ_m from S0 = 0.01 to 0.7 in Fig. 4: one axis would flatten the first panel).
SHARE_WITHIN = 10.0


#: Metrics whose row always shares one axis: the drift's growth with n (Fig. 3) and its
#: shrinking with S0 (Fig. 4) is what the row shows.
ALWAYS_SHARED = ("l1_to_first",)


def _share_rows(axes, rows, always: tuple[int, ...] = ()) -> None:
    """One y-axis per row of panels, so that columns compare at a glance (call after
    drawing); a row whose panels' scales differ by more than :data:`SHARE_WITHIN` keeps
    its own axes, unless it is among ``always``."""
    for i in rows:
        tops = np.array([ax.get_ylim()[1] for ax in axes[i]])
        if i not in always and (tops.min() <= 0 or tops.max() / tops.min() > SHARE_WITHIN):
            continue
        low = min(ax.get_ylim()[0] for ax in axes[i])
        for ax in axes[i, 1:]:
            ax.sharey(axes[i, 0])
        axes[i, 0].set_ylim(low, tops.max())


def runs_grid(figure: Figure, results: Results, theory: Theories, directory: Path) -> list[Path]:
    """Figs. 3 and 4: one column per cell; rows: p(0) (if ``show_p0``), then each metric of
    ``options.metrics`` with each kept run thin, the mean bold with its ±2 se band, and theory
    dashed: S_m (eq. 9) on σ_m, the exact E‖p(m) − p(1)‖₁ on the drift. A metric's row shares
    one y-axis."""
    metrics = figure.options.metrics
    show_p0 = figure.options.show_p0
    rows, cols = len(metrics) + show_p0, len(figure.cells)
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.0 * rows), squeeze=False)
    for j, cell in enumerate(figure.cells):
        result = results[cell.key]
        if show_p0:
            plot_distribution(axes[0, j], result.data["p0"].values[0], title=cell.label)
        for i, metric in enumerate(metrics, start=int(show_p0)):
            curve, label = _metric_theory(metric, theory[cell.key])
            plot_runs(axes[i, j], result, metric, theory=curve, theory_label=label)
            if i == 0:
                axes[i, j].set_title(cell.label, fontsize=9)
    _share_rows(axes, range(int(show_p0), rows),
                always=tuple(i for i, metric in enumerate(metrics, start=int(show_p0))
                             if metric in ALWAYS_SHARED))
    fig.suptitle(figure.title, fontsize=10)
    fig.tight_layout()
    return _save(fig, directory, figure.id)


def window_columns(figure: Figure, results: Results, theory: Theories,
                   directory: Path) -> list[Path]:
    """Fig. 6: the paper's columns (σ_m, ‖p(m) − p(1)‖₁, histogram of T) for the cells of
    the first reading and those valid for every reading; then ``<id>_readings``: the T
    histograms of every reading side by side, against the paper's means."""
    tag = figure.options.compare_by or "reading"
    readings = list(dict.fromkeys(c.tags.get(tag) for c in figure.cells
                                  if c.tags.get(tag) not in (None, "any")))
    main = [c for c in figure.cells if c.tags.get(tag) in ("any", None, *readings[:1])]
    fig, axes = plt.subplots(3, len(main), figsize=(4.0 * len(main), 9.0), squeeze=False)
    for j, cell in enumerate(main):
        _window_column(axes[:, j], cell, results[cell.key], theory[cell.key])
    _share_rows(axes, (0, 1), always=(1,))
    fig.suptitle(f"{figure.title}" + (f" ({tag}: {readings[0]})" if readings else ""),
                 fontsize=10)
    fig.tight_layout()
    files = _save(fig, directory, figure.id)
    if len(readings) > 1:
        files += _readings_figure(figure, results, tag, readings, directory)
    return files


def _window_column(axes, cell: Cell, result: Result, theory: CellTheory) -> None:
    curve, label = _sigma_theory(theory)
    plot_runs(axes[0], result, "sigma", theory=curve, theory_label=label)
    axes[0].set_title(cell.label, fontsize=10)
    plot_runs(axes[1], result, "l1_to_first")
    plot_collapse_histogram(axes[2], result, theory_pmf=theory.curves.get("T_pmf_exact"),
                            reference=cell.paper.get("T_mean"), reference_label="paper mean",
                            max_generation=_hist_top(result, cell))
    if "collapsed_fraction" in cell.paper:
        # Two short lines inside the panel: one long line ran past a narrow panel's edge.
        axes[2].text(0.5, 0.9, f"paper: {cell.paper['collapsed_fraction']:.0%} of runs\n"
                     f"hit a Dirac mass", transform=axes[2].transAxes, ha="center", va="top",
                     fontsize=8, color=MEAN_COLOR)


def _hist_top(result: Result, cell: Cell) -> int:
    """Right end of a T histogram: the horizon if some run is censored, else a little past
    the largest T (and past the paper's mean), so that short collapse times stay readable."""
    times = result.data["collapse_time"].values
    if np.isnan(times).any():
        return result.n_generations
    top = max(float(np.max(times)), cell.paper.get("T_mean", 0.0))
    return int(min(result.n_generations, max(10, np.ceil(1.1 * top))))


def _readings_figure(figure: Figure, results: Results, tag: str, readings: list,
                     directory: Path) -> list[Path]:
    windows = list(dict.fromkeys(c.tags.get("K") for c in figure.cells
                                 if c.tags.get(tag) not in (None, "any")))
    fig, axes = plt.subplots(len(readings), len(windows),
                             figsize=(4.2 * len(windows), 3.2 * len(readings)), squeeze=False)
    for i, reading in enumerate(readings):
        for j, window in enumerate(windows):
            ax = axes[i, j]
            cell = next((c for c in figure.cells
                         if c.tags.get(tag) == reading and c.tags.get("K") == window), None)
            if cell is None:
                ax.axis("off")
                continue
            plot_collapse_histogram(ax, results[cell.key], reference=cell.paper.get("T_mean"),
                                    reference_label="paper mean",
                                    max_generation=_hist_top(results[cell.key], cell))
            ax.set_title(f"{cell.label} ({tag}: {reading})\n" + ax.get_title(), fontsize=9)
    fig.suptitle(f"{figure.title}: collapse time T under each {tag}", fontsize=10)
    fig.tight_layout()
    return _save(fig, directory, f"{figure.id}_readings")


#: Layout name (as figure specs write it) -> the function that draws it.
LAYOUTS: dict[str, Callable[[Figure, Results, Theories, Path], list[Path]]] = {
    "simplex": simplex,
    "collapse_time_vs_n": collapse_time_vs_n,
    "runs_grid": runs_grid,
    "window_columns": window_columns,
}


def draw(figure: Figure, results: Results, theory: Theories, directory: Path) -> list[Path]:
    """Draw ``figure`` with its layout; returns the files written (PNG and PDF)."""
    return LAYOUTS[figure.layout](figure, results, theory, directory)
