"""Early exit (DeeBERT-style dynamic inference): a classifier after every layer, and a model that stops early.

An exit after layer ``k`` pools that layer's output (text: the first token, as DeeBERT; speech:
the mean over frames), normalises it and classifies it (``Linear + tanh``, then ``Linear`` to the
task's labels). Exits after layers 1 to L-1 are trained on the task's train split with the
backbone frozen; the fine-tuned model's own head stays the last exit.

At inference the model runs one example at a time: an example leaves at the first exit whose
prediction entropy (nats) is below ``threshold``, and the layers after it never run. One example at
a time, because examples of one batch would leave at different layers: a batch either keeps
computing layers for examples that have left (no saving) or is split up anyway. Leaving is done
from a forward hook on each layer, so the model's own forward walks the layers whatever its family,
and what ran is exactly what compbench's MAC counter sees. ``threshold`` 0 never exits early: every
example runs every layer and the outputs equal the model's own.

Training the exits does not depend on ``threshold``: exits trained once are kept for the process,
keyed by a hash of the model's state and the training options, so several thresholds of one model
(a curve) train once.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from dataclasses import dataclass

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from compbench.cache import model_fingerprint
from compbench.compressors.base import Compressor, Option, register
from compbench.compressors.context import Batch, CompressionContext, has_task_head
from compbench.compressors.structure import EXITS_ATTRIBUTE
from compbench.counting.weights import INPUT_DEPENDENT_ATTRIBUTE
from compbench.errors import InvalidInputError
from compbench.eval_mode import evaluating
from compbench.models.families import ModelAdapter


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


@torch.no_grad()
def pooled_layer_outputs(model: nn.Module, batches: list[Batch], exits: nn.ModuleList) -> list[torch.Tensor]:
    """Each exit's pooled input over the batches: ``[(examples, hidden) per exit]`` (one forward per batch)."""
    layers = ModelAdapter(model).layers()
    pooled: list[list[torch.Tensor]] = [[] for _ in exits]
    handles = [layer.register_forward_hook(
        lambda module, args, output, i=i: pooled[i].append(exits[i].pool(layer_output(output)).detach()))
        for i, layer in enumerate(layers[:len(exits)])]
    try:
        with evaluating(model):
            for batch in batches:
                model(**batch.inputs)
    finally:
        for handle in handles:
            handle.remove()
    return [torch.cat(rows) for rows in pooled]


