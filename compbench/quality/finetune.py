"""Fine-tuning an encoder with a task head on a task's train split (CPU-friendly): a classification head
for a label task, a CTC head for a transcription task (speech recognition).

Text: a pretrained encoder (e.g. minilm-l6), length-bucketed batches (little padding), the
word-embedding table frozen (half of a small model's parameters, barely moved by fine-tuning).
Speech classification: a checkpoint, or a preset's architecture from random initialisation (no pretrained
speech model exists offline), pooling a learned weighted sum of its layers (or the last layer) over
frames; batches of similar length cropped to a common length (no padding), cross-entropy with label
smoothing. Speech recognition: the ``*ForCTC`` head on the top layer over a vocabulary of the train
transcripts' characters (saved beside the weights), whole utterances of similar length padded into a
batch with their attention mask, the CTC loss; the CNN feature encoder frozen when the model arrives
trained (the usual wav2vec 2.0 recipe; its outputs then computed once per utterance and kept) and trained
with the rest from random initialisation. A speech checkpoint's classification head is replaced by the new
head (its report says what it started from).
Speech trains under bfloat16 autocast where the CPU computes bfloat16 natively (``precision: auto``;
elsewhere emulated bfloat16 is several times slower than float32).

All: seeded and deterministic for a given machine, AdamW with linear warm-up and decay,
evaluation on the dev split after each epoch by the task's metric (never the test split), the best epoch
kept. The checkpoint loads with ``--model DIR``, head included; its report (``compbench_finetune.json``)
says how it was trained, and a model trained from random initialisation says so in every record.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForAudioClassification, AutoModelForCTC, AutoModelForSequenceClassification

from compbench.architectures.families import ModelAdapter, classifier_labels, ctc_vocabulary_size, head_outputs
from compbench.atomic import atomic_directory, refuse_non_empty
from compbench.errors import InvalidInputError
from compbench.metrics import classification_score, metric_of
from compbench.models import load_model
from compbench.models.loading import default_weights
from compbench.models.provenance import FINETUNE_REPORT, finetune_label
from compbench.models.variants import has_structure
from compbench.quality.batches import audio_crops, bucketed_order, text_inputs
from compbench.quality.classify import load_tokenizer, speech_predictions, text_predictions
from compbench.quality.ctc import ctc_tokenizer, ctc_vocabulary
from compbench.quality.transcribe import ctc_targets, padded_audio, transcribe, transcript_scores
from compbench.schedule import warmup_then_linear_decay
from compbench.surgery.structure import STRUCTURE_KEY, apply_structure
from compbench.tasks import Examples, find_task, load_split

REPORT_FILE = FINETUNE_REPORT
POOLINGS = ("mean", "weighted")
PRECISIONS = ("auto", "fp32", "bf16")  # auto: bf16 where the CPU computes it natively, else fp32
# the most a recogniser's cached front-end features may take (float32): fsdd-sequences' 83 minutes of train
# audio through distilhubert's 512 channels take 0.5 GB; LibriSpeech's 100 hours would take 37 GB
FEATURE_CACHE_BYTES = 2 * 1024**3


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
    precision: str | None = None  # fp32, bf16 autocast, or auto (bf16 where the CPU has it natively)
    freeze_feature_encoder: bool | None = None  # speech recognition: None freezes it when the model arrives trained
    weights: str | None = None  # random or pretrained; None: the model's default (random for presets)
    seed: int = 0
    data_root: str | None = None


MODALITY_DEFAULTS = {
    "text": {"epochs": 2, "batch_size": 32, "learning_rate": 5e-5, "warmup": 0.1, "precision": "fp32",
             "label_smoothing": 0.0, "pooling": "mean"},
    "speech": {"epochs": 5, "batch_size": 8, "learning_rate": 3e-4, "warmup": 0.05, "max_seconds": 0.6,
               "feature_encoder_lr_scale": 1.0, "hidden_dropout": 0.0, "time_mask_frames": 0, "noise": 0.0,
               "precision": "auto", "label_smoothing": 0.1, "pooling": "weighted"},
}
# speech recognition: whole utterances (no crops), no pooling or label smoothing (CTC); over the speech defaults
TRANSCRIPT_DEFAULTS = {"epochs": 3, "label_smoothing": 0.0}


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX): bf16 autocast is faster there and
    several times slower elsewhere."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolved_options(options: FinetuneOptions, modality: str, output: str = "label") -> FinetuneOptions:
    """``options`` with every None replaced by the modality's (and a transcription task's) default, ``auto``
    precision by what this CPU runs; checked."""
    defaults = {**MODALITY_DEFAULTS[modality], **(TRANSCRIPT_DEFAULTS if output == "transcript" else {})}
    options = replace(options, **{f.name: defaults[f.name] for f in fields(options)
                                  if getattr(options, f.name) is None and f.name in defaults})
    if options.precision == "auto":
        options = replace(options, precision="bf16" if native_bf16() else "fp32")
    if options.epochs < 1 or options.batch_size < 1 or not options.learning_rate > 0:
        raise InvalidInputError("epochs and batch size must be >= 1 and the learning rate > 0")
    if not 0 <= options.label_smoothing < 1:
        raise InvalidInputError(f"label smoothing must be in [0, 1), got {options.label_smoothing}")
    if modality == "speech" and not 0 <= options.hidden_dropout < 1:
        raise InvalidInputError(f"hidden dropout must be in [0, 1), got {options.hidden_dropout}")
    if modality == "speech" and options.time_mask_frames < 0:
        raise InvalidInputError(f"time masks must be >= 0 frames, got {options.time_mask_frames}")
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
    modality = "text" if task.input == "text" else "speech"
    options = resolved_options(options, modality, task.output)
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
    torch.manual_seed(options.seed)
    head = {}
    with tempfile.TemporaryDirectory() as scratch:
        if task.output == "transcript":
            tokenizer = ctc_tokenizer(ctc_vocabulary(train.transcripts), scratch)
            model, frozen, kept = _speech_recogniser(loaded, tokenizer, options)
            trainer = _TranscriptTrainer(tokenizer, train, options, task.metric)
            head = {"head": "ctc", "vocabulary": len(tokenizer), "feature_encoder_frozen": frozen, "head_kept": kept}
        elif modality == "text":
            labels = dict(enumerate(task.labels))
            tokenizer = load_tokenizer(loaded.checkpoint)
            model = AutoModelForSequenceClassification.from_pretrained(
                loaded.checkpoint, num_labels=len(labels), id2label=labels,
                label2id={v: k for k, v in labels.items()})
            if options.freeze_word_embeddings:
                model.base_model.get_input_embeddings().weight.requires_grad_(False)
            trainer = _TextTrainer(tokenizer, train, options, task.metric)
        else:
            tokenizer = None
            model = _speech_classifier(loaded, dict(enumerate(task.labels)), options)
            trainer = _SpeechTrainer(train, options, task.metric)
        numpy_state = np.random.get_state()
        np.random.seed(options.seed)  # SpecAugment draws its masks from numpy's global generator
        try:
            history, best, seconds = _train(model, trainer, dev, options, progress)
        finally:
            np.random.set_state(numpy_state)
        model.load_state_dict(best[2])
        report = {"task": task.name, "task_version": task.version, "source_model": model_name,
                  "label": finetune_label(loaded.label or model_name, loaded.weights, task.name),
                  "source_checkpoint": loaded.checkpoint, "initialisation": loaded.weights,
                  "source_head": _source_head(loaded), **head, "modality": modality,
                  # a compressed variant's steps and the model they started from: its fine-tune still says them
                  **({"source_compression": loaded.compression, "source_origin": loaded.origin}
                     if loaded.compression else {}),
                  **trainer.report(), "options": asdict(options), "metric": task.metric, "history": history,
                  "best_epoch": best[0],
                  f"dev_{task.metric}": best[1], "train_examples": len(train), "dev_examples": len(dev),
                  "seconds": seconds, "threads": torch.get_num_threads()}
        _save(model, tokenizer, report, out_dir)
    return report


def _source_head(loaded) -> str | None:
    """The head the loaded model came with, which fine-tuning replaces (or a CTC head of the same vocabulary
    keeps training): ``classification (fsdd-digits)`` for a classifier trained here, None for a bare encoder."""
    if ctc_vocabulary_size(loaded.model) is not None:
        kind = "ctc"
    elif classifier_labels(loaded.model) is not None:
        kind = "classification"
    else:
        return None
    trained_on = (loaded.weights or "").partition(":")[2]
    return f"{kind} ({trained_on})" if trained_on else kind


def _dev_split(task, data_root: str | None) -> Examples:
    try:
        return load_split(task, "dev", data_root)
    except InvalidInputError as err:
        raise InvalidInputError(f"{err}; fine-tuning keeps the best epoch on the dev split, so the task needs "
                                "one (never the test split)") from None


def _speech_recogniser(loaded, tokenizer, options: FinetuneOptions):
    """The encoder with a CTC head over ``tokenizer``'s tokens (id 0 the blank; the config's ``id2label`` names
    them), its encoder weights the loaded model's; and whether its CNN feature encoder is frozen (by default
    when the model arrives trained), and whether its head is the loaded model's: it is new, unless the loaded
    model's own CTC head outputs these tokens (a recogniser trained on this vocabulary goes on with its head)."""
    config = _training_config(loaded, options)
    tokens = {index: token for token, index in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])}
    config.update({"vocab_size": len(tokens), "pad_token_id": tokenizer.pad_token_id, "ctc_loss_reduction": "mean",
                   "ctc_zero_infinity": True, "id2label": tokens, "label2id": {v: k for k, v in tokens.items()},
                   "use_weighted_layer_sum": False})
    model = AutoModelForCTC.from_config(config, attn_implementation=loaded.attn_implementation)
    _reshape_like_variant(model, config)
    _load_encoder(model, loaded)
    kept = head_outputs(loaded.model) == list(tokens.values())
    if kept:
        model.lm_head.load_state_dict(loaded.model.lm_head.state_dict())
    frozen = options.freeze_feature_encoder
    if frozen is None:
        frozen = loaded.weights != "random"
    if frozen:
        model.freeze_feature_encoder()
    return model, frozen, kept


