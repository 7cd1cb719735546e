"""Plots: one function per kind of panel, each drawing on a given matplotlib Axes.

House style (the paper's): individual runs thin and pale (those whose trajectories the
result kept), the mean over every run bold with its ±2 se band, theory dashed. Figures are
written with :func:`save_figure` (PNG and optionally PDF, atomically).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from ._files import atomic_write
from .results import Result

__all__ = [
    "COLUMN_LABELS",
    "METRIC_LABELS",
    "MIN_SHOWN_PROBABILITY",
    "column_label",
    "plot_collapse_histogram",
    "plot_distribution",
    "plot_relative_difference",
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
#: Axis labels of sweep table columns (spec fields and per-point statistics), for plots over
#: a sweep's axes. Names not listed are labelled as they are.
COLUMN_LABELS = {
    "n": "synthetic sample size n",
    "N": "real corpus size N",
    "K": "window K (most recent models)",
    "S0": r"$S_0 = \|p^{(0)}\|_2^2$",
    "support": "support size s̃ of p(0)",
    "vocab": "vocabulary size s",
    "contexts": "contexts",
    "runs": "runs",
    "generations": "generations",
    "generation": "generation m",
    "temperature": "sampling temperature",
    "collapsed_fraction": "fraction of runs collapsed",
    "absorbed_fraction": "fraction of runs absorbed",
    "collapsed_runs": "runs collapsed",
    "absorbed_runs": "runs absorbed",
    "censored_runs": "runs not collapsed (censored)",
    "elapsed_s": "wall time (s)",
    "cpu_s": "CPU time (s)",
}
_TIME_LABELS = {"collapse_time": "collapse time T", "absorption_time": "absorption time"}
_STAT_LABELS = {"mean": "mean over collapsed runs", "se": "standard error", "median": "median",
                "q10": "10% quantile", "q90": "90% quantile"}
#: Tokens of p(0) less likely than this are left out of its bar plot (counted in a note):
#: no experiment here draws enough samples to meet one, and they stretch a log axis to 1e-50.
MIN_SHOWN_PROBABILITY = 1e-6


def column_label(name: str) -> str:
    """The axis label of a metric or a sweep column (``"collapse_time_median"`` ->
    ``"collapse time T, median"``); the name itself when it has none."""
    if name in METRIC_LABELS:
        return METRIC_LABELS[name]
    if name in COLUMN_LABELS:
        return COLUMN_LABELS[name]
    base, _, stat = name.rpartition("_")
    if base in METRIC_LABELS and stat in ("mean", "se"):
        return METRIC_LABELS[base] + ("" if stat == "mean" else ", standard error")
    if base in _TIME_LABELS and stat in _STAT_LABELS:
        return f"{_TIME_LABELS[base]}, {_STAT_LABELS[stat]}"
    return name


RUN_COLOR, MEAN_COLOR, THEORY_COLOR = "#e6b422", "#c0392b", "#1f4e9c"
PAPER_COLOR, BOUND_COLOR, HIST_COLOR = "#555555", "#d62728", "#7fb069"
DIFFUSION_COLOR = "#2ca02c"


@dataclass(frozen=True)
class Curve:
    """A theory curve to overlay: y over x, drawn dashed (house style) unless told otherwise."""

    x: np.ndarray
    y: np.ndarray
    label: str
    style: str = "--"
    color: str = THEORY_COLOR


def plot_runs(ax, result: Result, metric: str, *, context: int = 0, max_runs: int = 100,
              theory: np.ndarray | None = None, theory_label: str = "theory",
              start: int | None = None) -> None:
    """The mean over every run bold with a ±2 se band, the kept runs thin (at most
    ``max_runs``; none when the result kept no trajectories), optional theory dashed.

    ``theory`` is indexed by generation m = 0, 1, …. ``start``: first generation drawn; by
    default 1 for ``l1_to_first`` (at m = 0 it holds ‖p(0) − p(1)‖₁, another quantity) and
    0 otherwise.
    """
    start = (1 if metric == "l1_to_first" else 0) if start is None else start
    generations = result.data["generation"].values
    kept = result.trajectories
    if kept is not None:
        # The runs drawn alone are read (a streamed result's trajectories stay on disk).
        values = kept[metric].isel(context=context, run=slice(0, max_runs)).values.astype(float)
        # One call for all runs: far faster than a call per run at 100 runs × 500 generations.
        ax.plot(generations[start:], values[:, start:].T, color=RUN_COLOR, lw=0.5, alpha=0.35)
    mean, se = result.mean(metric, context=context)
    ax.plot(generations[start:], mean[start:], color=MEAN_COLOR, lw=2, label="mean over runs")
    ax.fill_between(generations[start:], (mean - 2 * se)[start:], (mean + 2 * se)[start:],
                    color=MEAN_COLOR, alpha=0.2, lw=0, label="±2 se")
    if theory is not None:
        theory = np.asarray(theory, dtype=np.float64)
        ax.plot(generations[start: len(theory)], theory[start:], ls="--", color=THEORY_COLOR,
                lw=1.6, label=theory_label)
    ax.set_xlabel("generation m")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.legend(frameon=False, fontsize=8)


def plot_collapse_histogram(ax, result: Result, *, variable: str = "collapse_time",
                            bins: int = 30, theory_pmf: np.ndarray | None = None,
                            theory_label: str = "exact law", reference: float | None = None,
                            reference_label: str = "paper", max_generation: int | None = None,
                            ) -> None:
    """Histogram of the collapse time T over runs, the mean as a vertical line; censored runs
    are counted in the title, never dropped silently.

    ``theory_pmf``: P(T = m) for m = 0, 1, …, drawn dashed as the expected count per bin.
    ``reference``: a mean stated elsewhere (the paper's), drawn as a dotted vertical line.
    ``max_generation``: the right end of the bins (default: the result's last generation).
    """
    times = result.data[variable].values.ravel()
    done = times[~np.isnan(times)]
    censored = int(np.isnan(times).sum())
    top = result.n_generations if max_generation is None else max_generation
    edges = np.linspace(0.5, top + 0.5, bins + 1)
    if done.size:
        ax.hist(done, bins=edges, color=HIST_COLOR, edgecolor="white")
        ax.axvline(done.mean(), color=MEAN_COLOR, lw=2, label=f"mean = {done.mean():.1f}")
    if theory_pmf is not None:
        # Expected runs per bin: runs × P(T in bin), from the cumulative law at the bin edges.
        cdf = np.concatenate([[0.0], np.cumsum(theory_pmf)])
        at = np.clip(np.floor(edges).astype(int) + 1, 0, cdf.size - 1)
        expected = times.size * np.diff(cdf[at])
        ax.stairs(expected, edges, ls="--", color=THEORY_COLOR, lw=1.4, label=theory_label)
    if reference is not None:
        ax.axvline(reference, color=PAPER_COLOR, ls=":", lw=1.8,
                   label=f"{reference_label} = {reference:g}")
    if done.size or theory_pmf is not None or reference is not None:
        ax.legend(frameon=False, fontsize=8)
    if not done.size:
        # An empty panel reads as a drawing failure: say what the data are.
        ax.text(0.5, 0.5, f"no run collapsed\nwithin {result.n_generations} generations\n"
                f"({censored} of {times.size} censored)", transform=ax.transAxes, ha="center",
                va="center", fontsize=9, color=PAPER_COLOR)
        ax.set_ylim(0, 1)
    # Counts of runs and generations are whole numbers: no tick at 0.5.
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, top + 0.5)
    ax.set_xlabel("T (generation of total collapse)" if variable == "collapse_time"
                  else "absorption time")
    ax.set_ylabel("runs")
    ax.set_title(f"{done.size} collapsed, {censored} censored", fontsize=9)


def plot_distribution(ax, p: np.ndarray, *, title: str | None = None,
                      min_probability: float = MIN_SHOWN_PROBABILITY) -> None:
    """Bar plot of a distribution over tokens on a log axis (paper Figs. 2 and 4, top row).

    Tokens below ``min_probability`` are left out (the axis starts just below the smallest
    token shown) and counted in a note, with the effective support exp(H) (entropy H in
    nats): a p(0) with s̃ = 16 tokens whose mass sits on two reads as such.
    """
    p = np.asarray(p, dtype=np.float64)
    positive = np.flatnonzero(p > 0)
    tokens = positive[p[positive] >= min_probability]
    if tokens.size == 0:  # every token tiny (a huge vocabulary): show the largest ones
        tokens = positive
    # One line collection, not a patch per token: hundreds of bars cost seconds to draw.
    ax.set_yscale("log")
    floor = p[tokens].min() / 2
    ax.vlines(tokens, floor, p[tokens], color="#2e8b57", lw=max(0.6, 300 / max(p.size, 1)))
    ax.set_ylim(floor, min(1.5, 2 * p.max()))
    hidden = positive.size - tokens.size
    q = p[positive]
    effective = float(np.exp(-np.sum(q * np.log(q))))
    note = f"{positive.size} tokens, exp(H) = {effective:.3g}"
    if hidden:
        note += f"\n{hidden} below {min_probability:g} not shown"
    ax.text(0.98, 0.97, note, transform=ax.transAxes, ha="right", va="top", fontsize=7,
            color=PAPER_COLOR, bbox={"facecolor": "white", "alpha": 0.8, "lw": 0, "pad": 1.5})
    ax.set_xlim(0, p.size)
    ax.set_xlabel("token i")
    ax.set_ylabel("$p_i$")
    if title:
        ax.set_title(title, fontsize=9)


def simplex_xy(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric projection of points of the 2-simplex, ``p`` (k, 3) -> x, y each (k,):
    x = p₂ + p₃/2, y = (√3/2) p₃, so δ₁, δ₂, δ₃ land on (0, 0), (1, 0), (1/2, √3/2)."""
    p = np.asarray(p, dtype=np.float64)
    return p[:, 1] + 0.5 * p[:, 2], (np.sqrt(3) / 2) * p[:, 2]


def plot_simplex(ax, points: np.ndarray, *, title: str | None = None,
                 labels: Sequence[str] = ("1", "2", "3")) -> None:
    """Ternary scatter of distributions over 3 tokens (paper Fig. 1), ``points`` (k, 3).

    Points at a vertex (Dirac masses) are drawn solid and larger; the others pale. The count
    at a vertex is written under the triangle.
    """
    points = np.asarray(points, dtype=np.float64)
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2], [0.0, 0.0]])
    ax.plot(corners[:, 0], corners[:, 1], color="#999999", lw=0.8)
    for (cx, cy), label, dx, dy in zip(corners[:3], labels, (-0.05, 0.05, 0.0), (-0.06, -0.06,
                                                                                   0.05)):
        ax.text(cx + dx, cy + dy, label, ha="center", va="center", fontsize=8, color="#666666")
    vertex = points.max(axis=1) >= 1.0
    x, y = simplex_xy(points)
    ax.scatter(x[~vertex], y[~vertex], s=14, color=MEAN_COLOR, alpha=0.35, lw=0)
    ax.scatter(x[vertex], y[vertex], s=40, color=MEAN_COLOR, alpha=1.0, lw=0)
    ax.text(0.5, -0.14, f"{int(vertex.sum())} of {points.shape[0]} at a vertex", ha="center",
            fontsize=8)
    ax.set_xlim(-0.1, 1.1)
    ax.set_ylim(-0.2, 0.95)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)


