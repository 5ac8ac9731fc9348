"""Writing a file or a directory all at once: a failure leaves the one before it, and nothing beside it."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from compbench.errors import InvalidInputError, ResultsWriteError


def refuse_non_empty(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InvalidInputError(f"--out {out_dir} already exists and is not empty; choose a new directory")
    if not out_dir.parent.is_dir():
        raise InvalidInputError(f"cannot write to {out_dir}: the folder {out_dir.parent} does not exist; "
                                f"create it first")


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _file_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return 0o666 & ~_umask()


def write_text_atomically(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` (written beside it, synced, renamed over it); a results file is written so
    under :func:`compbench.store.locked`."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a writer killed mid-write
        stale.unlink(missing_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise ResultsWriteError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _file_mode(path))  # mkstemp makes 0600; keep the file's mode, or the umask's
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise ResultsWriteError(f"cannot write {path}: {err.strerror or err}") from None
        raise


def atomic_directory(out_dir: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(staging)`` on a temporary directory beside ``out_dir``, then rename it into place.

    Refuses an existing non-empty ``out_dir`` and one whose parent folder is missing (it is not made); on
    any error the staging directory is removed."""
    out_dir = Path(out_dir)
    refuse_non_empty(out_dir)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        write(staging)
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the folder a user named is not
        if out_dir.exists():
            out_dir.rmdir()
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir
