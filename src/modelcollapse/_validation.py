"""One place for input checks, one message format.

Every check names the argument, the rule and the value it got, in the form
"The 'n' parameter of simulate must be an int in the range [1, inf). Got 0 instead."
Wrong types raise ``TypeError``, wrong values ``ValueError``; the CLI turns either into one
line on stderr and exit code 2.
"""

from __future__ import annotations

import math
import numbers
import sys
from pathlib import Path

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: Largest deviation of sum(p) from 1 accepted before renormalising a probability vector.
SUM_TOLERANCE = 1e-6


class InputError(ValueError):
    """Bad input found past a verb's first checks (a damaged file it was given, a folder that
    holds something else): the CLI reports it in one line with exit code 2, like any other."""


#: Where a pydantic model's fields come from, as messages name it.
MODEL_WHERE = {"SimulationSpec": "simulate", "SweepSpec": "sweep", "FigureSpec": "reproduce",
               "NgramSpec": "ngram", "FunctionalSpec": "functional"}


def house_message(name: str, rule: str, got: object, where: str) -> str:
    """"The 'n' parameter of simulate must be an int. Got 'x' instead." """
    return f"The '{name}' parameter of {where} must {rule}. Got {_describe(got)} instead."


def _pydantic_rule(err: dict) -> str | None:
    ctx, kind = err.get("ctx") or {}, err["type"]
    bounds = {"greater_than_equal": ("≥", "ge"), "greater_than": (">", "gt"),
              "less_than_equal": ("≤", "le"), "less_than": ("<", "lt")}
    if kind in bounds:
        sign, key = bounds[kind]
        return f"be {sign} {ctx[key]}"
    if kind.startswith("int_"):
        return "be an int"
    if kind == "finite_number":
        return "be a finite number"
    if kind.startswith("float_"):
        return "be a number"
    if kind.startswith("string_"):
        return "be a string"
    if kind.startswith("bool_"):
        return "be true or false"
    if kind == "literal_error":
        return f"be one of {ctx['expected']}"
    return None


def validation_error_message(exc, where: str | None = None) -> str:
    """A pydantic ``ValidationError`` in the house format: its first error, one line, naming
    ``where`` (default: the verb the model belongs to)."""
    err = exc.errors()[0]
    where = where or MODEL_WHERE.get(exc.title, exc.title)
    name = ".".join(str(x) for x in err["loc"])
    if err["type"] == "value_error":  # a validator of ours
        message = str(err["ctx"]["error"]).splitlines()[0]
        if not name or message.startswith("The '"):  # already names its field
            return message
        joiner = " " if message.startswith("must") else ": "
        return f"The '{name}' parameter of {where}{joiner}{message}"
    if err["type"] == "extra_forbidden":
        return f"The '{name}' parameter is not one that {where} takes (check its spelling)."
    if err["type"] == "missing":
        return f"The '{name}' parameter of {where} is required."
    rule = _pydantic_rule(err)
    if rule is None or not name:
        return f"The '{name}' parameter of {where} is invalid: {err['msg']}."
    return house_message(name, rule, err.get("input"), where)


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_int(value: object, name: str, *, low: int | None = None, high: int | None = None,
              where: str = "simulate") -> int:
    """Return ``value`` as an int inside [low, high], or raise with the house message."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"The '{name}' parameter of {where} must be an int. "
                        f"Got {_describe(value)} instead.")
    value = int(value)
    lo = "-inf" if low is None else str(low)
    hi = "inf)" if high is None else f"{high}]"
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"The '{name}' parameter of {where} must be an int in the range "
                         f"[{lo}, {hi}. Got {value} instead.")
    return value


def check_float(value: object, name: str, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, where: str = "simulate") -> float:
    """Return ``value`` as a finite float inside the interval, or raise with the house message."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"The '{name}' parameter of {where} must be a float. "
                        f"Got {_describe(value)} instead.")
    value = float(value)
    bad = not math.isfinite(value)
    bad |= low is not None and (value < low or (low_open and value == low))
    bad |= high is not None and value > high
    if bad:
        left = "(" if low_open else "["
        lo = "-inf" if low is None else repr(low)
        hi = "inf)" if high is None else f"{high!r}]"
        raise ValueError(f"The '{name}' parameter of {where} must be a float in the range "
                         f"{left}{lo}, {hi}. Got {value!r} instead.")
    return value


def check_probabilities(p: object, name: str = "p0", *, where: str = "simulate") -> np.ndarray:
    """Validate a probability vector (or a stack of them, one per context) and return it as float64.

    Rows must be finite, non-negative and sum to 1 within ``SUM_TOLERANCE``; they are then
    renormalised so that samplers see sums of exactly 1 to rounding.
    """
    try:
        arr = np.array(p, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"The '{name}' parameter of {where} must be an array of probabilities. "
                        f"Got {_describe(p)} instead.") from None
    if arr.ndim not in (1, 2) or arr.shape[-1] < 1 or arr.size == 0:
        raise ValueError(f"The '{name}' parameter of {where} must be a non-empty vector (vocab,) "
                         f"or matrix (contexts, vocab). Got shape {arr.shape} instead.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"The '{name}' parameter of {where} must contain only finite numbers. "
                         f"Got NaN or inf instead.")
    if np.any(arr < 0):
        raise ValueError(f"The '{name}' parameter of {where} must be non-negative. "
                         f"Got a minimum of {float(arr.min())!r} instead.")
    sums = arr.sum(axis=-1)
    worst = float(np.max(np.abs(sums - 1.0)))
    if worst > SUM_TOLERANCE:
        flat = np.ravel(sums)
        bad = float(flat[np.argmax(np.abs(flat - 1))])
        raise ValueError(f"The '{name}' parameter of {where} must sum to 1 (tolerance "
                         f"{SUM_TOLERANCE:g}). Got a sum of {bad!r} instead.")
    return arr / sums[..., None] if arr.ndim == 2 else arr / sums


def check_choice(value: object, name: str, choices: list[str] | tuple[str, ...], *,
                 where: str = "simulate") -> str:
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"The '{name}' parameter of {where} must be one of "
                         f"{sorted(choices)}. Got {_describe(value)} instead.")
    return str(value)


def read_toml(path: str | Path, name: str) -> dict:
    """Parse the TOML file that parameter ``name`` names, or raise one clear ValueError."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"The '{name}' parameter must name an existing TOML file. "
                         f"Got {str(path)!r} instead.")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"The '{name}' parameter must name a UTF-8 TOML file; {str(path)!r} "
                         f"has a byte {exc.object[exc.start:exc.start + 1]!r} at offset "
                         f"{exc.start} that is not UTF-8.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"The '{name}' parameter must name a valid TOML file; {str(path)!r}: "
                         f"{exc}.") from None
    except OSError as exc:
        raise ValueError(f"The '{name}' parameter must name a readable TOML file; "
                         f"{str(path)!r}: {exc.strerror}.") from None
