"""Speech recognition end to end on a tiny LibriSpeech-layout corpus: the corpus source and its errors, CTC
fine-tuning (from random initialisation and from a trained classifier), WER and CER in records, and the
data-driven compressors with the CTC loss."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import QUICK, RECOGNISER_GROUP, without_progress
from tiny_corpus import SPLITS, write_corpus, write_task

from compbench.architectures.families import head_outputs
from compbench.cli.main import main
from compbench.compression.spec import parse_spec
from compbench.compressors.distill import kl_loss
from compbench.errors import InvalidInputError
from compbench.measure import MeasureOptions, measure
from compbench.metrics import error_rate
from compbench.models import load_model
from compbench.quality.classify import load_tokenizer
from compbench.quality.finetune import FinetuneOptions, finetune
from compbench.quality.transcribe import transcribe
from compbench.tasks import MissingDataError, find_task, load_split
from compbench.timing.wallclock import TimingPolicy


def test_the_librispeech_layout_gives_every_utterance_with_its_transcript_in_id_order(tmp_path):
    written = write_corpus(tmp_path)
    task = find_task(str(write_task(tmp_path)))
    assert (task.output, task.source.kind) == ("transcript", "librispeech")
    for split, count in SPLITS.items():
        examples = load_split(task, split, str(tmp_path))
        assert examples.ids == sorted(written[split]) and len(examples) == count
        assert examples.transcripts == [written[split][i] for i in examples.ids]
        words = [len(t.split()) for t in examples.transcripts]
        assert [len(w) for w in examples.inputs] == [1600 + n * 5600 for n in words]  # silence, then tone + silence


def test_a_missing_folder_or_a_malformed_transcript_line_is_one_error_naming_the_file_and_line(tmp_path, capsys):
    write_corpus(tmp_path)
    task_file = str(write_task(tmp_path))
    listing = tmp_path / "TinySpeech" / "dev" / "2" / "10" / "2-10.trans.txt"
    good = listing.read_text()
    lines = good.splitlines()
    for text, message in (
            ("\n".join([lines[0], "2-10-0003"]) + "\n", r"2-10\.trans\.txt line 2: expected 'ID TRANSCRIPT'"),
            ("\n".join([lines[0], "1-10-0003 LO"]) + "\n", r"2-10\.trans\.txt line 2: expected .* starting '2-10-'"),
            ("\n".join([*lines, "2-10-0099 HI"]) + "\n", r"2-10\.trans\.txt line 3: no audio file 2-10-0099\.flac"),
            (lines[0] + "\n", r"2-10-0003\.flac: no line for it in .*/dev/2/10/2-10\.trans\.txt \(1 audio files")):
        listing.write_text(text)
        with pytest.raises(InvalidInputError, match=message):
            load_split(find_task(task_file), "dev", str(tmp_path))
        assert main(["validate", task_file, "--data", "--data-root", str(tmp_path)]) == 2
        [line] = capsys.readouterr().err.splitlines()
        assert line.startswith("compbench: error: ") and str(listing.parent) in line
    listing.write_text(good)
    moved = write_task(tmp_path, source={"kind": "librispeech", "path": "Elsewhere", "splits": {"test": "test"}})
    with pytest.raises(MissingDataError, match=r"task tiny-asr: .*Elsewhere/test does not exist"):
        load_split(find_task(str(moved)), "test", str(tmp_path))


@RECOGNISER_GROUP
def test_finetune_trains_a_ctc_head_and_measure_reports_wer_and_cer_of_dense_and_variants(recogniser):
    model_dir, task_file, data_root = recogniser
    report = json.loads((Path(model_dir) / "compbench_finetune.json").read_text())
    assert (report["head"], report["metric"], report["initialisation"]) == ("ctc", "wer", "random")
    assert report["feature_encoder_frozen"] is False and report["source_head"] is None  # trained from random init
    assert report["feature_cache"] is False  # the CNN trains: its outputs change every step
    assert report["dev_wer"] == min(h["dev_wer"] for h in report["history"])
    tokenizer = load_tokenizer(model_dir)
    assert tokenizer.get_vocab() == {"<pad>": 0, "<unk>": 1, "|": 2, "D": 3, "H": 4, "I": 5, "L": 6, "M": 7, "O": 8}
    loaded = load_model(model_dir)
    assert type(loaded.model).__name__ == "HubertForCTC" and loaded.weights == "trained-here:tiny-asr"
    assert head_outputs(loaded.model) == ["<pad>", "<unk>", "|", "D", "H", "I", "L", "M", "O"]
    dense, variant = measure(MeasureOptions(models=[model_dir], seconds=[0.5], task=task_file, data_root=data_root,
                                            compress=[parse_spec("head_pruning=0.5")],
                                            timing=TimingPolicy(min_runs=3, max_runs=3, warmup_runs=1, warmup_s=0.0)))
    test = load_split(find_task(task_file), "test", data_root)
    for record in (dense, variant):
        quality = record["quality"]
        assert (quality["metric"], quality["protocol"], quality["examples"]) == ("wer", "finetune", {"test": 4})
        assert quality["words"] == sum(len(t.split()) for t in test.transcripts)
        assert quality["value"] == quality["scores"]["wer"]
        assert record["rtf"]["median"] == record["latency_ms"]["median"] / 1000 / 0.5
    hypotheses = transcribe(loaded.model, tokenizer, test.inputs)
    assert dense["quality"]["scores"] == {"wer": error_rate("wer", test.transcripts, hypotheses),
                                          "cer": error_rate("cer", test.transcripts, hypotheses)}
    assert variant["macs"] < dense["macs"] and "fidelity" in variant


def test_a_trained_classifier_becomes_a_recogniser_with_its_feature_encoder_frozen(tmp_path, fine_tuned, tiny_asr):
    classifier, _, _ = fine_tuned
    task_file, data_root, _ = tiny_asr
    report = finetune(classifier, task_file, tmp_path / "asr", FinetuneOptions(
        **{**QUICK, "epochs": 1, "weights": None}, data_root=data_root))
    assert report["initialisation"] == "trained-here:tones" and report["source_head"] == "classification (tones)"
    assert report["feature_encoder_frozen"] is True and report["head_kept"] is False
    assert report["feature_cache"] is True  # frozen: its outputs computed once
    before, after = load_model(classifier).model, load_model(str(tmp_path / "asr")).model
    assert type(after).__name__ == "HubertForCTC"
    cnn = {n: p for n, p in before.base_model.feature_extractor.state_dict().items()}
    assert all(torch.equal(cnn[n], p) for n, p in after.base_model.feature_extractor.state_dict().items())
    moved = [n for n, p in after.base_model.encoder.state_dict().items()
             if not torch.equal(p, before.base_model.encoder.state_dict()[n])]
    assert moved  # the Transformer trained


def recogniser_to_train(name: str, train, folder: Path):
    """A tiny recogniser of ``name``'s family with its CNN frozen (its files in ``folder``), and the trainer of
    ``train``."""
    from tiny_models import build_tiny

    from compbench.quality.ctc import ctc_tokenizer, ctc_vocabulary
    from compbench.quality.finetune import _speech_recogniser, _TranscriptTrainer, resolved_options

    options = resolved_options(FinetuneOptions(**{**QUICK, "weights": None}, freeze_feature_encoder=True), "speech",
                               "transcript")
    model_dir = folder / name
    build_tiny(name).save_pretrained(model_dir)
    tokenizer = ctc_tokenizer(ctc_vocabulary(train.transcripts), str(folder))
    model, frozen, _ = _speech_recogniser(load_model(str(model_dir), "random"), tokenizer, options)
    assert frozen
    return model, _TranscriptTrainer(tokenizer, train, options, "wer")


@pytest.mark.parametrize("family", ["hubert-stable", "hubert"])
def test_a_frozen_feature_encoder_serves_each_utterances_own_output_and_padding_alone_changes_the_loss(tiny_asr,
                                                                                                         family,
                                                                                                         tmp_path):
    """A recogniser's frozen CNN runs once per train utterance, alone, as evaluation runs it; a batch's loss is
    then computed from those outputs. With a LayerNorm per frame (hubert-stable) that is the loss of the padded
    batch itself; with hubert's GroupNorm over time, a padded batch would have changed the shorter utterances'
    features, and the cached ones are each utterance's own. Training restores the encoder's own forward."""
    import random

    task_file, data_root, _ = tiny_asr
    train = load_split(find_task(task_file), "train", data_root)
    model, trainer = recogniser_to_train(family, train, tmp_path)
    encoder = model.base_model.feature_extractor
    inputs, targets = next(trainer.epoch(random.Random(0)))
    assert len(set(len(train.inputs[i]) for i in inputs["index"])) > 1  # padded
    model.eval()  # no dropout: the two losses are comparable
    uncached = trainer.loss(model, inputs, targets)
    with trainer.session(model, lambda text, done: None):
        assert trainer.cached and "forward" in vars(encoder)
        for i in inputs["index"]:
            alone = encoder.__class__.forward(encoder, torch.as_tensor(train.inputs[i])[None])[0]
            assert torch.equal(trainer.cache.features[i], alone)
        cached = trainer.loss(model, inputs, targets)
        with torch.no_grad():  # outside a batch's loss the encoder runs as it is
            values = inputs["input_values"]
            assert torch.equal(encoder(values), encoder.__class__.forward(encoder, values))
    assert "forward" not in vars(encoder)
    if family == "hubert-stable":
        assert torch.allclose(cached, uncached, atol=1e-5)
    else:
        assert not torch.allclose(cached, uncached, atol=1e-5)  # the GroupNorm saw the padding
    cached.backward()  # the served features enter training's graph
    assert all(p.grad is None for p in encoder.parameters())


def test_a_feature_encoder_that_trains_or_outputs_too_much_to_keep_is_run_every_step(tiny_asr, monkeypatch,
                                                                                     tmp_path):
    from compbench.quality import finetune as module

    task_file, data_root, _ = tiny_asr
    train = load_split(find_task(task_file), "train", data_root)
    model, trainer = recogniser_to_train("hubert", train, tmp_path)
    monkeypatch.setattr(module, "FEATURE_CACHE_BYTES", 1000)
    with trainer.session(model, lambda text, done: None):
        assert not trainer.cached and trainer.report() == {"feature_cache": False}
    monkeypatch.undo()
    for parameter in model.base_model.feature_extractor.parameters():  # trained with the rest
        parameter.requires_grad_(True)
    with trainer.session(model, lambda text, done: None):
        assert not trainer.cached


def test_a_model_without_a_ctc_head_is_told_to_fine_tune_before_any_data_loads(tiny_asr, tmp_path):
    task_file, _, tiny = tiny_asr
    with pytest.raises(InvalidInputError, match="transcribes speech with a CTC head trained on it: run compbench "
                                                "finetune --model M --task tiny-asr"):
        measure(MeasureOptions(models=[tiny], seconds=[0.5], latency=False, task=task_file,
                               data_root=str(tmp_path)))  # a data root without the corpus: nothing loaded it


@RECOGNISER_GROUP
def test_early_exit_on_a_transcription_task_is_one_error(recogniser, capsys):
    model_dir, task_file, data_root = recogniser
    assert main(["measure", "--model", model_dir, "--seconds", "0.5", "--task", task_file, "--data-root", data_root,
                 "--compress", "early_exit", "--no-latency"]) == 2
    err = without_progress(capsys.readouterr().err)
    assert err.startswith("compbench: error: early_exit: task tiny-asr transcribes speech") and err.count("\n") == 1


@RECOGNISER_GROUP
def test_data_driven_compressors_use_the_ctc_loss_and_keep_the_error_rate_within_epsilon(recogniser):
    model_dir, task_file, data_root = recogniser
    pipelines = [parse_spec(s) for s in ("head_pruning=0.5", "ffn_pruning=0.5,distill", "budget_pruning=0.3")]
    pipelines[0][0].options.update(importance="fisher")
    pipelines[2][0].options.update(importance="fisher")
    pipelines.append(parse_spec("accuracy_driven"))
    pipelines[3][0].options.update(loss_rise=None, epsilon=0.25, max_evaluations=6)
    records = measure(MeasureOptions(models=[model_dir], seconds=[0.5], latency=False, task=task_file,
                                     data_root=data_root, compress=pipelines))
    steps = {tuple(s["name"] for s in r["compression"]): r["manifest"] for r in records[1:]}
    assert steps[("head_pruning",)][0]["importance_loss"] == "task"
    budget = steps[("budget_pruning",)][0]
    assert budget["options"]["importance"] == "fisher" and budget["data"]["task"] == "tiny-asr"  # needs the task loss
    distilled = steps[("ffn_pruning", "distill")][1]
    assert distilled["loss_weights"]["kl"] == 1.0 and distilled["loss_weights"]["ce"] == 1.0  # per-frame KL, CTC loss
    assert all(np.isfinite(v) for v in distilled["final_losses"].values())
    search = steps[("accuracy_driven",)][0]
    assert search["dev_metric"] == "wer" and search["dev_bound"] == search["dev_dense"] + 0.25
    assert search["candidates"] and all((c["dev"] <= search["dev_bound"]) == c["accepted"]
                                        for c in search["candidates"])


def test_per_frame_kl_reads_only_the_frames_that_are_not_padding():
    generator = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(2, 5, 4, generator=generator), torch.randn(2, 5, 4, generator=generator)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    expected = torch.stack([kl_loss(student[0:1, :5].reshape(5, 4), teacher[0:1, :5].reshape(5, 4), 2.0) * 5,
                          kl_loss(student[1, :3], teacher[1, :3], 2.0) * 3]).sum() / 8
    assert torch.allclose(kl_loss(student, teacher, 2.0, mask), expected)
    changed = teacher.clone()
    changed[1, 3:] = torch.randn(2, 4, generator=generator)  # padding frames: no effect
    assert torch.equal(kl_loss(student, changed, 2.0, mask), kl_loss(student, teacher, 2.0, mask))
    assert np.isclose(float(kl_loss(student, teacher, 1.0, None)),
                      float(kl_loss(student.reshape(10, 4), teacher.reshape(10, 4), 1.0)))


def test_a_hugging_face_dataset_with_a_transcript_column_gives_16_khz_audio_and_its_transcripts(monkeypatch):
    """No hub here: a stand-in ``datasets`` module serves two 8 kHz utterances as ``load_dataset`` would."""
    import sys
    import types

    from compbench.tasks.schema import task_from_dict

    rows = {"audio": [{"array": np.ones(8000, dtype=np.float32), "sampling_rate": 8000},
                      {"array": np.zeros(4000, dtype=np.float64), "sampling_rate": 8000}],
            "text": ["hello world", "good bye"]}

    class Split(dict):
        column_names = list(rows)

    asked = []
    stand_in = types.SimpleNamespace(load_dataset=lambda name, config, split: asked.append((name, config, split))
                                     or Split(rows))
    monkeypatch.setitem(sys.modules, "datasets", stand_in)
    task = task_from_dict({"schema_version": 1, "name": "hf-asr", "version": 1, "description": "d", "input": "audio",
                           "output": "transcript", "metric": "cer", "protocol": "finetune",
                           "source": {"kind": "hf_dataset", "name": "org/corpus", "config": "clean",
                                      "splits": {"test": "test.clean"}, "input_column": "audio",
                                      "transcript_column": "text"}}, "hf-asr.yaml")
    examples = load_split(task, "test", data_root=".")
    assert asked == [("org/corpus", "clean", "test.clean")]
    assert examples.transcripts == ["hello world", "good bye"] and len(examples.labels) == 0
    assert [len(w) for w in examples.inputs] == [16000, 8000] and examples.inputs[0].dtype == np.float32
    with pytest.raises(InvalidInputError, match="a hf_dataset source without a transcript_column gives each "
                                                "example a label, and this task's output is 'transcript'"):
        task_from_dict({**{"schema_version": 1, "name": "x", "version": 1, "description": "d", "input": "audio",
                           "output": "transcript", "metric": "wer", "protocol": "finetune"},
                        "source": {"kind": "hf_dataset", "name": "org/corpus"}}, "x.yaml")


@RECOGNISER_GROUP
def test_the_recognition_probe_measures_an_upstream_without_a_head_and_a_recogniser_keeps_its_own(tiny_asr,
                                                                                                   recogniser,
                                                                                                   tmp_path):
    task_file, data_root, tiny = tiny_asr
    probed = write_task(tmp_path, protocol="superb_probe", probe={"hidden": 16, "layers": 1, "epochs": 3})
    options = dict(seconds=[0.5], latency=False, task=str(probed), data_root=data_root)
    [first] = measure(MeasureOptions(models=[tiny], **options))
    [again] = measure(MeasureOptions(models=[tiny], **options))
    quality = first["quality"]
    assert quality["protocol"] == "superb_probe" and quality["examples"] == {"test": 4, "train": 16}
    assert quality["probe"] == {"hidden": 16, "layers": 1, "epochs": 3, "batch_size": 8, "learning_rate": 1e-3,
                                "seed": 0}
    assert len(quality["layer_weights"]) == 3 and np.isclose(sum(quality["layer_weights"]), 1.0, atol=1e-5)
    assert quality["value"] == quality["scores"]["wer"] >= 0 and again["quality"] == quality  # seeded
    [own] = measure(MeasureOptions(models=[recogniser[0]], **options))
    assert own["quality"]["protocol"] == "finetune" and "layer_weights" not in own["quality"]


@RECOGNISER_GROUP
def test_a_saved_variant_of_a_recogniser_keeps_its_vocabulary_and_is_measured_as_it_was(recogniser, tmp_path,
                                                                                         capsys):
    model_dir, task_file, data_root = recogniser
    out = tmp_path / "pruned"
    assert main(["compress", "--model", model_dir, "--compress", "head_pruning=0.5", "--out", str(out)]) == 0
    assert (out / "vocab.json").read_bytes() == (Path(model_dir) / "vocab.json").read_bytes()
    options = dict(seconds=[0.5], latency=False, task=task_file, data_root=data_root)
    [saved] = measure(MeasureOptions(models=[str(out)], **options))
    [dense, in_process] = measure(MeasureOptions(models=[model_dir], compress=["head_pruning=0.5"], **options))
    assert saved["quality"]["scores"] == in_process["quality"]["scores"] and saved["macs"] == in_process["macs"]
    assert saved["weights"] == "trained-here:tiny-asr" and saved["compression"][0]["name"] == "head_pruning"


@RECOGNISER_GROUP
def test_a_recogniser_trained_again_on_its_vocabulary_keeps_its_ctc_head(recogniser, tmp_path):
    model_dir, task_file, data_root = recogniser
    report = finetune(model_dir, task_file, tmp_path / "again", FinetuneOptions(
        **{**QUICK, "epochs": 1, "learning_rate": 1e-12, "weights": None}, data_root=data_root))
    assert report["head_kept"] is True and report["source_head"] == "ctc (tiny-asr)"
    before, after = load_model(model_dir).model.lm_head, load_model(str(tmp_path / "again")).model.lm_head
    assert torch.allclose(before.weight, after.weight, atol=1e-6)  # a learning rate of 1e-12: the head it had


@RECOGNISER_GROUP
def test_a_recogniser_trains_on_with_time_masks_and_dropout_from_the_command_line(recogniser, tmp_path, capsys):
    """The recogniser was trained without SpecAugment (no mask embedding saved): training it on with time masks
    starts a new mask embedding; the report keeps the options. Out-of-range values: one error, nothing written."""
    model_dir, task_file, data_root = recogniser
    common = ["finetune", "--model", model_dir, "--task", task_file, "--data-root", data_root, "--epochs", "1",
              "--batch-size", "4", "--precision", "fp32"]
    assert "masked_spec_embed" not in load_model(model_dir).model.base_model.state_dict()
    out = tmp_path / "masked"
    assert main([*common, "--out", str(out), "--time-mask-frames", "2", "--hidden-dropout", "0.1"]) == 0
    report = json.loads((out / "compbench_finetune.json").read_text())
    assert report["options"]["time_mask_frames"] == 2 and report["options"]["hidden_dropout"] == 0.1
    assert "masked_spec_embed" in load_model(str(out)).model.base_model.state_dict()
    capsys.readouterr()
    for flag, value, message in (("--hidden-dropout", "1.5", "hidden dropout must be in [0, 1), got 1.5"),
                                 ("--time-mask-frames", "-1", "time masks must be >= 0 frames, got -1")):
        assert main([*common, "--out", str(tmp_path / "bad"), flag, value]) == 2
        err = without_progress(capsys.readouterr().err)
        assert err == f"compbench: error: {message}\n" and not (tmp_path / "bad").exists()


def test_the_feature_cache_says_how_far_it_has_got(tiny_asr, tmp_path):
    """Building the cache reports every hundredth utterance with the share of the utterances done (it said 0 %
    for the whole 20 minutes of fsdd-sequences' 2,000 utterances)."""
    from compbench.quality.finetune import FrozenFeatureCache

    task_file, data_root, _ = tiny_asr
    train = load_split(find_task(task_file), "train", data_root)
    model, _ = recogniser_to_train("hubert", train, tmp_path)
    waves = [train.inputs[i % len(train.inputs)] for i in range(250)]
    said = []
    FrozenFeatureCache.build(model, waves, lambda text, done: said.append((text, done)))
    assert said == [("computing the frozen feature encoder's outputs once", done) for done in (0.0, 0.4, 0.8)]
