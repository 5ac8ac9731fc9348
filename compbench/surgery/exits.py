"""Early-exit models (DeeBERT-style dynamic inference): a classifier after every layer, and a model that
stops early.

An exit after layer ``k`` pools that layer's output (text: the first token, as DeeBERT; speech:
the mean over frames), normalises it and classifies it (``Linear + tanh``, then ``Linear`` to the
task's labels); the model's own head stays the last exit. The model runs one example at a time: an
example leaves at the first exit whose prediction entropy (nats) is below ``threshold``, and the
layers after it never run. One example at a time, because examples of one batch would leave at
different layers: a batch either keeps computing layers for examples that have left (no saving) or
is split up anyway. Leaving is done from a forward hook on each layer, so the model's own forward
walks the layers whatever its family, and what ran is exactly what compbench's MAC counter sees.
``threshold`` 0 never exits early: every example runs every layer and the outputs equal the model's own.

A saved early-exit variant records its exits in its structure (``early_exit``: how many, the labels,
the pooling, the threshold) and gets them back on reload. Training the exits is the ``early_exit``
compressor's (:mod:`compbench.compressors.early_exit`).

Batched (``compbench_exit_batched``, text models): a batch runs together and shrinks as its examples leave.
After each exit, the confident examples' rows are dropped from the hidden states, and every later layer gets
only the rows still running (its attention mask sliced alike), so the batch costs the MACs of the examples
still in it; the model's head classifies the examples that reach it. Each example leaves where it would alone
(up to float rounding between a padded batch and an example alone).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from compbench.architectures.families import ModelAdapter
from compbench.counting.weights import INPUT_DEPENDENT_ATTRIBUTE
from compbench.surgery.structure import StructurePart, register_part

EXITS_ATTRIBUTE = "compbench_exits"  # the model's ModuleList of exits (saved with its weights)


class ExitHead(nn.Module):
    """Pool one layer's output, normalise, classify: the exit after that layer."""

    def __init__(self, hidden: int, labels: int, pooling: str):
        super().__init__()
        if pooling not in ("first", "mean"):
            raise ValueError(f"pooling must be first or mean, got {pooling!r}")
        self.pooling = pooling
        self.norm = nn.LayerNorm(hidden)
        self.dense = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, labels)

    def pool(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states[:, 0] if self.pooling == "first" else hidden_states.mean(dim=1)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.tanh(self.dense(self.norm(pooled))))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.classify(self.pool(hidden_states))


def row_entropy(values: list[float]) -> float:
    """Entropy (nats) of the softmax of one row of logits, in plain Python: a handful of labels costs
    microseconds here, where tensor ops would cost one dispatch each after every layer."""
    top = max(values)
    weights = [math.exp(v - top) for v in values]
    total = sum(weights)
    return math.log(total) - sum(w * (v - top) for w, v in zip(weights, values, strict=True)) / total


class _Exited(Exception):
    def __init__(self, logits: torch.Tensor, layer: int):
        super().__init__(layer)
        self.logits, self.layer = logits, layer


def layer_output(output) -> torch.Tensor:
    """A layer's hidden states, whether it returns a tensor or a tuple."""
    return output[0] if isinstance(output, tuple) else output


@dataclass
class ExitRun:
    """One example's result: its logits and the layer (1-based) it left after."""

    logits: torch.Tensor
    layer: int


def run_one(forward, layers: list[nn.Module], inputs: dict[str, torch.Tensor], exits: nn.ModuleList,
            threshold: float) -> ExitRun:
    """Run one example (a batch of 1) through ``forward`` until the first exit, after one of
    ``layers``, whose entropy is below ``threshold``; the model's own head if none is."""
    handles = []

    def hook_for(index: int):
        def hook(module, args, output):
            logits = exits[index](layer_output(output))
            if row_entropy(logits[0].tolist()) < threshold:
                raise _Exited(logits, index + 1)
        return hook

    for index, layer in enumerate(layers[:len(exits)]):
        handles.append(layer.register_forward_hook(hook_for(index)))
    try:
        return ExitRun(forward(**inputs).logits, len(layers))
    except _Exited as exited:
        return ExitRun(exited.logits, exited.layer)
    finally:
        for handle in handles:
            handle.remove()


def _rows(value, active: torch.Tensor, batch: int):
    """A layer's argument with only the rows still running: a tensor of the whole batch's rows (its attention
    mask) sliced to ``active``; anything else as it is (the hidden states are already the running rows)."""
    if torch.is_tensor(value) and value.dim() >= 2 and value.shape[0] == batch:
        return value.index_select(0, active.to(value.device))
    return value


def _running(output, keep: torch.Tensor):
    """A layer's output with only the rows in ``keep``."""
    if isinstance(output, tuple):
        return (output[0].index_select(0, keep.to(output[0].device)),) + output[1:]
    return output.index_select(0, keep.to(output.device))