def _training_config(loaded, options: FinetuneOptions):
    """The loaded model's config for training: no layer drop, the recipe's dropout, SpecAugment in time only."""
    config = copy.deepcopy(loaded.model.config)
    config.update({"layerdrop": 0.0, "hidden_dropout": options.hidden_dropout})
    # SpecAugment in time only, with short masks: the config's two 10-frame masks would hide most of a
    # 0.4 s word (20 frames), and training barely moved with them
    config.update({"mask_time_prob": 0.05 if options.time_mask_frames else 0.0, "mask_feature_prob": 0.0,
                   "mask_time_length": options.time_mask_frames or 1, "mask_time_min_masks": 1})
    config.architectures = None
    return config


def _reshape_like_variant(model, config) -> None:
    """A compressed variant's task model gets the variant's shapes (heads and FFN sizes per layer, low-rank
    factors: its structure record) before the variant's encoder weights load into it; its convolution widths
    and layer count are in the config already."""
    if has_structure(config):
        apply_structure(ModelAdapter(model), getattr(config, STRUCTURE_KEY))


def _load_encoder(model, loaded) -> None:
    """The loaded model's encoder weights into ``model``'s encoder, or the error that says it does not fit."""
    try:  # SpecAugment's mask embedding: in a task model only with time masks, in a checkpoint only if it had them
        missing, unexpected = model.base_model.load_state_dict(loaded.adapter.base.state_dict(), strict=False)
    except RuntimeError as err:
        missing, unexpected = [str(err)], []
    if set(missing) - {"masked_spec_embed"} or set(unexpected) - {"masked_spec_embed"}:
        raise InvalidInputError(f"{loaded.name}: its encoder does not fit a task model of its config: missing "
                                f"{missing[:3]}, unexpected {unexpected[:3]}")


