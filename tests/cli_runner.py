"""Run the CLI in-process and say what it did: exit code, stdout, stderr, files it left."""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from modelcollapse.cli import main


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    #: paths (relative to the folder the command ran in) that it created or changed
    written: list[str]

    @property
    def refused_in_one_line(self) -> bool:
        lines = self.err.strip().splitlines()
        return (self.code == 2 and len(lines) == 1 and lines[0].startswith("Error: ")
                and "Traceback" not in self.err)


def run_in(folder: Path, *args: str) -> Outcome:
    """``modelcollapse ARGS`` with ``folder`` as the working directory."""
    before_files = _listing(folder)
    stdout, stderr = io.StringIO(), io.StringIO()
    before = Path.cwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(list(args))
    finally:
        os.chdir(before)
    after_files = _listing(folder)
    written = sorted(path for path, stamp in after_files.items()
                     if before_files.get(path) != stamp)
    return Outcome(code, stdout.getvalue(), stderr.getvalue(), written)


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder`` with its size and modification time."""
    out = {}
    for path in folder.rglob("*"):
        stat = path.stat()
        out[str(path.relative_to(folder))] = (stat.st_size, stat.st_mtime_ns)
    return out
