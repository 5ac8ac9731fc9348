"""Speech models trained here (compbench finetune on audio) and data-driven compression from the CLI."""

import json

import pytest
import torch
import yaml
from conftest import QUICK
from test_task_quality import AUDIO_TASK
from tiny_models import build_tiny

from compbench.cli.compress import compress_model
from compbench.cli.main import main
from compbench.compression.spec import parse_spec
from compbench.errors import InvalidInputError
from compbench.measure import MeasureOptions, measure
from compbench.models import load_model
from compbench.quality.classify import speech_accuracy
from compbench.quality.finetune import FinetuneOptions, finetune, resolved_options
from compbench.tasks import find_task, load_split


def test_finetune_trains_a_speech_classifier_from_random_init_and_measure_reports_its_head(tmp_path, tones):
    task_file, data_root, tiny = tones
    report = finetune(tiny, task_file, tmp_path / "ft", FinetuneOptions(**QUICK, data_root=data_root))
    assert report["initialisation"] == "random" and report["modality"] == "speech"
    assert [h["epoch"] for h in report["history"]] == [1, 2] and report["dev_examples"] == 4
    assert report["dev_accuracy"] == max(h["dev_accuracy"] for h in report["history"])
    assert report["options"]["max_seconds"] == 0.6 and report["options"]["pooling"] == "weighted"
    assert report["options"]["label_smoothing"] == 0.1
    loaded = load_model(str(tmp_path / "ft"))
    assert type(loaded.model).__name__ == "HubertForSequenceClassification"
    assert loaded.weights == "trained-here:tones"
    assert loaded.source == f"compbench finetune: {tiny} from random init on tones v1"
    [record] = measure(MeasureOptions(models=[str(tmp_path / "ft")], seconds=[0.25], latency=False,
                                      task=task_file, data_root=data_root))
    assert record["weights"] == "trained-here:tones" and record["model_source"].startswith("compbench finetune")
    quality = record["quality"]
    assert quality["protocol"] == "finetune" and quality["examples"] == {"test": 4}
    assert quality["value"] == speech_accuracy(loaded.model, load_split(find_task(task_file), "test", data_root))
    assert record["params_by_component"]["head"] > 0


