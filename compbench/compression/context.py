"""What a data-driven compressor receives: calibration data, the task loss, a dev evaluator, the teacher.

The caller (``measure``, ``compress``, ``sweep``) builds a :class:`CompressionContext` from a task
(see :mod:`compbench.quality.context`) and passes it down; compressors never import tasks or
quality code. Data-free compressors ignore it. A compressor that needs data and gets none
fails with one error that says to pass ``--task``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from compbench.architectures.families import head_outputs
from compbench.errors import InvalidInputError


@dataclass(frozen=True)
class Batch:
    """Model inputs for one minibatch of task examples, and their label indices when the task has labels (a
    transcription task: each transcript's token ids, padded with -100, which the CTC loss skips)."""

    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        labels = None if self.labels is None else self.labels.to(device)
        return Batch({k: v.to(device) for k, v in self.inputs.items()}, labels)

    @property
    def size(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])


class CalibrationData:
    """A task's examples as batches; built by the caller, read by compressors.

    ``batches(split, batch_size, seed)`` yields the whole split once in an order fixed by the
    seed; speech examples in one batch are cropped to a common length (no padding), whole utterances padded
    (with their attention mask) for a transcription task."""

    task: str  # the task's name
    task_version: int
    labels: list[str]  # the names of the task head's outputs, in index order: labels, or a CTC head's tokens
    output: str = "label"  # label or transcript (speech recognition: the loss is the CTC head's)

    def batches(self, split: str, batch_size: int, seed: int) -> Iterator[Batch]:
        raise NotImplementedError

    def examples(self, split: str) -> int:
        raise NotImplementedError

    def mean_input_size(self, split: str) -> float:
        """The split's mean input length as the model sees it: tokens (text) or seconds (speech)."""
        raise NotImplementedError


@dataclass
class CompressionContext:
    """Everything a compressor may use beyond the model: built by the caller, never by a compressor.

    ``teacher`` is the pipeline's input model (set by :func:`~compbench.compression.pipeline.apply_pipeline`);
    ``evaluate`` scores a model on the dev split (never the test split) by the task's ``metric`` (which
    :func:`~compbench.metrics.metric_of` says is better higher or lower); ``seed`` seeds every sampling of
    the data."""

    data: CalibrationData | None = None
    evaluate: Callable[[nn.Module], float] | None = None
    teacher: nn.Module | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    progress: Callable[[str, float], None] | None = None
    metric: str = "accuracy"  # what ``evaluate`` returns

    def with_teacher(self, teacher: nn.Module) -> CompressionContext:
        return replace(self, teacher=teacher)

    def require_data(self, what: str) -> CalibrationData:
        """The task data, or the one error that says how to give it."""
        if self.data is None:
            raise InvalidInputError(f"{what} needs task data: pass --task T (the compressor learns from "
                                    "its train split)")
        return self.data

    def calibration(self, batches: int, batch_size: int) -> list[Batch]:
        """The first ``batches`` minibatches of the shuffled train split (seeded); fewer if the split is small."""
        data = self.require_data("calibration")
        taken = []
        for batch in data.batches("train", batch_size, self.seed):
            if len(taken) == batches:
                break
            taken.append(batch.to(self.device))
        return taken

    def data_seen(self, split: str, examples: int, **extra) -> dict:
        """What a compressor saw, for its manifest entry."""
        data = self.require_data("data_seen")
        return {"task": data.task, "task_version": data.task_version, "split": split, "examples": examples,
                "seed": self.seed, **extra}


NO_CONTEXT = CompressionContext()


def has_task_head(model: nn.Module, data: CalibrationData | None) -> bool:
    """Whether ``model``'s head outputs exactly the task's labels, or its CTC head the tokens the task's
    transcripts are written in (so the task loss applies)."""
    return data is not None and bool(data.labels) and head_outputs(model) == list(data.labels)


def task_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """The loss of the model's head on a labelled batch: cross-entropy, or the CTC loss of a CTC head."""
    if batch.labels is None:
        raise InvalidInputError("the task loss needs labelled examples")
    return model(**batch.inputs, labels=batch.labels).loss


def examples_in(batches: Sequence[Batch]) -> int:
    return sum(batch.size for batch in batches)
