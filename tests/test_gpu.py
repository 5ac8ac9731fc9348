"""CUDA-only checks, run by `tox -e gpu` (marker `gpu`)."""

import pytest
import torch

from compbench.measure import MeasureOptions, measure
from compbench.timing.wallclock import TimingPolicy

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def needs_cuda():
    if not torch.cuda.is_available():
        pytest.fail("tests marked gpu need CUDA: run them with tox -e gpu on a CUDA machine")


def test_cuda_records_use_the_allocator_peak_and_match_cpu_macs():
    options = dict(models=["distilhubert"], seconds=[1.0], timing=TimingPolicy(budget_s=2, min_runs=10))
    [gpu] = measure(MeasureOptions(device="cuda", **options))
    [cpu] = measure(MeasureOptions(device="cpu", latency=False, **options))
    assert gpu["device"] == "cuda" and gpu["environment"]["gpu"]
    assert gpu["macs"] == cpu["macs"] and gpu["params"] == cpu["params"]
    assert gpu["memory"]["method"] == "cuda-allocator"
    assert gpu["memory"]["activations_peak_bytes"] > 0
    assert gpu["latency_ms"]["runs"] >= 10


def test_cuda_sdpa_backends_are_counted():
    from compbench.counting.macs import MacCounterMode

    q = torch.randn(2, 4, 64, 64, device="cuda", dtype=torch.float16)
    mode = MacCounterMode()
    with torch.no_grad(), mode:
        torch.nn.functional.scaled_dot_product_attention(q, q, q)
    assert mode.result().total == 2 * (2 * 4 * 64 * 64 * 64)
