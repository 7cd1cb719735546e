"""``modelcollapse simulate``: run the statistical loop from flags or a TOML spec."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .._files import (
    atomic_write_text,
    check_output_folder,
    remove_stale_temps,
    replace_dir,
    temp_dir,
)
from ..api import plan, simulate
from ..engine.plan import REPRESENTATIONS
from ..engine.recorder import TRAJECTORY_MEMORY_MB
from ..spec import SimulationSpec, load_spec
from ._common import echo_json, input_errors, spec_default


def _text_summary(summary: dict) -> str:
    gens = summary["generations"]
    lines = [
        f"scenario           {summary['scenario']}",
        f"p(0)               vocab {summary['vocab']}, support {summary['support']}, "
        f"S0 {summary['S0']}",
        f"runs × generations {summary['runs']} × {gens} (contexts {summary['contexts']})",
        f"seed entropy       {summary['seed_entropy']}",
    ]
    if summary["collapse_time_mean"] is not None:
        lines.append(f"collapse time T    {summary['collapse_time_mean']:.2f} ± "
                     f"{summary['collapse_time_se'] or 0:.2f} (se) over "
                     f"{summary['collapsed_runs']} collapsed runs; "
                     f"{summary['censored_runs']} censored")
    else:
        lines.append(f"collapse time T    no run collapsed in {gens} generations")
    for metric in ("sigma", "l1_to_first"):
        if f"{metric}_mean" in summary:
            mean, se = summary[f"{metric}_mean"][-1], summary[f"{metric}_se"][-1]
            lines.append(f"{metric:<18} {mean:.4f} ± {se or 0:.4f} (se) at generation {gens}")
    return "\n".join(lines)


def _number_of_runs(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"'trajectories' must be auto, all, none or a number of runs; "
                         f"got {text!r}") from None


#: What ``simulate --out`` writes, all or nothing.
OUTPUTS = ("result.zarr", "summary.json", "simulation.png")


def _simulate_into(out: Path, spec: SimulationSpec, entropy: int, progress, threads) -> dict:
    """Simulate with the result, summary and figure built in a temporary folder inside
    ``out``, moved into ``out`` only once all three are whole: a failure or a kill leaves
    ``out`` as it was (and the next run there removes the temporary)."""
    from ..plots import simulation_figure

    remove_stale_temps(out)
    with temp_dir(out / "simulate") as stage:
        result = simulate(spec, seed=entropy, progress=progress, threads=threads,
                          store=stage / "result.zarr")
        summary = result.summary()
        atomic_write_text(stage / "summary.json", json.dumps(summary, indent=2))
        simulation_figure(result, stage / "simulation.png")
        for name in OUTPUTS:
            replace_dir(stage / name, out / name)
    return summary


@click.command("simulate")
@click.option("--config", type=click.Path(dir_okay=False),
              help="TOML spec with the same fields (example: examples/simulate.toml).")
@click.option("--vocab", type=int, help="Vocabulary size s." + spec_default("vocab"))
@click.option("--support", type=int, help="Support size s̃ of p(0)." + spec_default("support"))
@click.option("--S0", "S0", type=float, help="Σ p_i² of p(0)." + spec_default("S0"))
@click.option("--p0", type=click.Path(dir_okay=False),
              help="p(0) from .npy/.txt/.csv/.json (excludes the p(0) flags above).")
@click.option("--family", type=click.Choice(["target", "zipf", "dirichlet", "uniform"]),
              help="Family of p(0)." + spec_default("family"))
@click.option("--contexts", type=int,
              help="Independent contexts (Fig. 1 uses 81)." + spec_default("contexts"))
@click.option("--scenario", type=str, help="fully-synthetic, partially-synthetic, most-recent, "
              "random-pool, accumulate, accumulate-subsample, fresh-real."
              + spec_default("scenario"))
@click.option("--n", "n", type=int, help="Synthetic samples per generation." + spec_default("n"))
@click.option("--N", "N", type=int, help="Real samples per generation (scenarios with real "
              "data).")
@click.option("--K", "K", type=int, help="Window size (most-recent).")
@click.option("--window-split", "window_split", type=click.Choice(["even", "literal"]),
              help="How most-recent splits n over its window." + spec_default("window_split"))
@click.option("--generations", type=int, help="Generations after p(0)."
              + spec_default("generations"))
@click.option("--runs", type=int, help="Independent runs." + spec_default("runs"))
@click.option("--seed", type=int, help="Seed.  [default: fresh entropy, recorded in the result]")
@click.option("--backend", type=click.Choice(["numpy", "torch"]),
              help="Engine." + spec_default("backend"))
@click.option("--device", type=str, help="cpu or cuda (torch backend)." + spec_default("device"))
@click.option("--representation", type=click.Choice(REPRESENTATIONS),
              help="How a model is held: training tokens or counts (default auto: counts "
                   "when the draws per model are many times the live support).")
@click.option("--metrics", type=str, help="Comma-separated metrics to record.  [default: all]")
@click.option("--trajectories", type=str,
              help="Runs whose every generation is kept: auto (all that fit in "
                   "--trajectory-memory-mb), all, none, or a number k (runs 0 … k−1); with "
                   "--out, more than fit in memory stream to the result's store. Means and "
                   "standard errors always cover every run.  [default: auto]")
@click.option("--trajectory-memory-mb", "trajectory_memory_mb", type=float,
              help=f"Memory kept trajectories may take, in MB.  "
                   f"[default: {TRAJECTORY_MEMORY_MB:g}]")
@click.option("--out", type=click.Path(file_okay=False), help="Write result, summary, plot here.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a TTY).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Threads of the compiled routes (default: $MODELCOLLAPSE_THREADS, else "
                   "every core); results do not depend on it.")
@click.option("--explain", is_flag=True,
              help="Print the resolved plan (backend, representation, route, chunks, kept "
                   "trajectories) and exit without simulating.")
def command(config, metrics, out, fmt, progress, threads, explain, **flags) -> None:
    """Simulate the recursive train-generate loop and summarise collapse."""
    with input_errors():
        given = {k: v for k, v in flags.items() if v is not None}
        if given.get("trajectories", "auto") not in ("auto", "all", "none"):
            given["trajectories"] = _number_of_runs(given["trajectories"])
        if metrics is not None:
            given["metrics"] = tuple(m.strip() for m in metrics.split(",") if m.strip())
        spec = load_spec(config, **given) if config else SimulationSpec(**given)
        if out is not None:
            out = check_output_folder(out, "out")
        store = None if out is None else out / "result.zarr"
        resolved = plan(spec, threads=threads, store=store)  # refuses before any work
    if explain:
        click.echo(resolved.describe())
        return
    if out is None:
        summary = simulate(spec, seed=resolved.entropy, progress=progress,
                           threads=threads).summary()
    else:
        summary = _simulate_into(out, spec, resolved.entropy, progress, threads)
    if fmt == "json":
        echo_json(summary)
    else:
        click.echo(_text_summary(summary))
        if out is not None:
            click.echo(f"wrote {out / 'result.zarr'}, {out / 'summary.json'}, "
                       f"{out / 'simulation.png'}")