def _speech_classifier(loaded, labels: dict[int, str], options: FinetuneOptions):
    """The encoder with a classification head; its encoder weights are the loaded model's (random or trained)."""
    config = _training_config(loaded, options)
    config.update({"num_labels": len(labels), "id2label": labels, "label2id": {v: k for k, v in labels.items()},
                   "use_weighted_layer_sum": options.pooling == "weighted"})
    model = AutoModelForAudioClassification.from_config(config, attn_implementation=loaded.attn_implementation)
    _reshape_like_variant(model, config)
    _load_encoder(model, loaded)
    return model


class _Trainer:
    """One task kind's batches, loss, dev score and parameter groups for :func:`_train`."""

    train: Examples
    options: FinetuneOptions
    metric: str  # the task's metric: the dev epoch kept is the best by it
    clip_norm: float | None = 1.0

    def steps(self) -> int:
        return -(-len(self.train) // self.options.batch_size)

    def loss(self, model, inputs: dict, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the head's logits (with the options' label smoothing)."""
        logits = model(**inputs).logits
        return torch.nn.functional.cross_entropy(logits.float(), targets, label_smoothing=self.options.label_smoothing)

    def parameter_groups(self, model) -> list[dict]:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def session(self, model, progress) -> contextlib.AbstractContextManager:
        """What holds for the whole of training (nothing, but for a recogniser's cached front end)."""
        return contextlib.nullcontext()

    def report(self) -> dict:
        """What the fine-tuning report adds about how this kind trained."""
        return {}


class _TextTrainer(_Trainer):
    clip_norm = None  # as the reference fine-tune of minilm-l6 was trained

    def __init__(self, tokenizer, train: Examples, options: FinetuneOptions, metric: str):
        self.tokenizer, self.train, self.options, self.metric = tokenizer, train, options, metric
        self.lengths = [len(ids) for ids in tokenizer(train.inputs, truncation=True,
                                                      max_length=options.max_tokens)["input_ids"]]

    def epoch(self, rng: random.Random):
        for index in bucketed_order(self.lengths, self.options.batch_size, rng):
            inputs = text_inputs(self.tokenizer, [self.train.inputs[i] for i in index], self.options.max_tokens)
            yield inputs, torch.as_tensor(self.train.labels[index])

    def score(self, model, examples: Examples) -> float:
        predictions = text_predictions(model, self.tokenizer, examples, max_tokens=self.options.max_tokens)
        return classification_score(self.metric, predictions, examples.labels)


class _SpeechTrainer(_Trainer):
    clip_norm = 1.0  # training from random initialisation

    def __init__(self, train: Examples, options: FinetuneOptions, metric: str):
        self.train, self.options, self.metric = train, options, metric
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

    def score(self, model, examples: Examples) -> float:
        return classification_score(self.metric, speech_predictions(model, examples.inputs), examples.labels)

    def parameter_groups(self, model) -> list[dict]:
        encoder = [p for n, p in model.named_parameters() if ".feature_extractor." in f".{n}" and p.requires_grad]
        chosen = {id(p) for p in encoder}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in chosen]
        scale = self.options.feature_encoder_lr_scale
        return [group for group in ({"params": encoder, "lr": self.options.learning_rate * scale},
                                    {"params": rest}) if group["params"]]


class _TranscriptTrainer(_SpeechTrainer):
    """Speech recognition: whole utterances of similar length padded into a batch, the CTC loss. With the
    feature encoder frozen, its output for each train utterance is computed once, alone (as evaluation
    computes it), and served to every epoch (:class:`FrozenFeatureCache`)."""

    def __init__(self, tokenizer, train: Examples, options: FinetuneOptions, metric: str):
        super().__init__(train, options, metric)
        self.tokenizer = tokenizer
        self.cache: FrozenFeatureCache | None = None
        self.cached = False

    @contextlib.contextmanager
    def session(self, model, progress):
        self.cache = FrozenFeatureCache.build(model, self.train.inputs, progress)
        self.cached = self.cache is not None
        try:
            with self.cache.installed(model) if self.cache else contextlib.nullcontext():
                yield
        finally:
            self.cache = None

    def epoch(self, rng: random.Random):
        for index in bucketed_order(self.lengths, self.options.batch_size, rng):
            yield ({**padded_audio([self.train.inputs[i] for i in index]), "index": index},
                   ctc_targets(self.tokenizer, [self.train.transcripts[i] for i in index]))

    def loss(self, model, inputs: dict, targets: torch.Tensor) -> torch.Tensor:
        inputs = dict(inputs)
        index = inputs.pop("index")
        with self.cache.serving(index) if self.cache else contextlib.nullcontext():
            return model(**inputs, labels=targets).loss

    def score(self, model, examples: Examples) -> float:
        return transcript_scores(examples.transcripts, transcribe(model, self.tokenizer, examples.inputs))[self.metric]

    def report(self) -> dict:
        return {"feature_cache": self.cached}


class FrozenFeatureCache:
    """A frozen CNN feature encoder's output for every train utterance, computed once, each utterance alone,
    and served in place of the encoder while a batch's loss is computed (zero-padded to the batch's frames:
    the encoder zeroes padded frames after projecting them). Training then spends nothing on the front end
    after the first pass (about half of distilhubert's training step at 2.5 s), and trains on the features
    evaluation computes: a padded batch would change the statistics of a GroupNorm over time (hubert-base,
    distilhubert) for all but its longest utterance. Built only where the encoder is frozen and the features
    fit in :data:`FEATURE_CACHE_BYTES`."""

    def __init__(self, features: list[torch.Tensor]):
        self.features = features  # per utterance: (channels, frames)
        self.batch: np.ndarray | None = None

    @classmethod
    @torch.no_grad()  # not inference mode: its tensors could not enter the autograd graph of training
    def build(cls, model, waves, progress) -> FrozenFeatureCache | None:
        encoder = model.base_model.feature_extractor
        if any(p.requires_grad for p in encoder.parameters()):
            return None
        channels = model.config.conv_dim[-1]
        frames = model.base_model._get_feat_extract_output_lengths(torch.as_tensor([len(w) for w in waves]))
        if int(frames.sum()) * channels * 4 > FEATURE_CACHE_BYTES:
            return None
        was_training = encoder.training
        encoder.eval()
        features = []
        for number, wave in enumerate(waves):
            features.append(encoder(torch.as_tensor(wave, dtype=torch.float32)[None])[0].clone())
            if number % 100 == 0:
                progress("computing the frozen feature encoder's outputs once", number / len(waves))
        encoder.train(was_training)
        return cls(features)

    @contextlib.contextmanager
    def installed(self, model):
        """The encoder serves the cached features of :meth:`serving`'s batch; otherwise it runs as it is."""
        encoder = model.base_model.feature_extractor
        run = encoder.forward

        def forward(input_values):
            if self.batch is None:
                return run(input_values)
            served = torch.nn.utils.rnn.pad_sequence([self.features[i].T for i in self.batch], batch_first=True)
            return served.transpose(1, 2)

        encoder.forward = forward
        try:
            yield
        finally:
            del encoder.forward

    @contextlib.contextmanager
    def serving(self, batch):
        self.batch = batch
        try:
            yield
        finally:
            self.batch = None


def _train(model, trainer: _Trainer, dev: Examples, options: FinetuneOptions,
           progress) -> tuple[list[dict], tuple, float]:
    rng = random.Random(options.seed)
    total = trainer.steps() * options.epochs
    optimizer = torch.optim.AdamW(trainer.parameter_groups(model), lr=options.learning_rate)
    schedule = warmup_then_linear_decay(optimizer, options.warmup, total)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=options.precision == "bf16")
    metric = metric_of(trainer.metric)
    history, best, step, start = [], None, 0, time.perf_counter()
    with trainer.session(model, progress):
        for epoch in range(1, options.epochs + 1):
            model.train()
            for inputs, targets in trainer.epoch(rng):
                with autocast:
                    loss = trainer.loss(model, inputs, targets)
                loss.backward()
                if trainer.clip_norm is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), trainer.clip_norm)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad()
                step += 1
                progress(f"epoch {epoch}/{options.epochs} loss {loss.item():.3f}", step / total)
            progress(f"epoch {epoch}/{options.epochs}: evaluating on dev", step / total)
            value = trainer.score(model, dev)
            progress(f"epoch {epoch}/{options.epochs}: dev {metric.name} {value:.4f}", step / total)
            history.append({"epoch": epoch, f"dev_{metric.name}": value,
                            "seconds": round(time.perf_counter() - start, 1)})
            if best is None or metric.better(value, best[1]):
                best = (epoch, value, copy.deepcopy(model.state_dict()))
    return history, best, round(time.perf_counter() - start, 1)


def _save(model, tokenizer, report: dict, out_dir: Path) -> None:
    def write(staging: Path) -> None:
        model.save_pretrained(staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        (staging / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    atomic_directory(out_dir, write)
