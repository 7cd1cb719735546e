"""What the machine offers this process: cores, and how many threads the loop may use."""

from __future__ import annotations

import os

#: Environment variable that caps the loop's threads (sweep workers set it to 1).
THREADS_VARIABLE = "MODELCOLLAPSE_THREADS"


def available_cores() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def loop_threads(threads: int | None) -> int:
    """Threads for the loop's compiled routes: ``threads`` if given, else
    ``$MODELCOLLAPSE_THREADS`` if set, else every available core."""
    if threads is not None:
        return threads
    value = os.environ.get(THREADS_VARIABLE, "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise ValueError(f"The {THREADS_VARIABLE} environment variable must be a positive "
                             f"int. Got {value!r} instead.") from None
    return available_cores()
