"""What every verb shares: the CLI's one error boundary, and the helpers verbs use to report.

An expected error — bad input, a folder that holds something else, a damaged file the user
gave — is one line on stderr and exit code 2, raised before any work or write. Anything else
is a bug or the machine failing (out of memory, disk full): one line saying what happened
and how to get the traceback, exit code 1. ``--debug`` (or ``MODELCOLLAPSE_DEBUG=1``) shows
the traceback instead.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata

import click
import pydantic

from .._validation import InputError, validation_error_message

#: Environment variable that shows tracebacks, like ``--debug``.
DEBUG_VARIABLE = "MODELCOLLAPSE_DEBUG"


def input_error_message(exc: BaseException) -> str:
    """One line naming the field and the rule, from a pydantic or house validation error."""
    if isinstance(exc, pydantic.ValidationError):
        return validation_error_message(exc)
    if isinstance(exc, UnicodeDecodeError):
        return (f"A file given is not UTF-8 text (byte {exc.start}: "
                f"{exc.object[exc.start:exc.start + 1]!r}).")
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {str(exc.filename)!r}."
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _debugging(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def _where_to_report() -> str:
    """The issue tracker named in the package metadata, when there is one."""
    try:
        urls = metadata.metadata("modelcollapse").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        urls = []
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip().lower() in ("issues", "bug tracker", "tracker"):
            return url.strip()
    return "the modelcollapse issue tracker"


def run_main(group: click.Group, argv: list[str] | None) -> int:
    """Run the CLI; every outcome is an exit code and at most one line on stderr."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        group.main(args=argv, prog_name="modelcollapse", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        # One line, whatever click would add around it (usage text, hints).
        click.echo(f"Error: {exc.format_message()}", err=True)
        return exc.exit_code
    except InputError as exc:  # raised past a verb's own checks: still the user's to fix
        click.echo(f"Error: {input_error_message(exc)}", err=True)
        return 2
    except Exception as exc:
        if _debugging(argv):
            raise
        click.echo(f"Error: {_unexpected(exc)}", err=True)
        return 1
    return 0


def _unexpected(exc: Exception) -> str:
    if isinstance(exc, MemoryError):
        return ("ran out of memory; lower the sizes asked for (runs, generations, vocab) or "
                f"set {DEBUG_VARIABLE}=1 to see where.")
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {str(exc.filename)!r}" if exc.filename is not None else ""
        return f"{exc.strerror}{where}."
    detail = input_error_message(exc)
    return (f"internal error ({type(exc).__name__}: {detail[:200]}). This is a bug: please "
            f"report it to {_where_to_report()} with the output of the same command run with "
            f"--debug.")


@contextmanager
def input_errors() -> Iterator[None]:
    """Inside this block, a validation error is the user's: one line, exit code 2.

    Wrap only the parsing of flags and files into specs, so that a bug elsewhere still shows
    as a bug instead of posing as bad input.
    """
    try:
        yield
    except (ValueError, TypeError, pydantic.ValidationError, OSError) as exc:
        raise click.UsageError(input_error_message(exc)) from None


def spec_default(field: str) -> str:
    """"  [default: …]" for a help text: the default of a :class:`SimulationSpec` field, the
    one default every verb that takes the field shares."""
    from ..spec import TARGET_S0, SimulationSpec

    if field == "S0":
        return f"  [default: {TARGET_S0} for family target]"
    return f"  [default: {SimulationSpec.model_fields[field].default}]"


def echo_json(obj: object) -> None:
    """Machine-readable output on stdout."""
    click.echo(json.dumps(obj, indent=2, allow_nan=False))


def fail(message: str) -> None:
    """Stop a verb with one line on stderr and exit code 2."""
    raise click.UsageError(message)
