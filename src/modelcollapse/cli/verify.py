"""``modelcollapse verify``: the statistical verification suite (simulation vs theory)."""

from __future__ import annotations

import math
from dataclasses import asdict

import click

from .._validation import check_int
from ._common import echo_json, input_errors


def _json_ready(check) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(check).items()}


@click.command("verify")
@click.option("--quick", is_flag=True, help="The CI grid (seconds) instead of the full one.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def command(quick, seed, fmt) -> None:
    """Simulate a grid of cases and check every applicable formula: exact ones by z-score,
    bounds as bounds, predictions by relative error. Exit code 1 if a check fails."""
    from ..verify import all_passed, format_table, run_verification

    with input_errors():
        seed = check_int(seed, "seed", low=0, where="verify")
    checks = run_verification(quick=quick, seed=seed,
                              progress=lambda label: click.echo(f"running {label}", err=True))
    if fmt == "json":
        echo_json({"passed": all_passed(checks), "checks": [_json_ready(c) for c in checks]})
    else:
        click.echo(format_table(checks))
    if not all_passed(checks):
        raise click.exceptions.Exit(1)
