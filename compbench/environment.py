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


def memory_bytes() -> int | None:
    """This machine's physical memory; None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def cpu_flags() -> frozenset[str] | None:
    """The instruction-set flags of this machine's CPU as Linux lists them; None where it does not say."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def int8_products_saturate() -> bool:
    """Whether this CPU's int8 matrix kernels for unsigned-by-signed products can saturate: an x86 CPU
    without VNNI multiplies u8 by s8 with ``vpmaddubsw``, whose pairwise sums clip at int16 (ONNX
    Runtime's quantization guide); a CPU that does not list its flags is taken to be one of them."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    flags = cpu_flags()
    return flags is None or not flags & {"avx512_vnni", "avx_vnni", "avx_vnni_int8"}


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
    # --no-optional-locks: `git status` otherwise refreshes the index under .git/index.lock, and a git killed
    # there (this timeout, or a measurement killed with it) left the lock behind: the checkout's next commit
    # failed with "index.lock: File exists" (seen after the suite's kill -9 tests under load)
    return subprocess.run(["git", "--no-optional-locks", *args], cwd=root, capture_output=True, text=True,
                          timeout=5, check=True).stdout.strip()


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