def plot_collapse_time_vs_n(ax, n: np.ndarray, mean: np.ndarray, se: np.ndarray, *,
                            curves: Sequence[Curve] = (), title: str | None = None) -> None:
    """Mean collapse time against the sample size n (paper Fig. 2, bottom row): crosses with
    ±2 se bars, theory curves (bounds, exact E[T], predictions) over n. All arrays (len(n),)."""
    se = np.nan_to_num(np.asarray(se, dtype=np.float64))
    ax.errorbar(n, mean, yerr=2 * se, fmt="x", color=THEORY_COLOR, ms=7, mew=1.6, capsize=2,
                lw=1, label="mean T over runs (±2 se)", zorder=3)
    for curve in curves:
        ax.plot(curve.x, curve.y, ls=curve.style, color=curve.color, lw=1.5, label=curve.label)
    ax.set_xlabel("sample size n")
    ax.set_ylabel("generation of total collapse T")
    ax.set_xlim(0, None)
    ax.set_ylim(0, None)
    ax.legend(frameon=False, fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)


def plot_relative_difference(ax, n: np.ndarray, relative: np.ndarray,
                             relative_se: np.ndarray, *, curves: Sequence[Curve] = (),
                             reference: str = "exact E[T]") -> None:
    """Relative difference to a reference curve over n, in percent (paper Fig. 2, added row):
    simulated means as crosses with ±2 se bars, theory curves, and zero (the reference).
    Arrays (len(n),); curve ``y`` values are fractions, drawn ×100."""
    ax.axhline(0.0, color=THEORY_COLOR, lw=1.2, ls="--", label=reference)
    ax.errorbar(n, 100 * np.asarray(relative), yerr=200 * np.asarray(relative_se), fmt="x",
                color=THEORY_COLOR, ms=6, mew=1.4, capsize=2, lw=1, label="mean T over runs")
    for curve in curves:
        ax.plot(curve.x, 100 * np.asarray(curve.y), ls=curve.style, color=curve.color, lw=1.8,
                label=curve.label)
    ax.set_xlim(0, None)
    ax.set_xlabel("sample size n")
    ax.set_ylabel(f"relative to {reference} (%)")
    ax.legend(frameon=False, fontsize=7)


def simulation_figure(result: Result, path: str | Path, *,
                      metrics: Sequence[str] = ("sigma", "l1_to_first"),
                      theory: dict[str, np.ndarray] | None = None, pdf: bool = False) -> Path:
    """The summary figure of one simulation: a panel per recorded metric of ``metrics``, plus
    the collapse-time histogram."""
    present = [m for m in metrics if m in result.metrics]
    fig, axes = plt.subplots(1, len(present) + 1, figsize=(4.2 * (len(present) + 1), 3.4),
                             squeeze=False)
    axes = axes[0]
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
            kind = target.suffix.lstrip(".").lower() or "png"
            metadata = {"Date": None} if kind == "svg" else None
            # A file object carries no suffix: the format is named.
            atomic_write(target, lambda fh, kind=kind, metadata=metadata: fig.savefig(
                fh, format=kind, dpi=dpi, metadata=metadata))
    finally:
        plt.close(fig)
    return path