def train_exits(exits: nn.ModuleList, features: list[torch.Tensor], labels: torch.Tensor, epochs: int,
                batch_size: int, learning_rate: float, seed: int) -> list[float]:
    """Train every exit on its pooled features with cross-entropy (AdamW); the final loss of each exit."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(exits.parameters(), lr=learning_rate)
    exits.train()
    count = labels.shape[0]
    for _ in range(epochs):
        order = torch.randperm(count, generator=generator)
        for start in range(0, count, batch_size):
            index = order[start:start + batch_size]
            optimizer.zero_grad()
            loss = sum(nn.functional.cross_entropy(exit.classify(feature[index]), labels[index])
                       for exit, feature in zip(exits, features, strict=True))
            loss.backward()
            optimizer.step()
    exits.eval()
    with torch.no_grad():
        return [float(nn.functional.cross_entropy(exit.classify(feature), labels))
                for exit, feature in zip(exits, features, strict=True)]


class EarlyExitModel:
    """Mixed into a fine-tuned classifier's class: its forward runs one example at a time with early exit.

    ``compbench_exit_layers`` holds, after each forward, the layer each example left after."""

    compbench_exit_threshold: float
    compbench_exit_layers: list[int]

    def forward(self, labels: torch.Tensor | None = None, **inputs) -> SequenceClassifierOutput:
        exits = getattr(self, EXITS_ATTRIBUTE)
        layers = ModelAdapter(self).layers()
        own_forward = super().forward
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


_TRAINING_OPTIONS = ("epochs", "batch_size", "examples", "learning_rate")
_TRAINED: dict[str, tuple[nn.ModuleList, list[float], int]] = {}  # training key -> (exits, losses, examples)
_TRAINED_KEPT = 16  # exits are a few MB each; a study of three operators trains them on at most 5 models


def _trained_exits(model: nn.Module, options: dict, context: CompressionContext):
    """Exits trained on ``model``'s layer outputs; from the process's cache for a model and options seen before."""
    data = context.require_data("early_exit")
    training = {name: options[name] for name in _TRAINING_OPTIONS}
    key = hashlib.sha256(repr((model_fingerprint(model), training, context.seed, data.task, data.task_version,
                                list(data.labels))).encode()).hexdigest()
    if key in _TRAINED:
        _TRAINED[key] = _TRAINED.pop(key)  # the most recently used is kept longest
        exits, losses, examples = _TRAINED[key]
        return copy.deepcopy(exits), losses, examples, True
    with torch.random.fork_rng(devices=[]):  # the exits' initial weights are seeded; the caller's RNG is untouched
        torch.manual_seed(context.seed)
        exits = new_exits(model, len(data.labels)).to(next(model.parameters()).device)
    batches = context.calibration(math.ceil(options["examples"] / options["batch_size"]), options["batch_size"])
    features = pooled_layer_outputs(model, batches, exits)
    labels = torch.cat([batch.labels for batch in batches])
    losses = train_exits(exits, features, labels, options["epochs"], options["batch_size"],
                         options["learning_rate"], context.seed)
    while len(_TRAINED) >= _TRAINED_KEPT:
        _TRAINED.pop(next(iter(_TRAINED)))
    _TRAINED[key] = (copy.deepcopy(exits), losses, int(labels.shape[0]))
    return exits, losses, int(labels.shape[0]), False


def add_early_exit(model: nn.Module, amount, options: dict, context: CompressionContext):
    """A copy of the fine-tuned ``model`` with trained exits after layers 1 to L-1, leaving at ``threshold``."""
    started = time.perf_counter()
    data = context.require_data("early_exit")
    if not has_task_head(model, data):
        raise InvalidInputError(f"early_exit needs a model fine-tuned on {data.task} (a head for its labels): "
                                "the model's own head is the last exit")
    if isinstance(model, EarlyExitModel):
        raise InvalidInputError("early_exit: the model already has exits; apply early_exit once per pipeline")
    if options["threshold"] < 0 or options["epochs"] < 1 or options["batch_size"] < 1 or options["examples"] < 1:
        raise InvalidInputError("early_exit: threshold must be >= 0; epochs, batch_size and examples >= 1")
    if not options["learning_rate"] > 0:
        raise InvalidInputError(f"early_exit: learning_rate must be > 0, got {options['learning_rate']:g}")
    variant = copy.deepcopy(model).eval()
    exits, losses, examples, reused = _trained_exits(variant, options, context)
    with_exits(variant, exits, options["threshold"])
    return variant, {
        "threshold": options["threshold"], "exits_after_layers": list(range(1, len(exits) + 1)),
        "last_exit": "the model's own head", "pooling": exit_pooling(model), "exit_train_loss": losses,
        "data": context.data_seen("train", examples, epochs=options["epochs"]),
        "exits_reused": reused,  # trained earlier in this process for the same model and training options
        "seconds": round(time.perf_counter() - started, 2),
    }


def _always(options: dict) -> bool:
    return True


register(Compressor(
    name="early_exit", compress=add_early_exit, takes_amount=False, uses_context=True, needs_task=_always,
    curve_option="threshold", input_dependent=True, accepts_quantized=True,
    description="exit classifiers after every layer (backbone frozen); each example stops at the first "
                "confident exit (input-dependent cost, measured per example)",
    options={
        "threshold": Option(float, 0.5, "leave at the first exit whose prediction entropy (nats) is below this; "
                            "0 never leaves early"),
        "epochs": Option(int, 10, "passes over the exits' training examples"),
        "batch_size": Option(int, 32, "examples per optimizer step"),
        "examples": Option(int, 100_000, "train examples the exits learn from (at most the split)"),
        "learning_rate": Option(float, 1e-3, "AdamW learning rate of the exits"),
    }))
