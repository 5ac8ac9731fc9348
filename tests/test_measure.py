"""measure(): records for every model and size, latency interleaved, bad input refused early."""

import pytest
import torch

from compbench.environment import cpu_cores
from compbench.errors import DeviceUnavailableError, InvalidInputError, UnknownNameError
from compbench.measure import MeasureOptions, measure
from compbench.measure import latency as latency_stage
from compbench.record import validate_record
from compbench.timing.stats import paired_ratio_ci
from compbench.timing.wallclock import TimingPolicy

# exactly 6 lock-step rounds (the fewest with an interval), however fast or loaded the machine is
QUICK = TimingPolicy(budget_s=60.0, min_runs=6, max_runs=6, warmup_runs=1, warmup_s=0.0)


def test_counts_only_one_record_per_model_and_size():
    records = measure(MeasureOptions(models=["distilhubert", "minilm-l6"], seconds=[0.5, 1.0],
                                     tokens=[16], latency=False))
    assert [(r["model"], r["input"].get("seconds", r["input"].get("tokens"))) for r in records] == [
        ("distilhubert", 0.5), ("distilhubert", 1.0), ("minilm-l6", 16)]
    assert all(validate_record(r) == [] for r in records)
    assert all("latency_ms" not in r and "memory" not in r for r in records)
    assert records[0]["macs"] < records[1]["macs"]  # cost grows with input length
    assert len({r["run_id"] for r in records}) == 1
    assert records[0]["compression"] is None and records[0]["weights"] == "random"


def test_latency_records_are_complete(device, monkeypatch):
    asked, small = [], latency_stage.measure_gemm_peak  # conftest's: the peak on small matrices

    def recorded(where, **settings):
        asked.append(settings)
        return small(where, **settings)

    monkeypatch.setattr(latency_stage, "measure_gemm_peak", recorded)
    records = measure(MeasureOptions(models=["distilhubert", "minilm-l6"], seconds=[0.25], tokens=[8],
                                     device=device, threads=1, timing=QUICK))
    assert asked == [{"threads": 1}, {"threads": 1}]  # before and after timing, at the default sizes
    for record in records:
        latency = record["latency_ms"]
        assert latency["runs"] == len(latency["samples"]) == 6
        assert latency["ci95_low"] <= latency["median"] <= latency["ci95_high"]
        assert record["threads"] == 1 and record["device"] == device
        assert record["timing"]["interleaved_with"] == 2
        assert record["achieved_flops_per_s"] == pytest.approx(2 * record["macs"] / (latency["median"] / 1e3))
        assert record["fraction_of_peak"] == pytest.approx(
            record["achieved_flops_per_s"] / record["gemm_peak"]["flops_per_s"])
        assert record["gemm_peak"]["size"] == 256 and record["gemm_peak"]["dtype"] == "float32"
        assert record["memory"]["peak_bytes"] > record["memory"]["weights_bytes"] > 0
        if not latency["converged"]:
            assert "ran out" in record["warnings"][0]
    speech, text = records
    assert speech["rtf"] == {"median": speech["latency_ms"]["median"] / 1e3 / 0.25, "audio_seconds": 0.25,
                             "ci95_low": speech["latency_ms"]["ci95_low"] / 1e3 / 0.25,
                             "ci95_high": speech["latency_ms"]["ci95_high"] / 1e3 / 0.25}
    assert "rtf" not in text  # seconds of compute per second of audio: speech only
    assert records[0]["environment"]["torch"] == torch.__version__


def test_the_real_time_factor_is_compute_over_audio_for_a_batch_and_per_example_and_none_for_text():
    from compbench.record import real_time_factor

    timed = {"median": 300.0, "ci95_low": 280.0, "ci95_high": 330.0, "mean": 310.0}
    batch = {"modality": "speech", "latency_ms": timed, "input": {"kind": "audio", "seconds": 2.0, "batch": 3}}
    assert real_time_factor(batch) == pytest.approx({"median": 0.05, "audio_seconds": 6.0, "ci95_low": 280 / 6e3,
                                                     "ci95_high": 330 / 6e3})
    short = dict(batch, latency_ms=dict(timed, ci95_low=None, ci95_high=None))  # too few runs for an interval
    assert real_time_factor(short)["ci95_low"] is None
    examples = {"modality": "speech", "latency_ms": timed,
                "input": {"kind": "examples", "examples": 30, "mean_seconds": 0.62, "batch": 1}}
    assert real_time_factor(examples) == pytest.approx({"mean": 0.5, "audio_seconds": 0.62})  # compute / audio
    assert real_time_factor({"modality": "text", "latency_ms": timed, "input": {"kind": "text", "tokens": 8}}) is None
    assert real_time_factor(dict(batch, latency_ms=None)) is None  # not timed


