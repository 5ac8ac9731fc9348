"""This machine's fp32 GEMM throughput, the yardstick for achieved FLOP/s."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from compbench.timing.device import synchronize


@dataclass
class GemmPeak:
    flops_per_s: float  # the best rate over the sizes and repeats tried
    size: int  # the square matrix size that reached it
    dtype: str
    threads: int | None
    method: str = "fastest of repeated square fp32 matmuls over several sizes"

    def to_dict(self) -> dict:
        return asdict(self)


def measure_gemm_peak(device: torch.device, sizes: tuple[int, ...] = (1024, 2048),
                      repeats: int = 5, threads: int | None = None) -> GemmPeak:
    """The machine's fp32 matmul peak (FLOP/s, 2 per MAC): the fastest run at the best size.

    The fastest run, not the median, so that a noisy machine does not lower the yardstick
    that achieved FLOP/s are compared with. Callers measure it before and after timing and keep
    the better (10 runs per size in all); 1536 never beat both of these sizes here and cost 40 %
    of the time, which every measurement (and every sweep job) pays twice."""
    best = (0.0, sizes[0])
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for n in sizes:
            a = torch.randn(n, n, generator=generator).to(device)
            b = torch.randn(n, n, generator=generator).to(device)
            for _ in range(2):
                a @ b
            times = []
            for _ in range(repeats):
                synchronize(device)
                start = time.perf_counter()
                a @ b
                synchronize(device)
                times.append(time.perf_counter() - start)
            rate = 2 * n**3 / min(times)
            best = max(best, (rate, n))
    return GemmPeak(flops_per_s=best[0], size=best[1], dtype="float32",
                    threads=threads if device.type == "cpu" else None)
