"""Quality in records: SUPERB probe and fidelity for speech, fine-tuned classifiers for text."""


import numpy as np
import pytest
import soundfile
import yaml
from conftest import needs_minilm
from tiny_models import build_tiny

from compbench.compression.spec import parse_spec
from compbench.errors import InvalidInputError
from compbench.measure import MeasureOptions, measure

AUDIO_TASK = {
    "schema_version": 1, "name": "tones", "version": 1, "description": "two tones", "input": "audio",
    "source": {"kind": "audio_folder", "path": "tones", "filename_pattern": r"(?P<pitch>[a-z]+)_(?P<i>\d+)\.wav",
               "label": "pitch", "split_field": "i", "split_ranges": {"train": [0, 7], "test": [8, 11]}},
    "labels": ["low", "high"], "metric": "accuracy", "protocol": "superb_probe"}


def write_tones(folder):
    """Twelve quarter-second tones per pitch (low, high), with a little noise: the data of AUDIO_TASK."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for pitch, hz in (("low", 300), ("high", 2000)):
        for i in range(12):
            t = np.arange(4000) / 16000
            wave = 0.5 * np.sin(2 * np.pi * hz * t) + 0.05 * rng.standard_normal(t.size)
            soundfile.write(str(folder / f"{pitch}_{i}.wav"), wave.astype(np.float32), 16000)


@pytest.fixture
def tone_task(tmp_path):
    write_tones(tmp_path / "tones")
    path = tmp_path / "tones.yaml"
    path.write_text(yaml.safe_dump(AUDIO_TASK))
    return str(path), str(tmp_path)


def test_speech_quality_and_fidelity(tmp_path, tone_task):
    task_file, data_root = tone_task
    build_tiny("hubert").save_pretrained(tmp_path / "tiny")
    options = MeasureOptions(models=[str(tmp_path / "tiny")], seconds=[0.25], latency=False, task=task_file,
                             data_root=data_root, compress=[parse_spec("head_pruning=0.5")])
    dense, variant = measure(options)
    for record in (dense, variant):
        quality = record["quality"]
        assert (quality["task"], quality["split"], quality["metric"]) == ("tones", "test", "accuracy")
        assert quality["examples"] == {"test": 8, "train": 16} and 0 <= quality["value"] <= 1
        assert len(quality["layer_weights"]) == 3 and abs(sum(quality["layer_weights"]) - 1) < 1e-5
    assert "fidelity" not in dense
    layers = variant["fidelity"]["layers"]
    assert [(x["variant_layer"], x["dense_layer"]) for x in layers] == [(0, 0), (1, 1), (2, 2)]
    assert layers[0]["cka"] == pytest.approx(1.0, abs=1e-9) and variant["fidelity"]["last_cka"] < 1 - 1e-7
    assert variant["fidelity"]["output_cka"] == variant["fidelity"]["last_cka"]  # no layer dropped: the same pair
    again = measure(options)
    assert again[0]["quality"]["value"] == dense["quality"]["value"]
    assert again[1]["fidelity"]["last_cka"] == pytest.approx(variant["fidelity"]["last_cka"], abs=1e-12)


def test_output_fidelity_of_a_layer_dropped_model_compares_with_the_dense_output(tmp_path, tone_task):
    task_file, data_root = tone_task
    build_tiny("hubert").save_pretrained(tmp_path / "tiny")
    _, dropped = measure(MeasureOptions(models=[str(tmp_path / "tiny")], seconds=[0.25], latency=False,
                                        task=task_file, data_root=data_root, compress=[parse_spec("layer_drop=0.5")]))
    fidelity = dropped["fidelity"]
    assert [(x["variant_layer"], x["dense_layer"]) for x in fidelity["layers"]] == [(0, 0), (1, 1)]
    assert fidelity["last_cka"] == pytest.approx(1.0, abs=1e-9)  # layer 1 is the dense model's layer 1, unchanged
    assert fidelity["output_cka"] < 1 - 1e-6  # but the dense model's output is layer 2
    # independently: the variant's output is the dense model's layer 1, so output CKA = CKA(dense layer 2, layer 1)
    from compbench.models import load_model
    from compbench.quality.evaluate import hidden_states, prepare_task
    from compbench.quality.fidelity import linear_cka
    from compbench.tasks import find_task

    dense = load_model(str(tmp_path / "tiny"))
    states = hidden_states(dense.model, prepare_task(find_task(task_file), "speech", dense.checkpoint, data_root))
    assert fidelity["output_cka"] == pytest.approx(linear_cka(states[2], states[1]), abs=1e-9)


def test_task_and_model_must_share_a_modality(tone_task):
    task_file, data_root = tone_task
    with pytest.raises(InvalidInputError, match="task tones takes audio; the model is a text model"):
        measure(MeasureOptions(models=["minilm-l6"], latency=False, task=task_file, data_root=data_root))


@needs_minilm
def test_finetune_then_measure_quality(tmp_path, text_task):
    from compbench.quality.classify import load_tokenizer, text_accuracy
    from compbench.quality.finetune import FinetuneOptions, finetune
    from compbench.tasks import find_task, load_split

    task_file, data_root = text_task
    report = finetune("minilm-l6", task_file, tmp_path / "ft", FinetuneOptions(epochs=1, batch_size=16,
                                                                             learning_rate=1e-4, data_root=data_root))
    assert report["history"][0]["epoch"] == 1 and report["train_examples"] == 48
    [record] = measure(MeasureOptions(models=[str(tmp_path / "ft")], tokens=[16], latency=False,
                                      task=task_file, data_root=data_root))
    from compbench.models import load_model

    loaded = load_model(str(tmp_path / "ft"))
    expected = text_accuracy(loaded.model, load_tokenizer(str(tmp_path / "ft")),
                             load_split(find_task(task_file), "test", data_root))
    assert record["quality"]["value"] == expected and record["quality"]["examples"] == {"test": 16}
    assert record["params_by_component"]["head"] == 384 * 2 + 2  # the classifier came with it
    for weights in ("pretrained", None):  # random weights: the same advice, not a tokenizer error
        with pytest.raises(InvalidInputError, match="fine-tuned classifier"):
            measure(MeasureOptions(models=["minilm-l6"], weights=weights, latency=False, task=task_file,
                                   data_root=data_root))


def test_a_task_whose_metric_is_macro_f1_records_macro_f1_of_the_predictions(tmp_path, monkeypatch):
    """The metric the task file names is the one computed (macro-F1 was recorded as the accuracy before)."""
    from compbench.metrics import classification_score
    from compbench.quality import evaluate

    write_tones(tmp_path / "data" / "tones")
    (tmp_path / "f1.yaml").write_text(yaml.safe_dump(dict(AUDIO_TASK, metric="macro_f1")))
    build_tiny("hubert").save_pretrained(tmp_path / "tiny")
    scored = []

    def recorded(metric, predictions, labels):
        scored.append((metric, list(predictions), list(labels)))
        return classification_score(metric, predictions, labels)

    monkeypatch.setattr(evaluate, "classification_score", recorded)
    [record] = measure(MeasureOptions(models=[str(tmp_path / "tiny")], seconds=[0.25], latency=False,
                                      task=str(tmp_path / "f1.yaml"), data_root=str(tmp_path / "data")))
    [(metric, predictions, labels)] = scored
    assert metric == record["quality"]["metric"] == "macro_f1" and len(labels) == 8
    hits = [sum(p == c and t == c for p, t in zip(predictions, labels, strict=True)) for c in (0, 1)]
    f1 = [2 * hits[c] / (predictions.count(c) + labels.count(c)) for c in (0, 1)
          if predictions.count(c) + labels.count(c)]
    assert record["quality"]["value"] == pytest.approx(sum(f1) / len(f1))


def toy_classifier(directory, seed: int = 0) -> str:
    """all-MiniLM-L6-v2 with a random two-label head for the toy text task's labels, and its tokenizer."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from compbench.models import load_model
    from compbench.quality.classify import load_tokenizer

    checkpoint = load_model("minilm-l6", weights="pretrained").checkpoint
    torch.manual_seed(seed)
    labels = {0: "negative", 1: "positive"}
    model = AutoModelForSequenceClassification.from_pretrained(
        checkpoint, num_labels=2, id2label=labels, label2id={v: k for k, v in labels.items()})
    model.save_pretrained(directory)
    load_tokenizer(checkpoint).save_pretrained(directory)
    return str(directory)


