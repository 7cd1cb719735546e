"""What every verb shares: turning input errors into one line on stderr and exit code 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import click
import pydantic


def input_error_message(exc: BaseException) -> str:
    """One line naming the field and the rule, from a pydantic or house validation error."""
    if isinstance(exc, pydantic.ValidationError):
        err = exc.errors()[0]
        message = err["msg"].removeprefix("Value error, ")
        where = ".".join(str(x) for x in err["loc"])
        return f"Invalid value for '{where}': {message}" if where else message
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def run_main(group: click.Group, argv: list[str] | None) -> int:
    try:
        group.main(args=argv, prog_name="modelcollapse", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        # One line, whatever click would add around it (usage text, hints).
        click.echo(f"Error: {exc.format_message()}", err=True)
        return exc.exit_code
    return 0


@contextmanager
def input_errors() -> Iterator[None]:
    """Inside this block, a validation error is the user's: one line, exit code 2.

    Wrap only the parsing of flags and files into specs, so that a bug elsewhere still shows
    its traceback instead of posing as bad input.
    """
    try:
        yield
    except (ValueError, TypeError, pydantic.ValidationError, OSError) as exc:
        raise click.UsageError(input_error_message(exc)) from None


def echo_json(obj: object) -> None:
    """Machine-readable output on stdout."""
    click.echo(json.dumps(obj, indent=2, allow_nan=False))


def fail(message: str) -> None:
    """Stop a verb with one line on stderr and exit code 2."""
    raise click.UsageError(message)
