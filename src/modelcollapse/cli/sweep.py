"""``modelcollapse sweep``: run a parameter grid on local processes or a Dask cluster."""

from __future__ import annotations

from pathlib import Path

import click

from .._files import check_output_folder
from ..sweep import SweepInputError, load_sweep_spec, run_sweep
from ._common import echo_json, fail, input_errors


@click.command("sweep")
@click.argument("spec_path", metavar="SPEC.toml", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False),
              help="Output folder (default: ./<spec file name without .toml>).")
@click.option("--executor", type=click.Choice(["local", "dask"]), default=None,
              help="local processes (default) or a Dask LocalCluster on loopback.")
@click.option("--scheduler", type=str, metavar="ADDR",
              help="Address of a running Dask scheduler, e.g. tcp://host:8786.")
@click.option("--workers", type=int, help="Worker processes (default: all cores).")
@click.option("--store", type=click.Choice(["zarr", "netcdf"]), default="zarr", show_default=True,
              help="Format of each point's full result (netcdf: one file per point).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a TTY).")
def command(spec_path, out, executor, scheduler, workers, store, fmt, progress) -> None:
    """Simulate every point of the grid in SPEC.toml; skip points already finished in --out.

    The spec holds simulation parameters (as for `simulate --config`), runs, generations,
    seed, trajectories (runs each point keeps whole; default none), and an [axes] table of
    lists or ranges. Results: OUT/points.parquet (one row per point), OUT/generations.parquet
    (one row per point and generation) and each point's result in OUT/points/<id>/; query
    them with `modelcollapse results query OUT "SELECT …"`.
    """
    with input_errors():
        spec = load_sweep_spec(spec_path)
        if executor == "local" and scheduler is not None:
            raise ValueError("'--executor local' and '--scheduler' conflict: a scheduler "
                             "address means the dask executor")
        if workers is not None and workers < 1:
            raise ValueError(f"'--workers' must be at least 1; got {workers}")
        if workers is not None and scheduler is not None:
            raise ValueError("'--workers' and '--scheduler' conflict: a running cluster has "
                             "its own workers")
        out = check_output_folder(out if out is not None else Path(spec_path).stem, "out")
    try:
        outcome = run_sweep(spec, out, executor=executor or "local", scheduler=scheduler,
                            workers=workers, store=store, progress=progress)
    except ConnectionError as exc:
        fail(str(exc))
    except SweepInputError as exc:  # the output folder holds something else, say
        fail(str(exc))
    summary = {"out": str(outcome.out), "points": outcome.n_points, "run": outcome.n_run,
               "skipped": outcome.n_skipped, "elapsed_s": round(outcome.elapsed_s, 3),
               "seed_entropy": str(outcome.seed_entropy),
               "tables": [str(outcome.out / "points.parquet"),
                          str(outcome.out / "generations.parquet")]}
    if fmt == "json":
        echo_json(summary)
        return
    click.echo(f"sweep        {spec.name or Path(spec_path).stem}: {outcome.n_points} points "
               f"({outcome.n_run} run, {outcome.n_skipped} already finished) in "
               f"{outcome.elapsed_s:.1f} s")
    click.echo(f"seed entropy {outcome.seed_entropy}")
    click.echo(f"tables       {summary['tables'][0]}, {summary['tables'][1]}")
    click.echo(f"query        modelcollapse results query {outcome.out} "
               f"\"SELECT * FROM points LIMIT 5\"")
