"""--baseline: other models timed in lock-step with a baseline model, each compared with it as a variant is with
its dense model; variants still compared with their own dense model; the report draws them beside the baseline."""

import json

import pytest
from conftest import without_progress
from tiny_models import build_tiny

from compbench.cli.main import main
from compbench.errors import InvalidInputError
from compbench.measure import MeasureOptions, measure
from compbench.report.landscape import ANOTHER_MODEL, landscape_frame
from compbench.timing.stats import paired_ratio_ci
from compbench.timing.wallclock import TimingPolicy

QUICK = TimingPolicy(budget_s=60.0, min_runs=6, max_runs=6, warmup_runs=1, warmup_s=0.0)


@pytest.fixture(scope="module")
def two_speech_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("baseline")
    build_tiny("hubert").save_pretrained(root / "teacher")
    build_tiny("wav2vec2", seed=1).save_pretrained(root / "student")
    return str(root / "teacher"), str(root / "student")


def test_every_other_model_is_compared_with_the_baseline_and_each_variant_with_its_own_dense_model(two_speech_models):
    teacher, student = two_speech_models
    records = measure(MeasureOptions(models=[student], baseline=teacher, compress=["head_pruning=0.5"],
                                     seconds=[0.25], threads=1, timing=QUICK, memory=False))
    assert [(r["model"], bool(r["compression"])) for r in records] == [  # the baseline measured first
        (teacher, False), (teacher, True), (student, False), (student, True)]
    base, base_variant, other, other_variant = records
    assert all(r["timing"]["interleaved_with"] == 4 for r in records)  # one set of lock-step rounds
    assert "baseline" not in base and "speedup" not in base
    assert other["baseline"] == teacher
    assert other["predicted_speedup"] == base["macs"] / other["macs"]
    assert other["speedup"] == base["latency_ms"]["median"] / other["latency_ms"]["median"]
    assert other["speedup_ci95"] == list(paired_ratio_ci(base["latency_ms"]["samples"],
                                                         other["latency_ms"]["samples"]))
    assert other["baseline_latency_ms"]["samples"] == base["latency_ms"]["samples"]
    # a variant of the other model is its own dense model's, not the baseline's
    assert "baseline" not in other_variant
    assert other_variant["speedup"] == other["latency_ms"]["median"] / other_variant["latency_ms"]["median"]
    assert other_variant["predicted_speedup"] == other["macs"] / other_variant["macs"]
    assert base_variant["speedup"] == base["latency_ms"]["median"] / base_variant["latency_ms"]["median"]

    frame = landscape_frame(records)  # the other model joins the baseline's table and charts
    assert frame["group"].nunique() == 2
    row = frame[frame["variant"] == student].iloc[0]
    assert row["compressor"] == ANOTHER_MODEL and not row["is_dense"]
    assert row["group"] == frame[frame["is_dense"] & (frame["variant"] == "dense")]["group"].iloc[0]
    assert row["speedup"] == other["speedup"]


def test_without_latency_the_records_still_name_the_baseline_and_the_predicted_speedup(two_speech_models):
    teacher, student = two_speech_models
    records = measure(MeasureOptions(models=[teacher, student], baseline=teacher, seconds=[0.25, 0.5],
                                     latency=False))
    assert [(r["model"], r["input"]["seconds"]) for r in records] == [
        (teacher, 0.25), (teacher, 0.5), (student, 0.25), (student, 0.5)]  # named twice, measured once
    for size, other in enumerate(records[2:]):
        assert other["baseline"] == teacher and "speedup" not in other
        assert other["predicted_speedup"] == records[size]["macs"] / other["macs"]  # against the same size


def test_a_baseline_needs_another_model_of_its_modality(two_speech_models):
    teacher, _ = two_speech_models
    with pytest.raises(InvalidInputError, match="besides it"):
        measure(MeasureOptions(models=[teacher], baseline=teacher, latency=False))
    with pytest.raises(InvalidInputError, match="hubert-base is a speech model and minilm-l6 a text model"):
        measure(MeasureOptions(models=["minilm-l6"], baseline="hubert-base", latency=False))


def test_the_cli_takes_a_baseline_and_refuses_a_bad_one(two_speech_models, tmp_path, capsys):
    teacher, student = two_speech_models
    out = tmp_path / "runs.jsonl"
    assert main(["measure", "--model", student, "--baseline", teacher, "--seconds", "0.25", "--no-latency",
                 "--out", str(out)]) == 0
    assert "against" in capsys.readouterr().out
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r.get("baseline") for r in records] == [None, teacher]
    assert main(["measure", "--model", "minilm-l6", "--baseline", teacher, "--no-latency", "--out",
                 str(tmp_path / "no.jsonl")]) == 2
    err = without_progress(capsys.readouterr().err)
    assert err.startswith("compbench: error: --baseline") and err.count("\n") == 1
    assert not (tmp_path / "no.jsonl").exists()
