"""The ``modelcollapse`` command line: one small module per verb, registered on one group."""

from __future__ import annotations

import importlib

import click

from ._common import run_main

#: Modules under modelcollapse.cli that each define a click command or group named ``command``.
VERB_MODULES = ("simulate", "theory", "budget", "verify", "reproduce", "sweep", "results", "lm",
                "ngram", "functional")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modelcollapse")
@click.option("--debug", is_flag=True,
              help="Show the traceback of an unexpected error (also: MODELCOLLAPSE_DEBUG=1).")
def cli(debug: bool) -> None:
    """Simulate, predict and reproduce language model collapse under recursive training."""


for _name in VERB_MODULES:
    cli.add_command(importlib.import_module(f"{__name__}.{_name}").command)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code (2 for bad input)."""
    return run_main(cli, argv)
