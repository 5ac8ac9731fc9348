"""CUDA-only checks, run by `tox -e gpu` (marker `gpu`)."""

import pytest
import torch

from compbench.compression.spec import parse_spec
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


def cuda_runtime_records(runtimes: list[str]) -> list[dict]:
    return measure(MeasureOptions(models=["distilhubert"], seconds=[1.0], device="cuda", memory=False,
                                  runtimes=runtimes, compress=[parse_spec("layer_drop=0.5")],
                                  timing=TimingPolicy(budget_s=2, min_runs=10)))


def test_compile_times_on_cuda_beside_its_own_dense_model():
    records = cuda_runtime_records(["eager", "compile"])
    assert [r["runtime"]["name"] for r in records] == ["eager", "eager", "compile", "compile"]
    assert all(r["device"] == "cuda" and r["runtime"]["output_difference"] <= r["runtime"]["tolerance"]
               for r in records)
    assert records[3]["baseline_latency_ms"]["samples"] == records[2]["latency_ms"]["samples"]


def test_onnxruntime_runs_the_cuda_provider():
    ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime has no CUDAExecutionProvider: install onnxruntime-gpu in place of onnxruntime")
    records = cuda_runtime_records(["eager", "onnxruntime"])
    assert [r["runtime"].get("provider") for r in records[2:]] == ["CUDAExecutionProvider"] * 2
    assert all(r["runtime"]["output_difference"] <= r["runtime"]["tolerance"] for r in records)
