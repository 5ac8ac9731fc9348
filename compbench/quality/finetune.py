"""Fine-tuning an encoder with a classification head on a task's train split (CPU-friendly).

Text: a pretrained encoder (e.g. minilm-l6), length-bucketed batches (little padding), the
word-embedding table frozen (half of a small model's parameters, barely moved by fine-tuning).
Speech: a checkpoint, or a preset's architecture from random initialisation (no pretrained speech
model exists offline), pooling a learned weighted sum of its layers (or the last layer) over
frames; batches of similar length cropped to a common length (no padding), bfloat16 autocast on
CPU, cross-entropy with label smoothing.

Both: seeded and deterministic for a given machine, AdamW with linear warm-up and decay,
evaluation on the dev split after each epoch (never the test split), the best epoch kept. The
checkpoint loads with ``--model DIR``, head included; its report (``compbench_finetune.json``)
says how it was trained, and a model trained from random initialisation says so in every record.
"""

from __future__ import annotations

import copy
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForAudioClassification, AutoModelForSequenceClassification

from compbench.atomic import atomic_directory, refuse_non_empty
from compbench.errors import InvalidInputError
from compbench.models import load_model
from compbench.models.loading import default_weights
from compbench.models.provenance import FINETUNE_REPORT
from compbench.quality.batches import audio_crops, bucketed_order, text_inputs
from compbench.quality.classify import load_tokenizer, speech_accuracy, text_accuracy
from compbench.quality.evaluate import check_classification_task
from compbench.schedule import warmup_then_linear_decay
from compbench.tasks import Examples, find_task, load_split

REPORT_FILE = FINETUNE_REPORT
POOLINGS = ("mean", "weighted")
PRECISIONS = ("fp32", "bf16")


@dataclass
class FinetuneOptions:
    """Settings of ``compbench finetune``; None takes the modality's default (:data:`MODALITY_DEFAULTS`)."""

    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    warmup: float | None = None  # fraction of steps
    max_tokens: int = 64  # text: longer sentences are truncated
    freeze_word_embeddings: bool = True  # text
    max_seconds: float | None = None  # speech: training crops are at most this long
    min_seconds: float = 0.3  # speech: shorter utterances are zero-padded to this
    pooling: str | None = None  # speech: mean over frames, or a learned weighted sum of layers
    label_smoothing: float | None = None  # of the cross-entropy loss
    feature_encoder_lr_scale: float | None = None  # speech: the CNN's learning rate / learning_rate
    hidden_dropout: float | None = None  # speech: the config's hidden_dropout while training (None: the recipe's)
    time_mask_frames: int | None = None  # speech: SpecAugment time masks of this many frames (0: none)
    noise: float | None = None  # speech: add Gaussian noise of up to this fraction of each crop's std
    precision: str | None = None  # fp32, or bf16 autocast
    weights: str | None = None  # random or pretrained; None: the model's default (random for presets)
    seed: int = 0
    data_root: str | None = None


MODALITY_DEFAULTS = {
    "text": {"epochs": 2, "batch_size": 32, "learning_rate": 5e-5, "warmup": 0.1, "precision": "fp32",
             "label_smoothing": 0.0, "pooling": "mean"},
    "speech": {"epochs": 5, "batch_size": 8, "learning_rate": 3e-4, "warmup": 0.05, "max_seconds": 0.6,
               "feature_encoder_lr_scale": 1.0, "hidden_dropout": 0.0, "time_mask_frames": 0, "noise": 0.0,
               "precision": "bf16", "label_smoothing": 0.1, "pooling": "weighted"},
}


def resolved_options(options: FinetuneOptions, modality: str) -> FinetuneOptions:
    """``options`` with every None replaced by the modality's default; checked."""
    defaults = MODALITY_DEFAULTS[modality]
    options = replace(options, **{f.name: defaults[f.name] for f in fields(options)
                                  if getattr(options, f.name) is None and f.name in defaults})
    if options.epochs < 1 or options.batch_size < 1 or not options.learning_rate > 0:
        raise InvalidInputError("epochs and batch size must be >= 1 and the learning rate > 0")
    if not 0 <= options.label_smoothing < 1:
        raise InvalidInputError(f"label smoothing must be in [0, 1), got {options.label_smoothing}")
    if options.pooling not in POOLINGS:
        raise InvalidInputError(f"pooling must be one of {', '.join(POOLINGS)}, got {options.pooling!r}")
    if options.precision not in PRECISIONS:
        raise InvalidInputError(f"precision must be one of {', '.join(PRECISIONS)}, got {options.precision!r}")
    if modality == "speech" and not 0 < options.min_seconds <= options.max_seconds:
        raise InvalidInputError("speech crops need 0 < min_seconds <= max_seconds")
    return options


