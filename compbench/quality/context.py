"""Building the compression context from a task: the caller's side of data-driven compression.

``measure``, ``compress`` and ``sweep`` call :func:`build_context`; the compressors only see the
:class:`~compbench.compression.context.CompressionContext` it returns. Calibration and training
batches come from the task's train split, the evaluator scores on the dev split (never the test
split).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import torch
from torch import nn

from compbench.architectures.families import SAMPLE_RATE
from compbench.compression.context import Batch, CalibrationData, CompressionContext
from compbench.errors import InvalidInputError, ModelLoadError
from compbench.quality.batches import audio_crops, bucketed_order, text_inputs
from compbench.quality.classify import TEXT_MAX_TOKENS, load_tokenizer
from compbench.quality.evaluate import TaskData as EvaluationData
from compbench.quality.evaluate import check_task_modality, limit_examples, task_quality
from compbench.quality.transcribe import ctc_targets, padded_audio
from compbench.tasks import Examples, Task, find_task, load_split

SPEECH_MAX_SECONDS = 1.0  # speech batches are cropped to at most this long...
SPEECH_MIN_SECONDS = 0.3  # ...and padded to at least this long (the CNN and SpecAugment need frames)


class TaskBatches(CalibrationData):
    """A task's splits and the model's tokenizer (a text model's, or a speech recogniser's CTC vocabulary), loaded
    on first use, served as seeded minibatches."""

    def __init__(self, task: Task, data_root: str | None, checkpoint: str | None = None, limit: int | None = None):
        self.task_spec = task
        self.limit = limit  # at most this many examples per split (quick runs)
        self.task, self.task_version, self.output = task.name, task.version, task.output
        self.data_root = data_root
        self.checkpoint = checkpoint
        self._tokenizer = None
        self._splits: dict[str, Examples] = {}
        self.labels = list(task.labels) if task.output == "label" else self._ctc_tokens()

    def _ctc_tokens(self) -> list[str]:
        """A transcription task's head outputs: the tokens of the CTC vocabulary saved with the model (none
        without one: the task loss does not apply)."""
        if self.checkpoint is None:
            return []
        try:
            vocabulary = self.tokenizer.get_vocab()
        except ModelLoadError:
            return []
        return [token for token, _ in sorted(vocabulary.items(), key=lambda item: item[1])]

    @property
    def tokenizer(self):
        if self.task_spec.input != "text" and self.task_spec.output != "transcript":
            return None
        if self._tokenizer is None:
            if self.checkpoint is None:
                raise InvalidInputError(f"task {self.task} needs the model's tokenizer: give a model directory")
            self._tokenizer = load_tokenizer(self.checkpoint)
        return self._tokenizer

    def split(self, split: str) -> Examples:
        if split not in self._splits:
            self._splits[split] = limit_examples(load_split(self.task_spec, split, self.data_root), self.limit)
        return self._splits[split]

    def examples(self, split: str) -> int:
        return len(self.split(split))

    def mean_input_size(self, split: str) -> float:
        examples = self.split(split)
        if self.task_spec.input == "text":  # tokens after the tokenizer's special tokens and truncation
            ids = self.tokenizer(list(examples.inputs), truncation=True, max_length=TEXT_MAX_TOKENS)["input_ids"]
            return sum(len(i) for i in ids) / len(ids)
        return sum(len(x) for x in examples.inputs) / len(examples) / SAMPLE_RATE

    def batches(self, split: str, batch_size: int, seed: int) -> Iterator[Batch]:
        examples = self.split(split)
        rng = random.Random(seed)
        lengths = [len(x) for x in examples.inputs]
        for index in bucketed_order(lengths, batch_size, rng):
            items = [examples.inputs[i] for i in index]
            if self.output == "transcript":  # whole utterances: a transcript covers all of its audio
                targets = ctc_targets(self.tokenizer, [examples.transcripts[i] for i in index]) if self.labels else None
                yield Batch(padded_audio(items), targets)
                continue
            labels = torch.as_tensor(examples.labels[index], dtype=torch.long)
            if self.task_spec.input == "text":
                inputs = text_inputs(self.tokenizer, items, TEXT_MAX_TOKENS)
            else:
                inputs = {"input_values": audio_crops(items, rng, SPEECH_MAX_SECONDS, SPEECH_MIN_SECONDS)}
            yield Batch(inputs, labels)


def dev_evaluator(data: TaskBatches) -> Callable[[nn.Module], float]:
    """Quality on the dev split, by the task's protocol (a text classifier, a speech head or the probe)."""
    def evaluate(model: nn.Module) -> float:
        train = data.split("train") if data.task_spec.protocol == "superb_probe" else None  # the probe's
        return task_quality(model, EvaluationData(data.task_spec, train, data.split("dev"), data.tokenizer))["value"]
    return evaluate


def build_context(task_name: str | Task, modality: str, checkpoint: str | None, data_root: str | None,
                  device: torch.device | str = "cpu", seed: int = 0,
                  progress: Callable[[str, float], None] | None = None, limit: int | None = None) -> CompressionContext:
    """The context for compressing a ``modality`` model (loaded from ``checkpoint``) with ``task``'s data;
    ``limit`` keeps at most that many examples per split."""
    task = find_task(task_name) if isinstance(task_name, str) else task_name
    check_task_modality(task, modality)
    data = TaskBatches(task, data_root, checkpoint, limit)
    return CompressionContext(data=data, evaluate=dev_evaluator(data), device=torch.device(device), seed=seed,
                              progress=progress, metric=task.metric)