@needs_minilm
def test_a_text_classifiers_fidelity_states_come_from_the_forwards_that_classify_the_split(tmp_path, text_task,
                                                                                            monkeypatch):
    """One pass over the split gives a text classifier's predictions (those text_predictions gives) and the chosen
    examples' hidden states, in the order asked, each example's tokens as it has them alone (its batch's padding
    left out); measure makes one such pass per model, and a variant identical to its dense model has a fidelity of
    exactly 1 whether or not the dense model's quality is wanted (its states come from the same batches)."""
    import torch

    from compbench.models import load_model
    from compbench.quality import evaluate
    from compbench.quality.classify import text_predictions, text_predictions_and_states
    from compbench.tasks import find_task

    task_file, data_root = text_task
    loaded = load_model(toy_classifier(tmp_path / "toy"))
    data = evaluate.prepare_task(find_task(task_file), "text", loaded.checkpoint, data_root)
    chosen = [11, 0, 3]  # "a boring film number 11" is a token longer than the others: batches are padded
    predictions, states = text_predictions_and_states(loaded.model, data.tokenizer, data.evaluation, chosen,
                                                      batch_size=4)
    assert (predictions == text_predictions(loaded.model, data.tokenizer, data.evaluation, batch_size=4)).all()
    with torch.no_grad():
        alone = [loaded.model(**data.tokenizer([data.evaluation.inputs[i]], return_tensors="pt"),
                              output_hidden_states=True).hidden_states for i in chosen]
    assert len(states) == 7 and states[0].shape[0] == sum(a[0].shape[1] for a in alone)
    for layer, stacked in enumerate(states):
        torch.testing.assert_close(stacked, torch.cat([a[layer][0] for a in alone]), rtol=1e-4, atol=1e-4)

    passes = []
    counted = evaluate.text_predictions_and_states

    def counting(model, tokenizer, examples, states_of, *args, **kwargs):
        passes.append(list(states_of))
        return counted(model, tokenizer, examples, states_of, *args, **kwargs)

    monkeypatch.setattr(evaluate, "text_predictions_and_states", counting)
    for dense_quality in (True, False):
        passes.clear()
        dense, same = measure(MeasureOptions(models=[loaded.checkpoint], tokens=[16], latency=False, task=task_file,
                                             data_root=data_root, compress=[parse_spec("ffn_pruning=0")],
                                             dense_quality=dense_quality))
        assert passes == [list(range(16))] * 2  # the dense model's and the variant's: every test example's states
        assert ("quality" in dense) == dense_quality
        assert same["quality"]["value"] == float((predictions == data.evaluation.labels).mean())
        assert same["fidelity"]["examples"] == 16 and len(same["fidelity"]["layers"]) == 7
        assert all(abs(layer["cka"] - 1.0) < 1e-12 for layer in same["fidelity"]["layers"])
