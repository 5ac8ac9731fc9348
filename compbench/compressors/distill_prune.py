"""distill_prune: joint distillation and structured pruning of a speech model (DPHuBERT, Peng et al., Interspeech
2023), to a target fraction of its MACs.

A student, initialised from the input model, learns to reproduce the input model's (the teacher's) hidden
states while hard-concrete gates (:mod:`compbench.importance.hard_concrete`) decide which of its units stay:
the CNN feature encoder's convolution channels, each layer's attention heads and its whole attention block, each
layer's FFN neurons and its whole FFN block. The loss is

    distillation + lambda1 * (e - t) + lambda2 * (e - t) ** 2

where ``e`` is the student's expected MACs as a fraction of the teacher's (exact and differentiable in the gates'
probabilities: :class:`~compbench.surgery.unit_costs.ModelCosts`, at the task's mean input length), ``t`` the
target, ramped linearly from the gates' starting expectation to ``target`` over the first ``warmup`` of the steps
(starting from 1 instead, the multipliers would first push every gate open), and the two Lagrange multipliers
are maximised (gradient ascent at ``reg_lr``) while the gates' ``log_alpha`` (at ``reg_lr``) and
the student's weights (at ``lr``) descend, all under AdamW with linear warm-up and decay. The distillation loss
is L1 plus -log sigmoid(cosine) per frame between a linear prediction of each of ``distill_layers`` (started
at the identity) and the teacher's same layer, summed over those layers.

Then the gates are made hard (as many units stay in a layer as its gates expect, those of the largest
``log_alpha``: :meth:`GateSet.hard`), the kept units' gate values are folded into the weights that read them (a
convolution's input channels, the output projections' columns; the last convolution's channels feed the feature
projection's LayerNorm, which no scale folds into: they keep values of 1), the other units are removed (a layer
whose attention or FFN gate closes loses every head or neuron, keeping only that block's output bias), and an
optional final distillation (``final_distill_steps``) goes on without gates. Task-agnostic: it reads the task's
train audio, never its labels; the task head is kept, untrained (fine-tune it afterwards:
``compbench finetune --model VARIANT``).

Removal computes what the hard-gated model computes, but where a LayerNorm normalises channels together: the
last convolution's (the feature projection's LayerNorm), and every convolution's in ``feat_extract_norm: layer``
models (wav2vec2-large, WavLM-large, data2vec-audio); removing one of those (as DPHuBERT does) is close to, not the
same as, gating it to 0; the final distillation, or the fine-tune after, absorbs the difference.
"""

from __future__ import annotations

import copy
import time

import torch
from torch import nn

from compbench.architectures.families import InputSpec, ModelAdapter
from compbench.compression.compressor import Compressor, Option, always_needs_task, register
from compbench.compression.context import Batch, CompressionContext
from compbench.compression.losses import TRAINING_OFF, hidden_loss, target_layers
from compbench.counting.macs import count_macs
from compbench.counting.weights import has_quantized_weights
from compbench.errors import InvalidInputError
from compbench.importance.gates import CHANNELS, HEADS, NEURONS, UnitGates, remove_units, valid_positions
from compbench.importance.hard_concrete import HardConcrete
from compbench.schedule import warmup_then_linear_decay
from compbench.surgery.conv_channels import conv_channels, conv_layers, keep_conv_channels
from compbench.surgery.unit_costs import ModelCosts, model_costs
from compbench.surgery.units import heads_in_layer

DEFAULT_DISTILL_LAYERS = 3  # evenly spaced layers, the last one last (DistilHuBERT's and DPHuBERT's 4, 8, 12)
LOSS_WINDOW = 20  # final losses: the mean over this many last steps
START_KEEP = 0.95  # every gate starts with this probability of not being zero


