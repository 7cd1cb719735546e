"""Plots: one function per kind of panel, each drawing on a given matplotlib Axes.

House style (the paper's): individual runs thin and pale, the mean over runs bold, theory
dashed. Figures are written with :func:`save_figure` (PNG and optionally PDF, atomically).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from .results import Result

__all__ = [
    "METRIC_LABELS",
    "plot_collapse_histogram",
    "plot_distribution",
    "plot_runs",
    "save_figure",
    "simulation_figure",
]

METRIC_LABELS = {
    "sigma": r"$\sigma_m = \|p^{(m)}\|_2^2$",
    "sup": r"$\|p^{(m)}\|_\infty$",
    "l1_to_first": r"$\|p^{(m)} - p^{(1)}\|_1$",
    "l1_to_true": r"$\|p^{(m)} - p^{(0)}\|_1$",
    "entropy": "entropy (nats)",
    "support": "support size",
}
RUN_COLOR, MEAN_COLOR, THEORY_COLOR = "#e6b422", "#c0392b", "#1f4e9c"


def plot_runs(ax, result: Result, metric: str, *, context: int = 0, max_runs: int = 100,
              theory: np.ndarray | None = None, theory_label: str = "theory") -> None:
    """Each run thin, the mean over runs bold (with a ±2 se band), optional theory dashed."""
    values = result.data[metric].isel(context=context).values.astype(float)  # (run, generation)
    generations = result.data["generation"].values
    for row in values[:max_runs]:
        ax.plot(generations, row, color=RUN_COLOR, lw=0.5, alpha=0.35)
    mean, se = result.mean(metric) if result.data.sizes["context"] == 1 else (
        np.nanmean(values, axis=0), np.nanstd(values, axis=0) / np.sqrt(values.shape[0]))
    ax.plot(generations, mean, color=MEAN_COLOR, lw=2, label="mean over runs")
    ax.fill_between(generations, mean - 2 * se, mean + 2 * se, color=MEAN_COLOR, alpha=0.2, lw=0)
    if theory is not None:
        ax.plot(generations[: len(theory)], theory, ls="--", color=THEORY_COLOR, lw=1.6,
                label=theory_label)
    ax.set_xlabel("generation m")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.legend(frameon=False, fontsize=8)


def plot_collapse_histogram(ax, result: Result, *, variable: str = "collapse_time",
                            bins: int = 30) -> None:
    """Histogram of the collapse time T over runs, the mean as a vertical line; censored runs
    are counted in the title, never dropped silently."""
    times = result.data[variable].values.ravel()
    done = times[~np.isnan(times)]
    censored = int(np.isnan(times).sum())
    if done.size:
        ax.hist(done, bins=bins, color="#7fb069", edgecolor="white")
        ax.axvline(done.mean(), color=MEAN_COLOR, lw=2, label=f"mean = {done.mean():.1f}")
        ax.legend(frameon=False, fontsize=8)
    ax.set_xlabel("T (generation of total collapse)" if variable == "collapse_time"
                  else "absorption time")
    ax.set_ylabel("runs")
    ax.set_title(f"{done.size} collapsed, {censored} censored", fontsize=9)


def plot_distribution(ax, p: np.ndarray, *, title: str | None = None) -> None:
    """Bar plot of a distribution over tokens on a log axis (paper Figs. 2 and 4, top row)."""
    tokens = np.flatnonzero(p > 0)
    ax.bar(tokens, p[tokens], width=max(1.0, p.size / 300), color="#2e8b57")
    ax.set_yscale("log")
    ax.set_xlim(0, p.size)
    ax.set_xlabel("token i")
    ax.set_ylabel("$p_i$")
    if title:
        ax.set_title(title, fontsize=9)


def simulation_figure(result: Result, path: str | Path, *,
                      metrics: Sequence[str] = ("sigma", "l1_to_first"),
                      theory: dict[str, np.ndarray] | None = None, pdf: bool = False) -> Path:
    """The summary figure of one simulation: metric panels plus the collapse-time histogram."""
    present = [m for m in metrics if m in result.data]
    fig, axes = plt.subplots(1, len(present) + 1, figsize=(4.2 * (len(present) + 1), 3.4))
    for ax, metric in zip(axes, present):
        plot_runs(ax, result, metric, theory=(theory or {}).get(metric))
    plot_collapse_histogram(axes[-1], result)
    fig.suptitle(result.data.attrs.get("scenario", ""), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, pdf=pdf)


def save_figure(fig, path: str | Path, *, pdf: bool = False, dpi: int = 130) -> Path:
    """Write ``fig`` to ``path`` (PNG) atomically, and beside it as PDF if asked; close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    targets = [path] + ([path.with_suffix(".pdf")] if pdf else [])
    try:
        for target in targets:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix,
                                       dir=target.parent)
            os.close(fd)
            fig.savefig(tmp, dpi=dpi, metadata={"Date": None} if target.suffix == ".svg" else None)
            os.replace(tmp, target)
    finally:
        plt.close(fig)
    return path
