"""Device selection, synchronisation and thread settings for timing."""

from __future__ import annotations

import contextlib
import os

import torch

from compbench.environment import cpu_cores
from compbench.errors import DeviceUnavailableError, InvalidInputError

DEVICES = ("cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """The torch device for ``name``; a clear error when CUDA is asked for but absent."""
    if name not in DEVICES:
        raise InvalidInputError(f"--device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            "--device cuda was asked for, but CUDA is not available on this machine "
            f"(torch {torch.__version__}, built with CUDA: {torch.version.cuda or 'no'})")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def default_threads() -> int:
    """``OMP_NUM_THREADS`` where it is set, as for PyTorch's own default; else every core this process may run
    on. (Several processes sharing the cores, each with every core's worth of threads, ran 3 to 10 times slower
    here: their waiting threads spin.)"""
    setting = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not setting:
        return cpu_cores()
    if not setting.isdigit() or int(setting) < 1:
        raise InvalidInputError(f"OMP_NUM_THREADS={setting!r} is not a thread count: set a whole number >= 1, "
                                "or unset it to use every core")
    return int(setting)


@contextlib.contextmanager
def cpu_threads(threads: int):
    """Run the block with ``threads`` intra-op threads, restoring the previous setting."""
    if threads < 1:
        raise InvalidInputError(f"--threads must be >= 1, got {threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