def finetune(model_name: str, task_name: str, out_dir: str | Path, options: FinetuneOptions | None = None,
             progress: Callable[[str, float], None] | None = None) -> dict:
    """Fine-tune ``model_name`` on ``task_name`` and save the best dev epoch to ``out_dir``; return the report."""
    options = options or FinetuneOptions()
    progress = progress or (lambda text, done: None)
    out_dir = Path(out_dir)
    refuse_non_empty(out_dir)
    task = find_task(task_name)
    check_classification_task(task)
    modality = "text" if task.input == "text" else "speech"
    options = resolved_options(options, modality)
    weights = options.weights or ("pretrained" if modality == "text" else default_weights(model_name))
    if modality == "text" and weights != "pretrained":
        raise InvalidInputError("fine-tuning a text model starts from its pretrained weights (and tokenizer); "
                                "drop --weights random")
    loaded = load_model(model_name, weights, seed=options.seed)
    if loaded.adapter.modality != modality:
        raise InvalidInputError(f"{model_name} is a {loaded.adapter.modality} model; "
                                f"{task.name} is a {task.input} task")
    if modality == "text" and task.protocol != "finetune":
        raise InvalidInputError(f"task {task.name} is evaluated by {task.protocol}; fine-tune on a text "
                                "classification task")
    train, dev = load_split(task, "train", options.data_root), _dev_split(task, options.data_root)
    labels = {i: label for i, label in enumerate(task.labels)}
    torch.manual_seed(options.seed)
    if modality == "text":
        tokenizer = load_tokenizer(loaded.checkpoint)
        model = AutoModelForSequenceClassification.from_pretrained(
            loaded.checkpoint, num_labels=len(labels), id2label=labels, label2id={v: k for k, v in labels.items()})
        if options.freeze_word_embeddings:
            model.base_model.get_input_embeddings().weight.requires_grad_(False)
        trainer = _TextTrainer(tokenizer, train, options)
    else:
        tokenizer = None
        model = _speech_classifier(loaded, labels, options)
        trainer = _SpeechTrainer(train, options)
    numpy_state = np.random.get_state()
    np.random.seed(options.seed)  # SpecAugment draws its masks from numpy's global generator
    try:
        history, best, seconds = _train(model, trainer, dev, options, progress)
    finally:
        np.random.set_state(numpy_state)
    model.load_state_dict(best[2])
    report = {"task": task.name, "task_version": task.version, "source_model": model_name,
              "source_checkpoint": loaded.checkpoint, "initialisation": loaded.weights,
              "modality": modality, "options": asdict(options), "history": history,
              "best_epoch": best[0], "dev_accuracy": best[1], "train_examples": len(train),
              "dev_examples": len(dev), "seconds": seconds, "threads": torch.get_num_threads()}
    _save(model, tokenizer, report, out_dir)
    return report


def _dev_split(task, data_root: str | None) -> Examples:
    try:
        return load_split(task, "dev", data_root)
    except InvalidInputError as err:
        raise InvalidInputError(f"{err}; fine-tuning keeps the best epoch on the dev split, so the task needs "
                                "one (never the test split)") from None


def _speech_classifier(loaded, labels: dict[int, str], options: FinetuneOptions):
    """The encoder with a classification head; its encoder weights are the loaded model's (random or trained)."""
    config = copy.deepcopy(loaded.model.config)
    config.update({"num_labels": len(labels), "id2label": labels, "label2id": {v: k for k, v in labels.items()},
                   "use_weighted_layer_sum": options.pooling == "weighted", "layerdrop": 0.0,
                   "hidden_dropout": options.hidden_dropout})
    # SpecAugment in time only, with short masks: the config's two 10-frame masks would hide most of a
    # 0.4 s word (20 frames), and training barely moved with them
    config.update({"mask_time_prob": 0.05 if options.time_mask_frames else 0.0, "mask_feature_prob": 0.0,
                   "mask_time_length": options.time_mask_frames or 1, "mask_time_min_masks": 1})
    config.architectures = None
    model = AutoModelForAudioClassification.from_config(config, attn_implementation=loaded.attn_implementation)
    try:  # without SpecAugment the classifier has no mask embedding
        missing, unexpected = model.base_model.load_state_dict(loaded.adapter.base.state_dict(), strict=False)
    except RuntimeError as err:
        missing, unexpected = [str(err)], []
    if missing or set(unexpected) - {"masked_spec_embed"}:
        raise InvalidInputError(f"{loaded.name}: its encoder does not fit a classifier of its config (a "
                                f"compressed variant cannot be fine-tuned here): missing {missing[:3]}, "
                                f"unexpected {unexpected[:3]}")
    return model


