"""Gradient importance of heads, FFN neurons and convolution channels through a gate of ones on each unit's
output.

- ``sensitivity`` (Michel et al. 2019, "Are Sixteen Heads Really Better than One?"): the mean
  absolute gradient of a loss with respect to the unit's gate over a few minibatches.
- ``fisher`` (Kwon et al. 2022, "A Fast Post-Training Pruning Framework for Transformers"): the
  sum over minibatches of the squared gradient of the task loss with respect to the unit's mask,
  the diagonal of the empirical Fisher information.

The loss is the task loss (cross-entropy of the model's head on labelled train examples) when the
compression context has a task and the model has a head for its labels. Otherwise sensitivity
uses a label-free loss, half the squared norm of the last hidden state (over real tokens only),
on the task's train inputs when there is a task and on inputs built by the family adapter
(random waveforms or token ids) when there is none. Fisher needs the task loss.
"""

from __future__ import annotations

import torch

from compbench.architectures.families import InputSpec, ModelAdapter
from compbench.compression.compressor import Option
from compbench.compression.context import Batch, CompressionContext, examples_in, has_task_head, task_loss
from compbench.errors import InvalidInputError
from compbench.importance.gates import UnitGates, gate_gradients

SENSITIVITY_SIZE = {"speech": 1.0, "text": 64}  # seconds / tokens per generated batch

# the options every importance-ranked compressor (heads, neurons, convolution channels) takes
IMPORTANCE_OPTIONS = {
    "importance": Option(str, "magnitude", "weight magnitude (data-free), gradient sensitivity, or Fisher "
                         "information of the task loss (needs --task)",
                         choices=("magnitude", "sensitivity", "fisher")),
    "batches": Option(int, 4, "minibatches for sensitivity or fisher (of the task's train split with --task, "
                      "else generated inputs)"),
    "batch_size": Option(int, 8, "examples per minibatch of task data"),
}


def importance_needs_task(options: dict) -> bool:
    return options["importance"] == "fisher"


def label_free_loss(adapter: ModelAdapter, batch: Batch) -> torch.Tensor:
    """Half the squared norm of the base model's last hidden state, per example, over real tokens."""
    hidden = adapter.base(**batch.inputs).last_hidden_state.float()
    mask = batch.inputs.get("attention_mask")
    if mask is not None:
        hidden = hidden * mask[..., None].to(hidden.dtype)
    return 0.5 * hidden.pow(2).sum() / hidden.shape[0]


def gate_importance(adapter: ModelAdapter, kind: str, options: dict,
                    context: CompressionContext) -> tuple[list[torch.Tensor], dict]:
    """Importance of each head, neuron or channel (``kind``) per layer by ``options['importance']``, and what
    it was computed from; the gates are :class:`~compbench.importance.gates.UnitGates`."""
    method, count = options["importance"], options["batches"]
    if count < 1 or options["batch_size"] < 1:
        raise InvalidInputError(f"{method} needs batches >= 1 and batch_size >= 1")
    model = adapter.model
    device = next(model.parameters()).device
    if context.data is not None:
        batches = [b.to(device) for b in context.calibration(count, options["batch_size"])]
        with_labels = has_task_head(model, context.data) and all(b.labels is not None for b in batches)
        seen = context.data_seen("train", examples_in(batches), batches=len(batches))
    else:
        spec = InputSpec(adapter.modality, SENSITIVITY_SIZE[adapter.modality])
        batches = [Batch(adapter.build_inputs(spec, device, seed=context.seed + i)) for i in range(count)]
        with_labels, seen = False, {"inputs": "generated", "batches": count, "seed": context.seed}
    if method == "fisher" and not with_labels:
        where = (f"a model fine-tuned on {context.data.task} (compbench finetune)" if context.data
                 else "task data: pass --task T")
        raise InvalidInputError(f"importance: fisher needs the task loss, so {where}")
    loss = (lambda b: task_loss(model, b)) if with_labels else (lambda b: label_free_loss(adapter, b))
    gradients = gate_gradients(UnitGates(adapter, (kind,)), batches, loss)[kind]  # (batches, units) per layer
    if method == "fisher":
        scores = [g.pow(2).sum(0) for g in gradients]
    else:
        scores = [g.abs().mean(0) for g in gradients]
    return scores, {"importance_loss": "task" if with_labels else "label-free", "data": seen}
