"""Writing a directory all at once: a failure leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from compbench.errors import InvalidInputError


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
