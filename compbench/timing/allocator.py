"""Steady-state memory allocation for CPU timing.

glibc's malloc serves large blocks (a speech model's activations are tens of MB) with
``mmap`` and returns them on ``free``, so every forward pass page-faults its activations in
again. That adds ~25 % to a dense HuBERT-base forward on 2 cores and triples its run-to-run
spread. A long-running inference server instead reuses warm memory; PyTorch's CPU
performance guide gets there with jemalloc or tcmalloc. compbench asks glibc to keep freed
memory (no mmap for large blocks, no trimming), which is process-wide, and records that it did.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_applied: str | None = None


def steady_allocator() -> str:
    """Switch glibc malloc to reuse freed memory; return a description of the allocator state."""
    global _applied
    if _applied is not None:
        return _applied
    libc_name, _ = platform.libc_ver()
    if platform.system() != "Linux" or libc_name != "glibc":
        _applied = "system default (not glibc; unchanged)"
        return _applied
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2**30) == 1
    _applied = "glibc: mmap off, trim threshold 1 GiB" if ok else "glibc default (mallopt refused)"
    return _applied


def allocator_state() -> str:
    """What :func:`steady_allocator` did in this process, or the default if not called."""
    return _applied or "system default"
