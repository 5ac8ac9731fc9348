"""What a measurement ran on: library versions, CPU and GPU model, git commit."""

from __future__ import annotations

import os
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


def cpu_cores() -> int:
    """Cores this process may run on (its affinity), as a thread count is chosen from them."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def torch_build() -> str:
    """What the installed torch was built for: ``cpu``, ``cuda 12.8``, ``rocm 6.4``..."""
    if torch.version.cuda:
        return f"cuda {torch.version.cuda}"
    if getattr(torch.version, "hip", None):
        return f"rocm {torch.version.hip}"
    return "cpu"


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
        "cores": cpu_cores(),
        "gpu": gpu_name(),
        "torch_build": torch_build(),
        "hostname": platform.node(),
        "git_commit": git_commit(),
    }
