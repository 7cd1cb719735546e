"""``modelcollapse functional``: the softmax model on context embeddings (paper §5).

PyTorch is an optional extra, so this module imports ``modelcollapse.functional`` only when a
subcommand runs: the rest of the CLI works without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import pydantic

from .._files import (
    atomic_write_text,
    check_output_folder,
    remove_stale_temps,
    replace_dir,
    temp_dir,
)
from .._validation import validation_error_message
from ._common import echo_json, fail, input_errors

#: What ``functional run --out`` writes, all or nothing.
RUN_OUTPUTS = ("result.zarr", "summary.json", "functional.png")


def _require_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        fail("modelcollapse functional needs PyTorch: pip install 'modelcollapse[lm]'.")


def _spec(where: str, **fields):
    from ..functional import FunctionalSpec

    try:
        return FunctionalSpec.model_validate({k: v for k, v in fields.items() if v is not None},
                                             context={"where": where})
    except pydantic.ValidationError as exc:
        raise ValueError(validation_error_message(exc, where)) from None


@click.group("functional")
def command() -> None:
    """Softmax models on Gaussian context embeddings: the functional approximation error
    (paper §5)."""


@command.command("run")
@click.option("--contexts", type=int, help="Contexts c.  [default: 81]")
@click.option("--vocab", type=int, help="Vocabulary size s.  [default: 100]")
@click.option("--dim", type=int, help="Embedding dimension d.  [default: 81]")
@click.option("--embedding", type=str, help="gaussian, orthonormal or onehot.  "
              "[default: gaussian]")
@click.option("--family", type=str, help="p(0): softmax (realizable), logits, target, zipf, "
              "dirichlet, uniform.  [default: logits]")
@click.option("--p0-scale", "p0_scale", type=float, help="Scale of p(0)'s logits.  [default: 1]")
@click.option("--support", type=int, help="Support of p(0) (statistical families).")
@click.option("--S0", "S0", type=float, help="Σ p_i² of p(0) (family target).")
@click.option("--weight-decay", "weight_decay", type=float, help="λ.  [default: 0]")
@click.option("--solver", type=str, help="auto (the exact fit where one exists: λ = 0 with "
              "embeddings of rank c; else newton), newton, lbfgs or gd (early stopping).  "
              "[default: auto]")
@click.option("--steps", type=int, help="Gradient steps of solver gd.  [default: 100]")
@click.option("--tol", type=float, help="Solver tolerance on c‖∇F‖∞.  [default: 1e-06]")
@click.option("--collapse-tolerance", "collapse_tolerance", type=float,
              help="ε: collapsed when ‖p‖∞ ≥ 1 − ε.  [default: 0.001]")
@click.option("--scenario", type=str, help="As simulate.  [default: fully-synthetic]")
@click.option("--n", "n", type=int, help="Synthetic samples per context.  [default: 10]")
@click.option("--N", "N", type=int, help="Real samples per context.")
@click.option("--K", "K", type=int, help="Window (most-recent).")
@click.option("--generations", type=int, help="Generations after p(0).  [default: 100]")
@click.option("--runs", type=int, help="Independent runs.  [default: 200]")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=str, help="cpu, cuda, cuda:N or auto.  [default: cpu]")
@click.option("--out", type=click.Path(file_okay=False),
              help="Write result.zarr, summary.json and functional.png here.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a TTY).")
def run_command(out, progress, **flags) -> None:
    """Simulate the recursive loop of the softmax model and summarise collapse."""
    _require_torch()
    with input_errors():
        spec = _spec("functional run", **flags)
        if out is not None:
            out = check_output_folder(out, "out")
    from ..functional import run

    if out is None:
        result = run(spec, progress=progress)
        echo_json(_summary(result))
        return
    remove_stale_temps(out)
    with temp_dir(out / "functional") as stage:
        result = run(spec, progress=progress)
        result.save(stage / "result.zarr")
        summary = _summary(result)
        atomic_write_text(stage / "summary.json", json.dumps(summary, indent=2))
        from ..plots import simulation_figure

        simulation_figure(result, stage / "functional.png")
        for name in RUN_OUTPUTS:
            replace_dir(stage / name, out / name)
    echo_json({**summary, "out": str(out)})


def _summary(result) -> dict:
    summary = result.summary()
    solver = json.loads(result.data.attrs["functional"])
    keep = ("scenario", "runs", "contexts", "generations", "vocab", "seed_entropy",
            "collapse_time_mean", "collapse_time_se", "collapsed_runs", "censored_runs",
            "absorption_censored_runs")
    out = {k: summary[k] for k in keep}
    out["collapsed_runs_note"] = "counts (run, context) pairs with ‖p‖∞ ≥ 1 − ε at some m"
    for metric in ("sigma", "l1_to_first", "l1_to_true", "sup"):
        out[f"{metric}_last"] = summary[f"{metric}_mean"][-1]
        out[f"{metric}_last_se"] = summary[f"{metric}_se"][-1]
    out["sigma_mean"] = summary["sigma_mean"]
    out["solver"] = {k: solver[k] for k in ("solver", "device", "rank", "separable",
                                            "total_passes", "max_unconverged")}
    out["seconds"] = round(float(result.data.attrs["seconds"]), 2)
    return out


@command.command("figure")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for functional_figure.png and functional_grid.json; each finished "
                   "cell is kept in OUT/cells, so a rerun resumes.")
@click.option("--dims", default="8,16,32,64,81,128,256", show_default=True,
              help="Embedding dimensions d.")
@click.option("--weight-decays", "weight_decays", default="0,1e-4,1e-2", show_default=True,
              help="Weight decays λ.")
@click.option("--contexts", type=int, default=81, show_default=True)
@click.option("--vocab", type=int, default=100, show_default=True)
@click.option("--n", "n", type=int, default=10, show_default=True)
@click.option("--runs", type=int, default=200, show_default=True)
@click.option("--generations", type=int, default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=str, default="cpu", show_default=True)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a TTY).")
def figure_command(out, dims, weight_decays, progress, **fields) -> None:
    """Collapse time and σ_m against d/c and λ, the count model as reference, and the
    statistical and functional parts of ‖p(1) − p(0)‖₁ (docs/functional.md)."""
    _require_torch()
    with input_errors():
        dims = _numbers(dims, int, "dims")
        lams = _numbers(weight_decays, float, "weight-decays")
        base = _spec("functional figure", **fields)
        for d in dims:
            for lam in lams:
                _spec("functional figure", **fields, dim=d, weight_decay=lam)
        out = check_output_folder(out, "out")
    from ..functional.figure import run_grid, save_grid_figure

    grid = run_grid(base, dims, lams, progress=progress, cells_dir=Path(out) / "cells")
    remove_stale_temps(out)
    with temp_dir(out / "figure") as stage:
        atomic_write_text(stage / "functional_grid.json", json.dumps(grid, indent=2))
        save_grid_figure(grid, stage / "functional_figure.png")
        for name in ("functional_grid.json", "functional_figure.png"):
            replace_dir(stage / name, Path(out) / name)
    echo_json({"out": str(out), "seconds": grid["seconds"],
               "figure": str(Path(out) / "functional_figure.png")})


def _numbers(text: str, kind, name: str) -> list:
    try:
        values = [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"The '{name}' parameter of functional figure must be a "
                         f"comma-separated list of numbers. Got {text!r} instead.") from None
    if not values:
        raise ValueError(f"The '{name}' parameter of functional figure must name at least one "
                         f"value. Got {text!r} instead.")
    return values
