"""Writing files so that a reader never sees half of one, with the permissions the umask gives.

Everything the toolkit writes goes through a temporary name beside its target and a rename,
so a killed process leaves either the old file or the new one. ``tempfile`` creates its files
and folders with mode 0600/0700 whatever the umask; a collaborator on a shared filesystem
could then not read a result, so each finished file or folder gets the mode an ordinary
``open()`` or ``mkdir()`` would have given it. Temporary names all start with ``.<target>.``
and end in :data:`TEMP_SUFFIX`, so the next run in a folder can find and remove what a killed
save left behind (:func:`remove_stale_temps`).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = [
    "TEMP_SUFFIX",
    "atomic_write",
    "atomic_write_text",
    "check_output_folder",
    "remove_stale_temps",
    "replace_dir",
    "temp_dir",
]

#: Every temporary file or folder ends so; the prefix is "." and the target's name.
TEMP_SUFFIX = ".partial"
#: A temporary older than this is a leftover of a killed save, not a save in progress in
#: another process (sweep workers save points side by side in one folder).
STALE_AFTER_S = 60.0


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _give_umask_mode(path: Path) -> None:
    """The mode ``path`` would have had from open()/mkdir(): 0666 or 0777 less the umask,
    for ``path`` and, for a folder, everything in it."""
    mask = _umask()
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            os.chmod(root, 0o777 & ~mask)
            for name in files:
                os.chmod(os.path.join(root, name), 0o666 & ~mask)
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o777 & ~mask)
    else:
        os.chmod(path, 0o666 & ~mask)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None], *,
                 fsync: bool = False) -> Path:
    """Call ``write(fh)`` on a temporary file next to ``path``, then rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        _give_umask_mode(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


@contextmanager
def temp_dir(path: str | Path) -> Iterator[Path]:
    """A temporary folder beside ``path`` (removed on the way out, whatever happens): build a
    folder or a file in it, then move it onto ``path`` with :func:`replace_dir` or
    :func:`os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_dir(src: Path, dst: Path) -> None:
    """Move folder (or file) ``src`` onto ``dst``, replacing what was there only once ``src``
    is whole; ``src`` gets the umask's permissions first."""
    _give_umask_mode(src)
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old{TEMP_SUFFIX}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
        os.replace(src, dst)
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    else:
        os.replace(src, dst)


def remove_stale_temps(folder: str | Path, *, older_than_s: float = STALE_AFTER_S) -> int:
    """Remove the temporaries a killed save left anywhere under ``folder``; how many.

    Only names this module makes (``.<name>.…`` ending in :data:`TEMP_SUFFIX`) older than
    ``older_than_s`` are touched, so a save running now in another process is left alone.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    now, removed = time.time(), 0
    for tmp in list(folder.rglob(f".*{TEMP_SUFFIX}")):
        try:
            if now - tmp.lstat().st_mtime < older_than_s:
                continue
            if stat.S_ISDIR(tmp.lstat().st_mode):
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            removed += 1
        except FileNotFoundError:  # removed meanwhile with its parent
            continue
    return removed


def check_output_folder(path: str | Path, name: str = "out") -> Path:
    """``path`` as a folder this process can create files in, or one ValueError naming
    ``name``: not a file, and writable (itself, or its nearest existing parent that would
    hold it). Call before any work, so that a long run cannot fail at its last step."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"The '{name}' parameter must be a folder; {str(path)!r} is a file.")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"The '{name}' parameter must be a folder; {str(probe)!r} is a file.")
    try:  # a file made and removed: the answer of the filesystem itself (read-only mounts)
        fd, tmp = tempfile.mkstemp(prefix=".write-probe.", suffix=TEMP_SUFFIX, dir=probe)
    except OSError as exc:
        raise ValueError(f"The '{name}' parameter must be a folder this user can write; "
                         f"{str(probe)!r} is not writable ({exc.strerror}).") from None
    os.close(fd)
    os.unlink(tmp)
    return path