def test_speech_finetune_is_seeded(tmp_path, tones):
    task_file, data_root, tiny = tones
    states = []
    for run in ("a", "b"):
        finetune(tiny, task_file, tmp_path / run, FinetuneOptions(**QUICK, data_root=data_root))
        states.append(load_model(str(tmp_path / run)).model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_weighted_pooling_and_augmentation_are_saved_with_the_model(tmp_path, tones):
    task_file, data_root, tiny = tones
    report = finetune(tiny, task_file, tmp_path / "ft", FinetuneOptions(
        **{**QUICK, "epochs": 1}, pooling="weighted", time_mask_frames=3, noise=0.2, data_root=data_root))
    model = load_model(str(tmp_path / "ft")).model
    assert model.config.use_weighted_layer_sum and model.layer_weights.shape == (3,)
    assert (model.config.mask_time_length, model.config.mask_time_prob, model.config.layerdrop) == (3, 0.05, 0.0)
    assert report["options"]["noise"] == 0.2 and report["options"]["time_mask_frames"] == 3


def test_label_smoothing_reaches_training_and_is_checked(tmp_path, tones):
    task_file, data_root, tiny = tones
    for run, smoothing in (("plain", 0.0), ("smooth", 0.5)):
        finetune(tiny, task_file, tmp_path / run, FinetuneOptions(
            **{**QUICK, "epochs": 1}, label_smoothing=smoothing, pooling="mean", data_root=data_root))
    plain, smooth = (load_model(str(tmp_path / run)).model.state_dict() for run in ("plain", "smooth"))
    assert not torch.equal(plain["classifier.weight"], smooth["classifier.weight"])
    assert resolved_options(FinetuneOptions(), "text").label_smoothing == 0.0
    with pytest.raises(InvalidInputError, match=r"label smoothing must be in \[0, 1\), got 1.0"):
        finetune(tiny, task_file, tmp_path / "bad", FinetuneOptions(**QUICK, label_smoothing=1.0,
                                                                    data_root=data_root))
    assert not (tmp_path / "bad").exists()


def test_finetune_needs_a_dev_split_and_a_matching_modality(tmp_path, tones):
    task_file, data_root, tiny = tones
    no_dev = tmp_path / "no-dev.yaml"
    no_dev.write_text(yaml.safe_dump(AUDIO_TASK))
    with pytest.raises(InvalidInputError, match="keeps the best epoch on the dev split"):
        finetune(tiny, str(no_dev), tmp_path / "a", FinetuneOptions(**QUICK, data_root=data_root))
    build_tiny("bert").save_pretrained(tmp_path / "text")
    with pytest.raises(InvalidInputError, match="is a text model; tones is a audio task"):
        finetune(str(tmp_path / "text"), task_file, tmp_path / "b", FinetuneOptions(**QUICK, data_root=data_root))
    with pytest.raises(InvalidInputError, match="starts from its pretrained weights"):
        finetune(str(tmp_path / "text"), "rt-polarity", tmp_path / "c", FinetuneOptions(weights="random"))
    assert not any((tmp_path / name).exists() for name in ("a", "b", "c"))


def test_measure_feeds_the_task_to_compressors_and_records_what_they_saw(tmp_path, tones):
    task_file, data_root, tiny = tones
    finetune(tiny, task_file, tmp_path / "ft", FinetuneOptions(**QUICK, data_root=data_root))
    options = MeasureOptions(models=[str(tmp_path / "ft")], seconds=[0.25], latency=False, task=task_file,
                             data_root=data_root, compress=[parse_spec("head_pruning=0.5", {
                                 "head_pruning": {"importance": "fisher", "batches": 2, "batch_size": 4}})])
    dense, variant = measure(options)
    step = variant["manifest"][0]
    assert step["importance_loss"] == "task"
    assert step["data"] == {"task": "tones", "task_version": 1, "split": "train", "examples": 8, "seed": 0,
                            "batches": 2}
    assert variant["quality"]["protocol"] == "finetune" and "fidelity" in variant


def test_compress_cli_with_and_without_a_task(tmp_path, tones, capsys):
    task_file, data_root, tiny = tones
    finetune(tiny, task_file, tmp_path / "ft", FinetuneOptions(**QUICK, data_root=data_root))
    options = tmp_path / "options.yaml"
    options.write_text(yaml.safe_dump({"head_pruning": {"importance": "fisher", "batch_size": 4}}))
    code = main(["compress", "--model", str(tmp_path / "ft"), "--compress", "head_pruning=0.25,distill",
                 "--compress-options", str(options), "--out", str(tmp_path / "none")])
    _, err = capsys.readouterr()
    assert code == 2 and err.strip().splitlines() == [
        "compbench: error: head_pruning with importance: fisher needs task data: pass --task T "
        "(the compressor learns from its train split)"]
    assert not (tmp_path / "none").exists()
    code = main(["compress", "--model", str(tmp_path / "ft"), "--compress", "head_pruning=0.25,distill",
                 "--compress-options", str(options), "--task", task_file, "--data-root", data_root,
                 "--out", str(tmp_path / "v")])
    out, _ = capsys.readouterr()
    assert code == 0 and [s["name"] for s in json.loads(out)["steps"]] == ["head_pruning", "distill"]
    manifest = json.loads((tmp_path / "v" / "compbench_manifest.json").read_text())["compression"]
    assert manifest[1]["data"]["task"] == "tones" and manifest[1]["steps"] == 1  # 16 examples, batches of 16


def test_the_context_evaluates_on_dev_and_calibrates_on_train(tmp_path, tones):
    from compbench.quality.context import build_context

    task_file, data_root, tiny = tones
    finetune(tiny, task_file, tmp_path / "ft", FinetuneOptions(**{**QUICK, "epochs": 1}, data_root=data_root))
    model = load_model(str(tmp_path / "ft")).model
    context = build_context(task_file, "speech", None, data_root, seed=5)
    task = find_task(task_file)
    assert context.evaluate(model) == speech_accuracy(model, load_split(task, "dev", data_root))
    batches = context.calibration(3, 4)
    assert [b.size for b in batches] == [4, 4, 4] and all(b.labels is not None for b in batches)
    assert batches[0].inputs["input_values"].shape[1] == 4800  # quarter-second tones padded to 0.3 s
    again = build_context(task_file, "speech", None, data_root, seed=5).calibration(3, 4)
    pairs = zip(batches, again, strict=True)
    assert all(torch.equal(a.inputs["input_values"], b.inputs["input_values"]) for a, b in pairs)
    with pytest.raises(InvalidInputError, match="task tones takes audio; the model is a text model"):
        build_context(task_file, "text", None, data_root)


def test_finetune_cli_passes_its_options_and_refuses_bad_ones(tmp_path, tones, capsys):
    task_file, data_root, tiny = tones
    common = ["finetune", "--model", tiny, "--task", task_file, "--data-root", data_root, "--epochs", "1",
              "--batch-size", "4", "--lr", "1e-3", "--precision", "fp32"]
    assert main([*common, "--label-smoothing", "1.5", "--out", str(tmp_path / "bad")]) == 2
    _, err = capsys.readouterr()
    assert err.strip().splitlines() == ["compbench: error: label smoothing must be in [0, 1), got 1.5"]
    assert not (tmp_path / "bad").exists()
    assert main([*common, "--label-smoothing", "0.2", "--pooling", "mean", "--out", str(tmp_path / "ft")]) == 0
    options = json.loads((tmp_path / "ft" / "compbench_finetune.json").read_text())["options"]
    assert (options["label_smoothing"], options["pooling"], options["epochs"], options["batch_size"]) == (
        0.2, "mean", 1, 4)


def test_variants_and_fine_tunes_of_models_trained_here_keep_saying_so(tmp_path, tones):
    task_file, data_root, tiny = tones
    finetune(tiny, task_file, tmp_path / "ft", FinetuneOptions(**QUICK, data_root=data_root))
    options = tmp_path / "options.yaml"
    options.write_text(yaml.safe_dump({"distill": {"recipe": "distilhubert", "student_layers": 1, "steps": 2,
                                                   "batch_size": 4}}))
    compress_model(str(tmp_path / "ft"), "distill", str(tmp_path / "student"), options_file=str(options),
                   task=task_file, data_root=data_root)
    student = load_model(str(tmp_path / "student"))
    assert student.label == f"{tiny} trained here on tones"  # what it was compressed from, in words
    assert student.weights == "trained-here:tones"
    assert student.source == f"compbench finetune: {tiny} from random init on tones v1"
    report = finetune(str(tmp_path / "student"), task_file, tmp_path / "student-ft",
                      FinetuneOptions(**{**QUICK, "weights": None, "epochs": 1}, data_root=data_root))
    assert report["initialisation"] == "trained-here:tones"
    assert report["label"] == f"{tiny} trained here on tones, fine-tuned on tones"
    tuned = load_model(str(tmp_path / "student-ft"))
    assert tuned.label == report["label"]
    [record] = measure(MeasureOptions(models=[str(tmp_path / "student-ft")], seconds=[0.1], latency=False))
    assert record["label"] == report["label"] and record["model"] == str(tmp_path / "student-ft")
    assert tuned.weights == "trained-here:tones" and len(tuned.adapter.layers()) == 1
    assert tuned.source == f"compbench finetune: {tmp_path / 'student'} (trained-here:tones) on tones v1"
    compress_model(tiny, "layer_drop=0.5", str(tmp_path / "random-variant"), weights="random")
    assert load_model(str(tmp_path / "random-variant")).weights == "random"
    compress_model(tiny, "layer_drop=0.5", str(tmp_path / "variant"))
    assert load_model(str(tmp_path / "variant")).weights == "pretrained"


def test_a_pruned_variant_fine_tunes_with_its_shapes_and_keeps_its_compression_steps(tmp_path, tones):
    """budget_pruning with scope: all removes channels, heads and neurons unevenly; fine-tuning the saved variant
    keeps every shape (the MACs do not move), and the fine-tuned model still says which steps made it and from
    what model, in its report, on reload and in measure's record."""
    task_file, data_root, tiny = tones
    finetune(tiny, task_file, tmp_path / "ft", FinetuneOptions(**QUICK, data_root=data_root))
    options = tmp_path / "options.yaml"
    options.write_text(yaml.safe_dump({"budget_pruning": {"scope": "all", "importance": "fisher", "batches": 2,
                                                          "batch_size": 4}}))
    compress_model(str(tmp_path / "ft"), "budget_pruning=0.85", str(tmp_path / "pruned"), options_file=str(options),
                   task=task_file, data_root=data_root)
    pruned = load_model(str(tmp_path / "pruned"))
    report = finetune(str(tmp_path / "pruned"), task_file, tmp_path / "pruned-ft",
                      FinetuneOptions(**{**QUICK, "weights": None, "epochs": 1}, data_root=data_root))
    assert [step["name"] for step in report["source_compression"]] == ["budget_pruning"]
    assert report["source_origin"]["model"] == str(tmp_path / "ft")
    tuned = load_model(str(tmp_path / "pruned-ft"))
    assert tuned.compression == pruned.compression and tuned.origin == pruned.origin
    shapes = [(list(m.config.conv_dim), m.config.compbench_structure["attention_heads"],
               m.config.compbench_structure["intermediate_sizes"]) for m in (pruned.model, tuned.model)]
    assert shapes[0] == shapes[1] and sum(shapes[0][0]) < sum(build_tiny("hubert").config.conv_dim)
    dense, = measure(MeasureOptions(models=[str(tmp_path / "pruned-ft")], seconds=[0.1], latency=False))
    undone, = measure(MeasureOptions(models=[str(tmp_path / "pruned")], seconds=[0.1], latency=False))
    assert dense["macs"] == undone["macs"] and dense["params"] == undone["params"]
    assert [step["name"] for step in dense["compression"]] == ["budget_pruning"]