def run_batch(forward, layers: list[nn.Module], inputs: dict[str, torch.Tensor], exits: nn.ModuleList,
              threshold: float) -> tuple[torch.Tensor, list[int]]:
    """Run a batch through ``forward``, dropping each example's rows at the first exit (after one of ``layers``)
    whose entropy is below ``threshold``: the batch's logits in its order, and the layer each example left
    after."""
    batch = next(iter(inputs.values())).shape[0]
    active = torch.arange(batch)  # the examples (indices into the batch) still running
    logits: list[torch.Tensor | None] = [None] * batch
    left = [len(layers)] * batch

    def slice_arguments(module, args, kwargs):
        if len(active) == batch:
            return None
        return (args[0], *(_rows(a, active, batch) for a in args[1:])), \
            {k: _rows(v, active, batch) for k, v in kwargs.items()}

    def exit_after(index: int):
        def hook(module, args, output):
            nonlocal active
            scores = exits[index](layer_output(output))
            confident = [row_entropy(values) < threshold for values in scores.tolist()]
            if not any(confident):
                return None
            for row, leaves in enumerate(confident):
                if leaves:
                    logits[int(active[row])], left[int(active[row])] = scores[row:row + 1], index + 1
            keep = torch.tensor([row for row, leaves in enumerate(confident) if not leaves], dtype=torch.long)
            active = active[keep]
            if not len(active):
                raise _Exited(scores, index + 1)  # every example has left: nothing more runs
            return _running(output, keep)
        return hook

    handles = [layer.register_forward_pre_hook(slice_arguments, with_kwargs=True) for layer in layers[1:]]
    handles += [layer.register_forward_hook(exit_after(i)) for i, layer in enumerate(layers[:len(exits)])]
    try:
        final = forward(**inputs).logits
        for row, example in enumerate(active.tolist()):
            logits[example] = final[row:row + 1]
    except _Exited:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return torch.cat(logits), left


def single_examples(inputs: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """Split a batch into batches of one, each without its padding (the positions its attention mask zeroes)."""
    size = next(iter(inputs.values())).shape[0]
    mask = inputs.get("attention_mask")
    examples = []
    for i in range(size):
        keep = None if mask is None else mask[i].bool()
        examples.append({k: v[i:i + 1] if keep is None or v.dim() != 2 or v.shape[1] != keep.shape[0]
                         else v[i:i + 1, keep] for k, v in inputs.items()})
    return examples


def exit_pooling(model: nn.Module) -> str:
    return "first" if ModelAdapter(model).modality == "text" else "mean"


def new_exits(model: nn.Module, labels: int) -> nn.ModuleList:
    """Untrained exits after layers 1 to L-1 of ``model``."""
    adapter = ModelAdapter(model)
    hidden = adapter.config.hidden_size
    return nn.ModuleList(ExitHead(hidden, labels, exit_pooling(model)) for _ in adapter.layers()[:-1])


class EarlyExitModel:
    """Mixed into a fine-tuned classifier's class: its forward runs one example at a time with early exit, or
    the batch together, shrinking as examples leave (``compbench_exit_batched``, a way of running it, not part
    of its structure).

    ``compbench_exit_layers`` holds, after each forward, the layer each example left after."""

    compbench_exit_threshold: float
    compbench_exit_layers: list[int]
    compbench_exit_batched: bool = False

    def forward(self, labels: torch.Tensor | None = None, **inputs) -> SequenceClassifierOutput:
        exits = getattr(self, EXITS_ATTRIBUTE)
        layers = ModelAdapter(self).layers()
        own_forward = super().forward
        if self.compbench_exit_batched:
            logits, self.compbench_exit_layers = run_batch(own_forward, layers, inputs, exits,
                                                           self.compbench_exit_threshold)
        else:
            runs = [run_one(own_forward, layers, example, exits, self.compbench_exit_threshold)
                    for example in single_examples(inputs)]
            self.compbench_exit_layers = [run.layer for run in runs]
            logits = torch.cat([run.logits for run in runs])
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


setattr(EarlyExitModel, INPUT_DEPENDENT_ATTRIBUTE, True)  # what runs depends on the input: count a real forward

_EARLY_EXIT_CLASSES: dict[type, type] = {}


def with_exits(model: nn.Module, exits: nn.ModuleList, threshold: float) -> nn.Module:
    """``model`` (changed in place) with ``exits`` as a submodule and early exit at ``threshold``."""
    cls = type(model)
    if isinstance(model, EarlyExitModel):
        cls = cls.__mro__[2]  # the classifier's own class, under EarlyExitModel
    if cls not in _EARLY_EXIT_CLASSES:
        _EARLY_EXIT_CLASSES[cls] = type(f"EarlyExit{cls.__name__}", (EarlyExitModel, cls), {})
    model.__class__ = _EARLY_EXIT_CLASSES[cls]
    setattr(model, EXITS_ATTRIBUTE, exits)
    model.compbench_exit_threshold = threshold
    model.compbench_exit_layers = []
    return model


def _describe(adapter: ModelAdapter) -> dict | None:
    """An exit after each of the first layers, and when to leave; None for a model without exits."""
    exits = getattr(adapter.model, EXITS_ATTRIBUTE, None)
    if exits is None:
        return None
    return {"exits": len(exits), "labels": adapter.config.num_labels,
            "pooling": exits[0].pooling if len(exits) else None,
            "threshold": adapter.model.compbench_exit_threshold}


def _rebuild(adapter: ModelAdapter, spec: dict) -> None:
    exits = nn.ModuleList(ExitHead(adapter.config.hidden_size, spec["labels"], spec["pooling"])
                          for _ in range(spec["exits"]))
    with_exits(adapter.model, exits, spec["threshold"])


register_part(StructurePart("early_exit", _describe, _rebuild))
