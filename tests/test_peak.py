"""The fp32 GEMM peak: the fastest of repeated square matmuls over the sizes tried."""

import torch

from compbench.timing.peak import measure_gemm_peak


def test_the_peak_is_the_fastest_rate_at_one_of_the_sizes_tried(monkeypatch):
    ticks = iter(range(10_000))
    monkeypatch.setattr("compbench.timing.peak.time.perf_counter", lambda: next(ticks) * 0.5)  # every run: 0.5 s
    peak = measure_gemm_peak(torch.device("cpu"), sizes=(8, 16), repeats=3, threads=1)
    assert peak.size == 16 and peak.flops_per_s == 2 * 16**3 / 0.5  # the larger size does more work per run
    assert (peak.dtype, peak.threads) == ("float32", 1) and peak.to_dict()["size"] == 16
    assert measure_gemm_peak(torch.device("cpu"), sizes=(32,), repeats=1).flops_per_s > 0  # the real clock
