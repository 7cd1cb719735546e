"""Writing files so that a reader never sees half of one, with the permissions the umask gives.

Everything the toolkit writes goes through a temporary name beside its target and a rename,
so a killed process leaves either the old file or the new one. ``tempfile`` creates its files
and folders with mode 0600/0700 whatever the umask; a collaborator on a shared filesystem
could then not read a result, so each finished file or folder gets the mode an ordinary
``open()`` or ``mkdir()`` would have given it. Temporary names all start with ``.<target>.``
and end in :data:`TEMP_SUFFIX`, so the next run in a folder can find and remove what a killed
save left behind (:func:`remove_stale_temps`). Between the two, a temporary's name carries its
writer (a tag of the host and the process id): a temporary whose writer is known to be gone is
a leftover at once, and every save removes the leftovers of earlier saves of the same target.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import os
import re
import shutil
import socket
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
    "make_temp_dir",
    "remove_stale_temps",
    "replace_dir",
    "temp_dir",
]

#: Every temporary file or folder ends so; the prefix is "." and the target's name.
TEMP_SUFFIX = ".partial"
#: A temporary older than this whose writer cannot be asked (a process of another host, on a
#: shared filesystem) is a leftover of a killed save, not a save in progress (sweep workers
#: save points side by side in one folder).
STALE_AFTER_S = 60.0
#: The writer's tag inside a temporary's name: ``.<target>.<host>-<pid>.<random>.partial``.
_WRITER = re.compile(r"\.(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)\.[A-Za-z0-9_]+"
                     + re.escape(TEMP_SUFFIX) + "$")


@functools.lru_cache(maxsize=1)
def _host_tag() -> str:
    # A hash, not the name: host names may hold characters a file name should not.
    return hashlib.sha1(socket.gethostname().encode("utf-8")).hexdigest()[:8]


def _temp_prefix(path: Path) -> str:
    """``.<target>.<host>-<pid>.``: the start of every temporary name for ``path``."""
    return f".{path.name}.{_host_tag()}-{os.getpid()}."


def _process_gone(pid: int, last_written: float) -> bool:
    """Whether process ``pid`` of this host, which last wrote a temporary at
    ``last_written`` (epoch seconds), has ended: no such process, a zombie (a killed worker
    whose parent died may wait unreaped), or one started later (the id was reused)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):  # no /proc: alive, as far as we know
        return False
    # The start time is rounded to clock ticks and the boot time to seconds: one second's slack.
    return fields[0] == "Z" or started > last_written + 1.0


def _writer_gone(tmp: Path) -> bool | None:
    """Whether the process of this host that writes ``tmp`` has ended; None when that cannot
    be told (another host's temporary on a shared filesystem, or a name without a writer),
    which is then judged by its age (:data:`STALE_AFTER_S`)."""
    match = _WRITER.search(tmp.name)
    if match is None or match["host"] != _host_tag():
        return None
    pid = int(match["pid"])
    return pid != os.getpid() and _process_gone(pid, tmp.lstat().st_mtime)


def _remove(tmp: Path) -> None:
    if stat.S_ISDIR(tmp.lstat().st_mode):
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)


def _remove_leftovers_of(path: Path) -> None:
    """Remove the temporaries of earlier saves of ``path`` whose writers have ended."""
    pattern = f".{glob.escape(path.name)}.*{TEMP_SUFFIX}"
    for tmp in path.parent.glob(pattern):
        try:
            if _writer_gone(tmp) is True:
                _remove(tmp)
        except FileNotFoundError:  # removed meanwhile
            continue


def _umask() -> int:
    """The process's umask. Linux states it in /proc; elsewhere os.umask can only read it by
    setting it (set straight back: a file another thread makes in between gets 0o022)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
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
    _remove_leftovers_of(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
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
    tmp = make_temp_dir(path)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def make_temp_dir(path: str | Path) -> Path:
    """A new temporary folder beside ``path``, named so that :func:`remove_stale_temps`
    finds it; the caller removes it (:func:`temp_dir` does so by itself). Leftovers of
    earlier saves of ``path`` whose writers have ended are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers_of(path)
    return Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=TEMP_SUFFIX,
                                 dir=path.parent))


def replace_dir(src: Path, dst: Path) -> None:
    """Move folder (or file) ``src`` onto ``dst``, replacing what was there only once ``src``
    is whole; ``src`` gets the umask's permissions first. A file replaces ``dst`` in one
    rename; a folder cannot (a rename does not replace a non-empty folder), so the old one is
    moved aside first: a kill in between leaves no ``dst``, which a rerun recomputes."""
    _give_umask_mode(src)
    if not src.is_dir() and not dst.is_dir():
        os.replace(src, dst)
    elif dst.exists():
        old = dst.with_name(f"{_temp_prefix(dst)}old{TEMP_SUFFIX}")
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

    Only names this module makes (``.<name>.…`` ending in :data:`TEMP_SUFFIX`) are touched:
    those whose writer, a process of this host, has ended, and those whose writer cannot be
    told (another host's) once older than ``older_than_s``. A save running now in another
    process of this host is left alone however long it takes.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    now, removed = time.time(), 0
    for tmp in list(folder.rglob(f".*{TEMP_SUFFIX}")):
        try:
            gone = _writer_gone(tmp)
            if gone is False or (gone is None and now - tmp.lstat().st_mtime < older_than_s):
                continue
            _remove(tmp)
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
