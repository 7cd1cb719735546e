"""Plots of transformer runs: Fig. 5 (several scenarios side by side) and one run's own figure,
and one run's generated text, decoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..corpus import CharTokenizer
from .checkpoint import atomic_write
from .metrics import mean_band
from .result import RunResult, gen_dir

__all__ = ["plot_figure5", "plot_run", "write_samples"]

#: Colour and line style of the scenarios of Fig. 5, in order.
_STYLE = {0: ("tab:red", "-"), 1: ("tab:orange", "--"), 2: ("tab:green", ":")}
#: Streams of each generation's text written decoded, and characters of each.
SAMPLE_STREAMS, SAMPLE_CHARS = 3, 400


def plot_run(result: RunResult, path: str | Path) -> Path:
    """One run's figure: ‖p(m) − p(1)‖₁ over the contexts with its band, and the validation
    loss of every model, as Fig. 5 draws a scenario."""
    return plot_figure5({result.settings.get("scenario", "run"): [result]}, path)


def write_samples(result: RunResult, tokenizer: CharTokenizer, path: str | Path) -> Path:
    """The first streams of text each generation published, decoded (the corpus files hold
    token ids): what the models write, generation after generation."""
    parts = []
    for record in result.generations:
        corpus = gen_dir(result.out, record.generation) / "corpus.npy"
        if record.corpus is None or not corpus.is_file():
            continue
        tokens = np.load(corpus, mmap_mode="r")
        parts.append(f"=== generation {record.generation} "
                     f"({record.corpus.get('tokens', tokens.size):,} tokens published) ===")
        for stream in tokens[:SAMPLE_STREAMS]:
            parts += [tokenizer.decode(stream[:SAMPLE_CHARS]), "---"]
    text = "\n".join(parts) + "\n"
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def plot_figure5(runs: dict[str, list[RunResult]], path: str | Path) -> Path:
    """Fig. 5: L1 deviation with its band, then a validation-loss panel per scenario."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = list(runs)
    fig = Figure(figsize=(4.2 * (1 + len(labels)), 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 1 + len(labels))
    ax = axes[0]
    for i, label in enumerate(labels):
        l1 = np.stack([r.l1_to_first for r in runs[label]])  # (seeds, M + 1, contexts)
        gens = np.arange(2, l1.shape[1])  # ‖p(1) − p(1)‖₁ = 0: start at m = 2
        bands = [mean_band(l1[:, m]) for m in gens]
        color, style = _STYLE.get(i, (None, "-"))
        ax.plot(gens, [b["mean"] for b in bands], style, color=color, label=label)
        ax.fill_between(gens, [b["lo"] for b in bands], [b["hi"] for b in bands],
                        color=color, alpha=0.2, linewidth=0)
    ax.set_xlabel("generation m")
    ax.set_ylabel(r"$\|p^{(m)} - p^{(1)}\|_1$")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)
    finals = [g.final_val_loss for label in labels for g in runs[label][0].generations]
    for ax, label in zip(axes[1:], labels, strict=True):
        gens = runs[label][0].generations
        cmap = _colormap(len(gens))
        # Fig. 5's range: from just under the best final loss to ~1.2 nats above it.
        ax.set_ylim(min(finals) - 0.05, min(finals) + 1.2)
        for g in gens:
            if g.generation == 0:
                ax.plot(g.iters, g.val_loss, "k--", linewidth=1, label="p(0)")
            else:
                ax.plot(g.iters, g.val_loss, color=cmap(g.generation),
                        label=f"Gen {g.generation}")
        ax.set_xscale("log")
        ax.set_xlabel("iterations")
        ax.set_ylabel("val loss")
        ax.set_title(label)
        ax.legend(fontsize=6, ncol=2)
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=150))


def _colormap(n: int):
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return lambda m: cmap((m - 1) / max(1, n - 2))
