"""Figures of n-gram runs: one run's metrics per generation, and fig5-ngram."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plots import save_figure

__all__ = ["plot_figure5_ngram", "plot_result"]

#: The panels of one run's figure: metric, axis label.
PANELS = (("l1_to_first", "‖p(m) − p(1)‖₁ (sampled contexts)"),
          ("cross_entropy", "validation cross-entropy (nats/token)"),
          ("collapsed_share", "share of contexts collapsed"),
          ("support_mean", "successors per context"),
          ("entropy_rate", "entropy rate (nats/token)"),
          ("distinct_3", "distinct-3 of written text"))
_STYLE = (("tab:red", "-"), ("tab:orange", "--"), ("tab:green", ":"), ("tab:blue", "-."))


def _figure(rows: int, cols: int, width: float = 3.6, height: float = 3.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, np.atleast_2d(fig.subplots(rows, cols, squeeze=False))


def _band(ax, result, metric: str, label: str | None, style=("tab:red", "-"),
          start: int = 0) -> None:
    mean, se = result.mean(metric)
    m = np.arange(mean.size)[start:]
    color, line = style
    ax.plot(m, mean[start:], line, color=color, label=label)
    if np.isfinite(se[start:]).any():
        ax.fill_between(m, mean[start:] - 2 * se[start:], mean[start:] + 2 * se[start:],
                        color=color, alpha=0.2, lw=0)


def plot_result(result, path: str | Path) -> Path:
    """Six panels over generations (mean ± 2 se over runs), the exact prediction dashed where
    the fixed-contexts loop has one."""
    fig, axes = _figure(2, 3)
    spec = result.spec
    for ax, (metric, label) in zip(axes.flat, PANELS, strict=True):
        _band(ax, result, metric, "simulation", start=1 if metric == "l1_to_first" else 0)
        predicted = f"{metric}_predicted"
        if predicted in result.data:
            ax.plot(result.data["generation"], result.data[predicted], "k--", lw=1,
                    label="exact prediction")
            ax.legend(fontsize=7)
        ax.set_xlabel("generation m")
        ax.set_ylabel(label, fontsize=8)
    fig.suptitle(f"{spec['tokenizer']} tokens, order {spec['order']}, {spec['loop']} loop, "
                 f"{result.data.attrs['scenario']}", fontsize=9)
    return save_figure(fig, path)


def plot_figure5_ngram(results: dict[int, dict[str, object]], path: str | Path,
                       transformer: dict[str, float] | None = None) -> Path:
    """fig5-ngram: per order k a column, ‖p(m) − p(1)‖₁ (top) and validation cross-entropy
    (bottom) per scenario; the transformer's m = 10 values of Fig. 5 as markers."""
    orders = sorted(results)
    fig, axes = _figure(2, len(orders))
    for col, k in enumerate(orders):
        for i, (label, result) in enumerate(results[k].items()):
            style = _STYLE[i % len(_STYLE)]
            _band(axes[0, col], result, "l1_to_first", label, style, start=1)
            _band(axes[1, col], result, "cross_entropy", label, style)
            if transformer and label in transformer:
                axes[0, col].plot([result.data.sizes["generation"] - 1], [transformer[label]],
                                  marker="*", color=style[0], ms=9, ls="none")
        axes[0, col].set_title(f"order k = {k}", fontsize=9)
        axes[0, col].set_ylabel("‖p(m) − p(1)‖₁, 300 contexts", fontsize=8)
        axes[1, col].set_ylabel("validation cross-entropy (nats)", fontsize=8)
        for ax in axes[:, col]:
            ax.set_xlabel("generation m")
        axes[0, col].legend(fontsize=7)
    if transformer:
        fig.suptitle("n-gram models of tiny Shakespeare (★: the transformer's Fig. 5 at m = 10)",
                     fontsize=9)
    return save_figure(fig, path)
