"""Where a command writes, checked before it does any work: a results file or a folder whose parent
exists and can be written in. compbench creates the file or folder a user names, never the folders
above it (as ``cp`` and ``tee`` do not): a missing parent is an error that names it.

Writability is checked by making (and removing) a temporary file where the output will go, which
catches what ``os.access`` misses (read-only mounts, /proc, a root user)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from compbench.errors import ResultsWriteError


def _parent(path: Path, what: str) -> Path:
    parent = path.parent
    if not parent.exists():
        raise ResultsWriteError(f"cannot write {what} to {path}: the folder {parent} does not exist; create it first")
    if not parent.is_dir():
        raise ResultsWriteError(f"cannot write {what} to {path}: {parent} is not a folder")
    return parent


def _probe(folder: Path, path: Path, what: str) -> None:
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{path.name[:64]}.", suffix=".probe")
    except OSError as err:
        raise ResultsWriteError(f"cannot write {what} to {path}: {err.strerror or err} in {folder}") from None
    os.close(fd)
    os.unlink(probe)


def _named(path: str | Path, what: str) -> Path:
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise ResultsWriteError(f"cannot write {what} to {str(path)!r}: name a file or folder")
    if len(path.name.encode()) > 200:  # the filesystem's limit is 255, and temporary names are made beside it
        raise ResultsWriteError(f"cannot write {what} to {str(path)[:60]}...: its name is "
                                f"{len(path.name.encode())} bytes long, more than 200")
    return path


def check_output_file(path: str | Path, what: str = "results") -> Path:
    """``path`` can be created, or appended to, in a folder that exists; writes nothing."""
    path = _named(path, what)
    if path.is_dir():
        raise ResultsWriteError(f"cannot write {what} to {path}: it is a directory")
    _probe(_parent(path, what), path, what)
    return path


def check_output_folder(path: str | Path, what: str, empty: bool = True) -> Path:
    """``path`` is a folder that can be made (or, unless ``empty``, one that exists) in a folder that exists and
    can be written in (a folder is written beside it, then renamed into place); writes nothing."""
    path = _named(path, what)
    if path.exists() and not path.is_dir():
        raise ResultsWriteError(f"cannot write {what} to {path}: it is a file, not a folder")
    if empty and path.is_dir() and any(path.iterdir()):
        raise ResultsWriteError(f"--out {path} already exists and is not empty; choose a new directory")
    _probe(_parent(path, what), path, what)
    if path.is_dir():
        _probe(path, path, what)
    return path