class GateSet(nn.Module):
    """Hard-concrete gates on a speech model's units: channels per convolution; heads and a whole-block gate per
    attention; neurons and a whole-block gate per FFN."""

    def __init__(self, adapter: ModelAdapter, generator: torch.Generator):
        super().__init__()
        layers = range(len(adapter.layers()))

        def gates(counts):
            return nn.ModuleList(HardConcrete(n, START_KEEP, generator) for n in counts)
        self.channels = gates(conv_channels(adapter))
        self.heads = gates(heads_in_layer(adapter, i) for i in layers)
        self.attention = gates(1 for _ in layers)
        self.neurons = gates(adapter.ffn(i)[0].out_features for i in layers)
        self.ffn = gates(1 for _ in layers)

    def values(self) -> dict[str, list[torch.Tensor]]:
        """The gates UnitGates applies (sampled in training, deterministic otherwise): a head's or a neuron's gate
        times its block's."""
        return {CHANNELS: [g() for g in self.channels],
                HEADS: [g() * block() for g, block in zip(self.heads, self.attention, strict=True)],
                NEURONS: [g() * block() for g, block in zip(self.neurons, self.ffn, strict=True)]}

    def expected(self) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Expected heads and neurons kept per layer (a block's probability times its units') and channels kept
        per convolution: what :meth:`ModelCosts.macs` reads."""
        heads = [g.expected_kept() * block.expected_kept() for g, block in zip(self.heads, self.attention,
                                                                                strict=True)]
        neurons = [g.expected_kept() * block.expected_kept() for g, block in zip(self.neurons, self.ffn,
                                                                                  strict=True)]
        return heads, neurons, [g.expected_kept() for g in self.channels]

    def hard(self) -> tuple[dict[str, list[list[int]]], list[list[int]], dict[str, list[torch.Tensor]]]:
        """The units that stay once the gates are hard: ``({heads, neurons}: per layer, channels per convolution,
        their gate values)``. As many heads (neurons) stay in a layer as its gates expect, its block's probability
        times its units' expected count, rounded: those of the largest ``log_alpha``, at their deterministic
        values times the block's (:meth:`HardConcrete.deterministic`); a convolution keeps at least one channel,
        the last convolution's at 1 (a LayerNorm reads them). The removed model computes what the model gated with
        these values computes."""
        kept: dict[str, list[list[int]]] = {HEADS: [], NEURONS: []}
        values: dict[str, list[torch.Tensor]] = {HEADS: [], NEURONS: [], CHANNELS: []}
        with torch.no_grad():
            heads, neurons, channel_counts = self.expected()
            for kind, units, blocks, expected in ((HEADS, self.heads, self.attention, heads),
                                                  (NEURONS, self.neurons, self.ffn, neurons)):
                for gate, block, count in zip(units, blocks, expected, strict=True):
                    chosen = gate.largest(int(round(float(count))))
                    value = torch.zeros_like(gate.log_alpha)
                    value[chosen] = (gate.open_values() * block.open_values())[chosen]
                    kept[kind].append(chosen)
                    values[kind].append(value)
            channels = []
            for layer, (gate, count) in enumerate(zip(self.channels, channel_counts, strict=True)):
                chosen = gate.largest(max(1, int(round(float(count)))))
                value = torch.zeros_like(gate.log_alpha)
                last = layer == len(self.channels) - 1  # read by a LayerNorm: no scale folds into it
                value[chosen] = 1.0 if last else gate.open_values()[chosen]
                channels.append(chosen)
                values[CHANNELS].append(value)
        return kept, channels, values


def _fold_channel_values(adapter: ModelAdapter, values: list[torch.Tensor]) -> None:
    """Multiply each convolution's input channels by the previous convolution's kept gate values (what the gate
    did to them); the last convolution's channels, which the feature projection's LayerNorm reads, have values
    of 1 (:meth:`GateSet.hard`)."""
    convolutions = conv_layers(adapter)
    with torch.no_grad():
        for layer, value in enumerate(values[:-1]):
            weight = convolutions[layer + 1].conv.weight
            weight.mul_(value.to(weight.dtype)[None, :, None])


def remove_closed_units(gates: UnitGates, gate_set: GateSet) -> tuple[list[int], list[int], list[list[int]]]:
    """Make the gates hard (:meth:`GateSet.hard`), fold the kept units' values into the weights that read them and
    remove the others from ``gates``' model; the heads and neurons kept per layer and the channels removed per
    convolution."""
    adapter = gates.adapter
    kept, channels, values = gate_set.hard()
    gates.values = {HEADS: values[HEADS], NEURONS: values[NEURONS]}
    remove_units(gates, kept, fold_gates=True)
    _fold_channel_values(adapter, values[CHANNELS])
    removed = []
    for layer, (keep, width) in enumerate(zip(channels, conv_channels(adapter), strict=True)):
        removed.append(sorted(set(range(width)) - set(keep)))
        if len(keep) < width:
            keep_conv_channels(adapter, layer, keep)
    return [len(units) for units in kept[HEADS]], [len(units) for units in kept[NEURONS]], removed


def _target_at(step: int, total: int, start: float, options: dict) -> float:
    """The target the multipliers drive the expected MACs to at ``step``: from ``start`` (the gates' expected MACs
    before training, so the multipliers do not first push every gate open) down to ``target`` over the first
    ``warmup`` of the steps, then ``target``."""
    ramp = max(1, int(options["warmup"] * total))
    return start - (start - options["target"]) * min(1.0, step / ramp)


class _Distiller:
    """The teacher's chosen hidden states and the student's linear predictions of them."""

    def __init__(self, student: nn.Module, teacher: nn.Module, layers: list[int]):
        self.student, self.teacher, self.layers = student, teacher, layers
        self.teacher_adapter = ModelAdapter(teacher)
        width = student.config.hidden_size
        self.heads = nn.ModuleList(nn.Linear(width, width) for _ in layers)
        for head in self.heads:  # the student starts as the teacher: predictions start as the identity
            nn.init.eye_(head.weight)
            nn.init.zeros_(head.bias)

    def loss(self, batch, cosine_weight: float, precision: str) -> torch.Tensor:
        device = next(self.student.parameters()).device
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            with torch.no_grad():
                taught = self.teacher(**batch.inputs, output_hidden_states=True).hidden_states
            learnt = self.student(**batch.inputs, output_hidden_states=True).hidden_states
        mask = batch.inputs.get("attention_mask")
        if mask is not None:
            mask = valid_positions(self.teacher_adapter, batch, learnt[-1].shape[1]).to(learnt[-1].device)
        return sum(hidden_loss(head(learnt[layer].float()), taught[layer], mask, cosine_weight)[0]
                   for head, layer in zip(self.heads, self.layers, strict=True))


def _batches(context: CompressionContext, batch_size: int, seed: int):
    """Train minibatches without end, a new shuffle each pass; labels dropped (the method is task-agnostic)."""
    data, epoch = context.data, 0
    while True:
        for batch in data.batches("train", batch_size, seed + epoch):
            yield Batch(batch.inputs)  # no labels
        epoch += 1


def _prune(distiller: _Distiller, gates: UnitGates, gate_set: GateSet, costs: ModelCosts, options: dict,
           context: CompressionContext, stream) -> dict:
    """The pruning phase: distillation plus the Lagrangian of the expected MACs, ``options['steps']`` steps."""
    total, dense = options["steps"], float(costs.total)
    lambdas = nn.Parameter(torch.zeros(2))
    weights = [p for p in list(distiller.student.parameters()) + list(distiller.heads.parameters())
               if p.requires_grad]
    optimizer = torch.optim.AdamW([
        {"params": weights, "lr": options["lr"], "weight_decay": 0.0},
        {"params": list(gate_set.parameters()), "lr": options["reg_lr"], "weight_decay": 0.0},
        {"params": [lambdas], "lr": options["reg_lr"], "weight_decay": 0.0}])
    schedule = warmup_then_linear_decay(optimizer, 0.05, total)
    history = []
    with torch.no_grad():
        start = float(costs.macs(*gate_set.expected()) / dense)
    gate_set.train()
    with gates:
        for step in range(total):
            batch = next(stream).to(context.device)
            gates.values = gate_set.values()
            distillation = distiller.loss(batch, options["cosine_weight"], options["precision"])
            expected = costs.macs(*gate_set.expected()) / dense
            target = _target_at(step, total, start, options)
            gap = expected - target
            regulariser = lambdas[0] * gap + lambdas[1] * gap ** 2
            (distillation + regulariser).backward()
            lambdas.grad.neg_()  # the multipliers ascend: the Lagrangian is maximised over them
            nn.utils.clip_grad_norm_(weights, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            lambda1, lambda2 = lambdas.detach().tolist()
            history.append({"distillation": float(distillation.detach()), "expected_macs": float(expected.detach()),
                            "target": target, "lambda1": lambda1, "lambda2": lambda2})
            if context.progress is not None:
                context.progress(f"distill_prune step {step + 1}/{total} expected MACs {float(expected.detach()):.3f} "
                                 f"(target {target:.3f})", (step + 1) / total)
    gate_set.eval()
    with torch.no_grad():
        final = float(costs.macs(*gate_set.expected()) / dense)
    return {"first": history[0], "final": _mean_of_last(history), "steps": total, "expected_macs_fraction": final}


def _distill_only(distiller: _Distiller, options: dict, context: CompressionContext, stream) -> dict:
    """The final distillation of the pruned student, without gates."""
    total = options["final_distill_steps"]
    weights = [p for p in list(distiller.student.parameters()) + list(distiller.heads.parameters())
               if p.requires_grad]
    optimizer = torch.optim.AdamW(weights, lr=options["lr"], weight_decay=0.0)
    schedule = warmup_then_linear_decay(optimizer, 0.05, total)
    history = []
    for step in range(total):
        loss = distiller.loss(next(stream).to(context.device), options["cosine_weight"],
                              options["precision"])
        loss.backward()
        nn.utils.clip_grad_norm_(weights, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        history.append({"distillation": float(loss.detach())})
        if context.progress is not None:
            context.progress(f"distill_prune final distillation {step + 1}/{total}", (step + 1) / total)
    return {"first": history[0], "final": _mean_of_last(history), "steps": total}


def _mean_of_last(history: list[dict]) -> dict:
    window = history[-LOSS_WINDOW:]
    return {name: round(sum(h[name] for h in window) / len(window), 6) for name in window[0]}


def _check(model, options: dict, adapter: ModelAdapter) -> list[int]:
    """Refuse what the method cannot do; the teacher hidden-state indices to distil."""
    if adapter.modality != "speech":
        raise InvalidInputError(f"distill_prune prunes a speech model's convolution channels, heads and neurons; "
                                f"{adapter.config.model_type} is a text model")
    if has_quantized_weights(model) or not all(p.dtype == torch.float32 for p in model.parameters()):
        raise InvalidInputError("distill_prune trains float32 weights: put int8_dynamic, bf16 or fp16 after it")
    if not 0 < options["target"] < 1:
        raise InvalidInputError(f"distill_prune: target (the fraction of the MACs kept) must be in (0, 1), "
                                f"got {options['target']}")
    for name in ("steps", "batch_size"):
        if options[name] < 1:
            raise InvalidInputError(f"distill_prune: {name} must be >= 1, got {options[name]}")
    if options["final_distill_steps"] < 0:
        raise InvalidInputError("distill_prune: final_distill_steps must be >= 0")
    if not 0 <= options["warmup"] <= 1 or options["lr"] <= 0 or options["reg_lr"] <= 0:
        raise InvalidInputError("distill_prune: warmup must be in [0, 1], lr and reg_lr > 0")
    count = len(adapter.layers())
    layers = options["distill_layers"]
    if layers is None:
        return target_layers(count, min(DEFAULT_DISTILL_LAYERS, count))
    if not layers or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= count for i in layers):
        raise InvalidInputError(f"distill_prune: distill_layers must be hidden-state indices 0..{count} "
                                f"(0: the input to the first layer), got {layers!r}")
    return list(layers)


def distill_prune(model, amount, options: dict, context: CompressionContext):
    started = time.perf_counter()
    data = context.require_data("distill_prune")
    adapter = ModelAdapter(model)
    layers = _check(model, options, adapter)
    seed = context.seed if options["seed"] is None else options["seed"]
    spec = InputSpec("speech", round(data.mean_input_size("train"), 3))
    teacher = ModelAdapter(_frozen_copy(model)).base
    costs = model_costs(model, spec)
    channels_before = list(costs.channels)
    heads_before = list(costs.dense_heads)
    neurons_before = list(costs.dense_neurons)
    home = next(model.parameters()).device
    saved = {name: getattr(model.config, name) for name in TRAINING_OFF if hasattr(model.config, name)}
    for name in saved:
        setattr(model.config, name, TRAINING_OFF[name])
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    seconds = {"counting": time.perf_counter() - started}
    try:
        model.to(context.device).train()
        teacher.to(context.device).eval()
        distiller = _Distiller(adapter.base, teacher, layers)
        distiller.heads.to(context.device)
        gate_set = GateSet(adapter, torch.Generator().manual_seed(seed))
        gates = UnitGates(adapter, (HEADS, NEURONS, CHANNELS))
        stream = _batches(context, options["batch_size"], seed)
        mark = time.perf_counter()
        pruning = _prune(distiller, gates, gate_set, costs, options, context, stream)
        seconds["pruning"] = time.perf_counter() - mark

        mark = time.perf_counter()
        hard_heads, hard_neurons, removed_channels = remove_closed_units(gates, gate_set)
        expected_hard = costs.macs(hard_heads, hard_neurons, [width - len(r) for width, r in zip(
            costs.channels, removed_channels, strict=True)])
        seconds["removal"] = time.perf_counter() - mark

        final = None
        if options["final_distill_steps"]:
            mark = time.perf_counter()
            final = _distill_only(distiller, options, context, stream)
            seconds["final_distillation"] = time.perf_counter() - mark
    finally:
        torch.random.set_rng_state(generator_state)
        for name, value in saved.items():
            setattr(model.config, name, value)
    model.eval().to(home)
    after = count_macs(model, adapter.build_inputs(spec, "meta"), adapter.component_of)
    seconds["total"] = time.perf_counter() - started
    steps = options["steps"] + options["final_distill_steps"]
    return model, {
        "macs_at": spec.describe(), "distill_layers": layers,
        "model_macs": {"before": costs.total, "target": round(options["target"] * costs.total),
                       "expected": round(pruning["expected_macs_fraction"] * costs.total),
                       "expected_hard": int(expected_hard), "after": after.total,
                       "kept_fraction": after.total / costs.total},
        "heads_before": heads_before, "heads_after": hard_heads,
        "neurons_before": neurons_before, "neurons_after": hard_neurons,
        "attention_blocks_kept": sum(1 for n in hard_heads if n), "ffn_blocks_kept": sum(1 for n in hard_neurons if n),
        "channels_before": channels_before, "channels_after": conv_channels(adapter),
        "removed_channels": removed_channels,
        "losses": {"pruning": pruning, "final_distillation": final},
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "removed": round(1 - after.total / costs.total, 4), "unit": "fraction of the model's MACs removed",
        "data": context.data_seen("train", steps * options["batch_size"], steps=steps,
                                  batch_size=options["batch_size"], labels_used=False, seed=seed),
    }


def _frozen_copy(model) -> nn.Module:
    teacher = copy.deepcopy(model)
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


register(Compressor(
    name="distill_prune", compress=distill_prune, takes_amount=False, uses_context=True, needs_task=always_needs_task,
    curve_option="target",
    description="DPHuBERT: distil the speech model into itself while hard-concrete gates on convolution channels, "
                "heads, attention blocks, neurons and FFN blocks are driven to a MAC target by Lagrange "
                "multipliers; then the closed units are removed (reads the task's train audio, not its labels)",
    options={
        "target": Option(float, 0.5, "fraction of the model's MACs kept (at the task's mean input length)"),
        "steps": Option(int, 1000, "steps of the pruning phase"),
        "lr": Option(float, 2e-4, "peak learning rate of the student's weights (AdamW)"),
        "reg_lr": Option(float, 0.1, "peak learning rate of the gates' log_alpha and of the multipliers' ascent "
                         "(DPHuBERT: 0.02 over tens of thousands of steps)"),
        "warmup": Option(float, 0.3, "fraction of the pruning steps over which the target ramps from 1"),
        "distill_layers": Option((list, type(None)), None, "hidden-state indices distilled (0: the first layer's "
                                 "input); default three evenly spaced, the last layer last"),
        "final_distill_steps": Option(int, 0, "steps of distillation after the units are removed"),
        "cosine_weight": Option(float, 1.0, "lambda of -log sigmoid(cosine) beside L1"),
        "batch_size": Option(int, 8, "examples per step"),
        "precision": Option(str, "fp32", "bf16 runs the teacher's and the student's forward passes under bfloat16 "
                            "autocast (the gates and the MACs stay float32)", choices=("fp32", "bf16")),
        "seed": Option((int, type(None)), None, "seeds the gates' samples, the order of the train examples and "
                       "the student's training (default: the context's seed)"),
    }))
