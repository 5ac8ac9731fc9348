"""What a measurement ran on: library versions, CPU and GPU model, git commit."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import torch
import transformers

import compbench


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=5,
                          check=True).stdout.strip()


def git_commit() -> str | None:
    """The commit of the compbench checkout in use, with ``-dirty`` if it has local changes.

    None when compbench runs from an installed copy rather than a git checkout (the enclosing
    repository, if any, is then someone else's and its commit would be misleading)."""
    package = Path(compbench.__file__).resolve().parent
    try:
        top = Path(_git(package, "rev-parse", "--show-toplevel")).resolve()
        if top / "compbench" != package:
            return None
        commit = _git(top, "rev-parse", "HEAD")
        dirty = _git(top, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def environment() -> dict:
    return {
        "compbench": compbench.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "gpu": gpu_name(),
        "git_commit": git_commit(),
    }
