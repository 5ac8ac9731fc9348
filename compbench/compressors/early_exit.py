"""early_exit: exit classifiers after every layer, trained on the task with the backbone frozen; each
example leaves at the first confident exit (DeeBERT-style; the model is :mod:`compbench.surgery.exits`').

Exits after layers 1 to L-1 are trained on the task's train split with the backbone frozen (the
pooled layer outputs are computed once, then every exit learns from them with cross-entropy); the
fine-tuned model's own head stays the last exit. Its variants' cost depends on each input, so
they are measured example by example.

Training the exits does not depend on ``threshold``: exits trained once are kept for the process,
keyed by a hash of the model's state and the training options, so several thresholds of one model
(a curve) train once.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time

import torch
from torch import nn

from compbench.architectures.families import ModelAdapter
from compbench.cache import model_fingerprint
from compbench.compression.compressor import Compressor, Option, always_needs_task, register
from compbench.compression.context import Batch, CompressionContext, has_task_head
from compbench.errors import InvalidInputError
from compbench.eval_mode import evaluating
from compbench.surgery.exits import EarlyExitModel, exit_pooling, layer_output, new_exits, with_exits


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
    if data.output != "label":
        raise InvalidInputError(f"early_exit: task {data.task} transcribes speech, and an exit decides once per "
                                "utterance while a CTC head outputs a token per frame: early exit applies to "
                                "classification tasks only")
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


register(Compressor(
    name="early_exit", compress=add_early_exit, takes_amount=False, uses_context=True, needs_task=always_needs_task,
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