class _Trainer:
    """One modality's batches, accuracy and parameter groups for :func:`_train`."""

    train: Examples
    options: FinetuneOptions

    def steps(self) -> int:
        return -(-len(self.train) // self.options.batch_size)


class _TextTrainer(_Trainer):
    clip_norm = None  # as the reference fine-tune of minilm-l6 was trained

    def __init__(self, tokenizer, train: Examples, options: FinetuneOptions):
        self.tokenizer, self.train, self.options = tokenizer, train, options
        self.lengths = [len(ids) for ids in tokenizer(train.inputs, truncation=True,
                                                      max_length=options.max_tokens)["input_ids"]]

    def epoch(self, rng: random.Random):
        for index in bucketed_order(self.lengths, self.options.batch_size, rng):
            inputs = text_inputs(self.tokenizer, [self.train.inputs[i] for i in index], self.options.max_tokens)
            yield inputs, torch.as_tensor(self.train.labels[index])

    def accuracy(self, model, examples: Examples) -> float:
        return text_accuracy(model, self.tokenizer, examples, max_tokens=self.options.max_tokens)

    def parameter_groups(self, model) -> list[dict]:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]


class _SpeechTrainer(_Trainer):
    clip_norm = 1.0  # training from random initialisation

    def __init__(self, train: Examples, options: FinetuneOptions):
        self.train, self.options = train, options
        self.lengths = [len(w) for w in train.inputs]

    def epoch(self, rng: random.Random):
        noisy = self.options.noise > 0
        generator = torch.Generator().manual_seed(rng.randrange(2**31)) if noisy else None
        for index in bucketed_order(self.lengths, self.options.batch_size, rng):
            crops = audio_crops([self.train.inputs[i] for i in index], rng, self.options.max_seconds,
                                self.options.min_seconds)
            if noisy:
                level = torch.rand(len(index), 1, generator=generator) * self.options.noise
                crops = crops + level * crops.std(dim=1, keepdim=True) * torch.randn(crops.shape, generator=generator)
            yield {"input_values": crops}, torch.as_tensor(self.train.labels[index])

    def accuracy(self, model, examples: Examples) -> float:
        return speech_accuracy(model, examples)

    def parameter_groups(self, model) -> list[dict]:
        encoder = [p for n, p in model.named_parameters() if ".feature_extractor." in f".{n}" and p.requires_grad]
        chosen = {id(p) for p in encoder}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in chosen]
        scale = self.options.feature_encoder_lr_scale
        return [{"params": encoder, "lr": self.options.learning_rate * scale}, {"params": rest}]


def _train(model, trainer, dev: Examples, options: FinetuneOptions, progress) -> tuple[list[dict], tuple, float]:
    rng = random.Random(options.seed)
    total = trainer.steps() * options.epochs
    optimizer = torch.optim.AdamW(trainer.parameter_groups(model), lr=options.learning_rate)
    schedule = warmup_then_linear_decay(optimizer, options.warmup, total)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=options.precision == "bf16")
    history, best, step, start = [], None, 0, time.perf_counter()
    for epoch in range(1, options.epochs + 1):
        model.train()
        for inputs, labels in trainer.epoch(rng):
            with autocast:
                logits = model(**inputs).logits
            loss = torch.nn.functional.cross_entropy(logits.float(), labels, label_smoothing=options.label_smoothing)
            loss.backward()
            if trainer.clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.clip_norm)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            progress(f"epoch {epoch}/{options.epochs} loss {loss.item():.3f}", step / total)
        accuracy = trainer.accuracy(model, dev)
        history.append({"epoch": epoch, "dev_accuracy": accuracy,
                        "seconds": round(time.perf_counter() - start, 1)})
        if best is None or accuracy > best[1]:
            best = (epoch, accuracy, copy.deepcopy(model.state_dict()))
    return history, best, round(time.perf_counter() - start, 1)


def _save(model, tokenizer, report: dict, out_dir: Path) -> None:
    def write(staging: Path) -> None:
        model.save_pretrained(staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        (staging / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    atomic_directory(out_dir, write)