def test_thread_setting_is_restored():
    before = torch.get_num_threads()
    measured = 2 if before == 1 else 1  # a setting that differs from the process's
    records = measure(MeasureOptions(models=["minilm-l6"], tokens=[4], threads=measured, timing=QUICK))
    assert records[0]["threads"] == measured and torch.get_num_threads() == before


def test_the_default_thread_count_is_omp_num_threads_where_set(monkeypatch):
    options = MeasureOptions(models=["minilm-l6"], tokens=[4], latency=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert measure(options)[0]["threads"] == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert measure(options)[0]["threads"] == cpu_cores()
    for setting in ("0", "two", "-1"):
        monkeypatch.setenv("OMP_NUM_THREADS", setting)
        with pytest.raises(InvalidInputError, match=f"OMP_NUM_THREADS='{setting}' is not a thread count"):
            measure(options)


@pytest.mark.parametrize("options,error,message", [
    (MeasureOptions(models=["nope"]), UnknownNameError, "unknown model 'nope'"),
    (MeasureOptions(models=[]), InvalidInputError, "at least one --model"),
    (MeasureOptions(models=["minilm-l6"], tokens=[10_000]), InvalidInputError, "from 1 to 512"),
    (MeasureOptions(models=["distilhubert"], seconds=[]), InvalidInputError, "give at least one --seconds"),
    (MeasureOptions(models=["distilhubert"], batch=0), InvalidInputError, "--batch"),
    (MeasureOptions(models=["distilhubert"], threads=0, latency=False), InvalidInputError, "--threads"),
])
def test_bad_input_is_refused(options, error, message):
    with pytest.raises(error, match=message):
        measure(options)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_cuda():
    with pytest.raises(DeviceUnavailableError, match="CUDA is not available"):
        measure(MeasureOptions(models=["distilhubert"], device="cuda"))


def test_variants_are_measured_beside_the_dense_model():
    from compbench.compression.spec import parse_spec

    records = measure(MeasureOptions(models=["distilhubert"], seconds=[0.25], threads=1, timing=QUICK,
                                     compress=[parse_spec("head_pruning=0.5"), parse_spec("layer_drop=0.5")]))
    dense, heads, layers = records
    assert dense["compression"] is None and "speedup" not in dense
    assert heads["compression"] == [{"name": "head_pruning", "amount": 0.5,
                                     "options": {"importance": "magnitude", "batches": 4, "batch_size": 8,
                                                 "align": None, "scope": "global",
                                                 "normalize": True}}]
    assert heads["manifest"][0]["removed"] == 12 and layers["manifest"][0]["removed"] == 1
    for variant in (heads, layers):
        assert variant["macs"] < dense["macs"]
        assert variant["predicted_speedup"] == dense["macs"] / variant["macs"]
        assert variant["speedup"] == pytest.approx(dense["latency_ms"]["median"] / variant["latency_ms"]["median"])
        assert variant["timing"]["interleaved_with"] == 3
        # lock-step rounds: every round is a (dense, variant) pair, and the speedup's interval comes from them
        assert variant["latency_ms"]["runs"] == dense["latency_ms"]["runs"]
        assert variant["speedup_ci95"] == list(paired_ratio_ci(dense["latency_ms"]["samples"],
                                                               variant["latency_ms"]["samples"]))
        assert variant["baseline_latency_ms"] == {k: dense["latency_ms"][k]
                                                  for k in ("median", "ci95_low", "ci95_high", "runs", "samples")}


def test_a_gemm_rate_that_collapses_during_the_timing_is_a_warning_that_suggests_fewer_threads(monkeypatch):
    from compbench.timing.peak import GemmPeak

    def peak(gflops, threads=2):
        return GemmPeak(gflops * 1e9, 1024, "float32", threads)

    assert latency_stage.gemm_rate_warning(peak(100), peak(60)) is None  # within a half: machine noise
    assert latency_stage.gemm_rate_warning(peak(100), peak(1)) == (
        "this machine's fp32 GEMM rate was 100.0 GFLOP/s before the timing and 1.0 after, with 2 threads: other "
        "processes were using the cores, and the latencies are not those of an idle machine. Rerun when the "
        "machine is idle; or time with fewer threads (--threads 1)")
    assert latency_stage.gemm_rate_warning(peak(2, 1), peak(100, 1)).endswith("Rerun when the machine is idle")
    rates = iter([100.0, 1.0])  # before the timing, after it
    monkeypatch.setattr(latency_stage, "measure_gemm_peak", lambda device, threads=None: peak(next(rates), threads))
    records = measure(MeasureOptions(models=["minilm-l6"], tokens=[8], threads=1, memory=False,
                                     compress=["layer_drop=0.5"], timing=TimingPolicy(budget_s=0.2, max_runs=6)))
    for record in records:
        assert any(w.startswith("this machine's fp32 GEMM rate was 100.0 GFLOP/s") for w in record["warnings"])
        assert record["gemm_peak"]["flops_per_s"] == 100e9  # the best of before and after
