"""The figure of the functional model: collapse time and σ_m against d/c and λ, with the count
model (eq. 2) as the reference, and the two parts of the first-generation error.

:func:`run_grid` simulates every (d, λ) of a grid from one base spec and returns plain numbers
(JSON-ready); :func:`save_grid_figure` draws them. Collapse times are censored at G (a context
that never reaches ‖p‖∞ ≥ 1 − ε): the grid reports the restricted mean
E[min(T, G + 1)] = Σ_{m=0}^{G} P(T > m) beside the fraction collapsed by G, and the count
model's exact restricted mean (:func:`modelcollapse.theory.collapse_time_law`) as the reference.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .._files import atomic_write_text
from ..scenarios import FullySynthetic
from ..theory import collapse_time_law, expected_sigma
from .loop import build_problem, run, structure_generator
from .spec import FunctionalSpec
from .theory import first_generation

__all__ = ["run_grid", "save_grid_figure"]

#: Stream of the first-generation draws of the figure's error decomposition.
FIRST_GENERATION_STREAM = 28


def _restricted_mean(times: np.ndarray, G: int) -> tuple[float, float]:
    """Mean and se of min(T, G + 1) over (run, context), censored (NaN) as G + 1."""
    capped = np.where(np.isnan(times), G + 1.0, times).ravel()
    return float(capped.mean()), float(capped.std(ddof=1) / np.sqrt(capped.size))


def run_grid(base: FunctionalSpec, dims: Sequence[int], weight_decays: Sequence[float], *,
             progress: bool | None = None, cells_dir: str | Path | None = None) -> dict:
    """Simulate ``base`` at every d in ``dims`` and λ in ``weight_decays`` (same seed: same
    p(0) of family ``logits`` for every d), plus the count model's exact reference.

    With ``cells_dir``, each finished cell is saved there (one JSON file, written atomically,
    beside the spec it ran) and a later call with the same specs takes it from there: a grid
    of many minutes resumes after its last finished cell."""
    started = time.perf_counter()
    seed = base.seed if base.seed is not None else 0
    G, c = base.generations, base.contexts
    cells = []
    bar = tqdm(total=len(dims) * len(weight_decays), unit="cell", desc="functional grid",
               disable=None if progress is None else not progress, leave=False)
    p0 = None
    for d in dims:
        spec_d = base.model_copy(update={"dim": int(d), "trajectories": "none", "seed": seed})
        embeddings, p0_d = build_problem(spec_d, seed)
        p0 = p0_d if p0 is None else p0
        for lam in weight_decays:
            spec = spec_d.model_copy(update={"weight_decay": float(lam)})
            saved = _saved_cell(cells_dir, spec)
            if saved is not None:
                cells.append(saved)
                bar.update(1)
                continue
            tick = time.perf_counter()
            result = run(spec, seed=seed, progress=False)
            sigma, sigma_se = result.mean("sigma")
            l1_true, _ = result.mean("l1_to_true")
            times = result.data["collapse_time"].values
            t_mean, t_se = _restricted_mean(times, G)
            rng = structure_generator(spec, seed, FIRST_GENERATION_STREAM)
            first = first_generation(embeddings, p0_d, float(lam), base.n,
                                     min(base.runs, 200), rng)
            cells.append({
                "dim": int(d), "weight_decay": float(lam), "d_over_c": d / c,
                "collapse_time_restricted_mean": t_mean, "collapse_time_restricted_se": t_se,
                "collapsed_fraction": float(np.mean(~np.isnan(times))),
                "sigma_mean": [float(x) for x in sigma],
                "sigma_se": [float(x) for x in sigma_se],
                "l1_to_true_last": float(l1_true[-1]),
                "first_generation": {"total": first.total, "total_se": first.total_se,
                                     "functional": first.functional,
                                     "statistical": first.statistical,
                                     "statistical_se": first.statistical_se},
                "seconds": round(time.perf_counter() - tick, 2),
            })
            _save_cell(cells_dir, spec, cells[-1])
            bar.update(1)
    bar.close()
    law = collapse_time_law(p0, n=base.n, max_generations=G)
    survival = np.atleast_2d(law.survival)  # (contexts, G + 1)
    reference_sigma = expected_sigma(p0, scenario=FullySynthetic(n=base.n),
                                     m=np.arange(G + 1))
    return {
        "contexts": c, "vocab": base.vocab, "n": base.n, "runs": base.runs, "generations": G,
        "seed": seed, "collapse_tolerance": base.collapse_tolerance, "tol": base.tol,
        "embedding": base.embedding, "family": base.family,
        "count_model": {
            "collapse_time_mean": float(np.mean(law.mean)),
            "collapse_time_restricted_mean": float(survival[:, : G + 1].sum(axis=1).mean()),
            "collapsed_fraction": float(1.0 - survival[:, G].mean()),
            "sigma_mean": [float(x) for x in np.atleast_2d(reference_sigma).reshape(
                -1, G + 1).mean(axis=0)] if np.ndim(reference_sigma) > 1 else
            [float(x) for x in np.asarray(reference_sigma).ravel()],
            "S0": float(np.mean(np.sum(p0 ** 2, axis=1))),
        },
        "cells": cells,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _cell_path(cells_dir: str | Path, spec: FunctionalSpec) -> Path:
    return Path(cells_dir) / f"cell_d{spec.dim}_lambda{spec.weight_decay:g}.json"


def _saved_cell(cells_dir: str | Path | None, spec: FunctionalSpec) -> dict | None:
    """A cell saved by an earlier call for this very spec, or None."""
    if cells_dir is None or not _cell_path(cells_dir, spec).is_file():
        return None
    try:
        saved = json.loads(_cell_path(cells_dir, spec).read_text())
    except (OSError, ValueError):
        return None  # unreadable: computed again
    return saved["cell"] if saved.get("spec") == spec.model_dump(mode="json") else None


def _save_cell(cells_dir: str | Path | None, spec: FunctionalSpec, cell: dict) -> None:
    if cells_dir is not None:
        atomic_write_text(_cell_path(cells_dir, spec),
                          json.dumps({"spec": spec.model_dump(mode="json"), "cell": cell}))


def save_grid_figure(grid: dict, path: str | Path) -> Path:
    """Four panels: restricted mean collapse time vs d/c (a line per λ, count model dashed);
    σ_G vs d/c; σ_m vs m for every cell of the largest and smallest d; the functional and
    statistical parts of ‖p(1) − p(0)‖₁ vs d/c (λ = the grid's smallest)."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..plots import save_figure

    cells, ref, G = grid["cells"], grid["count_model"], grid["generations"]
    lams = sorted({cell["weight_decay"] for cell in cells})
    fig = Figure(figsize=(18, 4.0))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 4)
    colors = colormaps["viridis"](np.linspace(0, 0.85, len(lams)))
    for lam, color in zip(lams, colors):
        row = sorted((c for c in cells if c["weight_decay"] == lam), key=lambda c: c["dim"])
        x = [c["d_over_c"] for c in row]
        axes[0].errorbar(x, [c["collapse_time_restricted_mean"] for c in row],
                         yerr=[2 * c["collapse_time_restricted_se"] for c in row], marker="o",
                         color=color, label=f"λ = {lam:g}", capsize=2)
        axes[1].errorbar(x, [c["sigma_mean"][-1] for c in row],
                         yerr=[2 * c["sigma_se"][-1] for c in row], marker="o", color=color,
                         label=f"λ = {lam:g}", capsize=2)
    axes[0].axhline(ref["collapse_time_restricted_mean"], color="k", ls="--",
                    label="count model (exact)")
    axes[0].set_ylabel(f"E[min(T, {G + 1})]  (‖p‖∞ ≥ 1 − ε)")
    axes[1].axhline(ref["sigma_mean"][-1], color="k", ls="--", label="count model (eq. 6)")
    axes[1].set_ylabel(f"σ_m at m = {G}")
    for ax in axes[:2]:
        ax.set_xscale("log", base=2)
        ax.axvline(1.0, color="0.7", lw=0.8)
        ax.set_xlabel("d / c")
        ax.legend(frameon=False, fontsize=7)
    dims = sorted({c["dim"] for c in cells})
    styles = {dims[0]: ":", dims[-1]: "-"}
    m = np.arange(G + 1)
    for cell in cells:
        if cell["dim"] in styles:
            color = colors[lams.index(cell["weight_decay"])]
            axes[2].plot(m, cell["sigma_mean"], ls=styles[cell["dim"]], color=color,
                         label=f"d = {cell['dim']}, λ = {cell['weight_decay']:g}")
    axes[2].plot(m, ref["sigma_mean"], color="k", ls="--", label="count model (eq. 6)")
    axes[2].set_xlabel("generation m")
    axes[2].set_ylabel("σ_m (mean over runs and contexts)")
    axes[2].legend(frameon=False, fontsize=6)
    low = sorted((c for c in cells if c["weight_decay"] == lams[0]), key=lambda c: c["dim"])
    x = np.arange(len(low))
    width = 0.28
    parts = [("total", "E‖p(1) − p(0)‖₁"), ("functional", "functional ‖q* − p(0)‖₁"),
             ("statistical", "statistical E‖p(1) − q*‖₁")]
    for k, (key, label) in enumerate(parts):
        axes[3].bar(x + (k - 1) * width, [c["first_generation"][key] for c in low], width,
                    label=label)
    axes[3].set_xticks(x, [f"{c['d_over_c']:.2g}" for c in low])
    axes[3].set_xlabel(f"d / c  (λ = {lams[0]:g})")
    axes[3].set_ylabel("first-generation error (mean over contexts)")
    axes[3].legend(frameon=False, fontsize=7)
    fig.suptitle(f"softmax on {grid['embedding']} embeddings: c = {grid['contexts']}, "
                 f"s = {grid['vocab']}, n = {grid['n']}, {grid['runs']} runs, "
                 f"ε = {grid['collapse_tolerance']:g}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
