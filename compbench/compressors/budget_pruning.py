"""budget_pruning: remove heads and FFN neurons until a MAC budget is met, in one shot, with no retraining.

``amount`` is the fraction of the *encoder's* MACs to remove (the attention and FFN components of
the Transformer layers), counted by compbench's counter at the task's mean input length (mean
tokens of the train split after tokenisation, or its mean seconds of audio) with batch 1. That
is the only part head and neuron pruning can touch: a speech model's CNN feature encoder (about
a third of wav2vec2-base's MACs at 1 s, more of distilhubert's), the embeddings and the
classifier keep their MACs, so the whole model's MACs fall by less. The manifest records both:
``encoder_macs`` (before, target, after) and ``model_macs`` (before, after).

The MAC cost of one head and of one neuron in each layer is the counter's difference when one is
removed (a head: its q/k/v rows, its output columns and its share of the two attention matmuls;
a neuron: one row and one column). Encoder MACs are linear in the heads and neurons kept, so the
budget is met to within one unit's cost.

Importance (``importance``):

- ``trajectory`` (OPTIN, Khaki & Plataniotis 2024): each unit masked in turn on the calibration
  batch, scored by what it changes in every later layer's FFN output and in the logits; see
  :mod:`compbench.importance.trajectory`. Needs no labels.
- ``fisher`` (Kwon et al. 2022): squared gradients of the task loss with respect to each unit's
  mask, summed over ``batches`` minibatches. Needs a classifier fine-tuned on the task.
- ``magnitude``: the weight norms head and FFN pruning use (:mod:`compbench.importance.magnitude`),
  normalised per layer; these are not comparable between heads and neurons, so instead of the search
  below the heads keep the same fraction of their MACs as the encoder (a baseline).

Search (Kwon et al.'s mask search): for every number of heads kept (the best-scored heads,
after ``min_heads_per_layer`` per layer), the best-scored neurons fill what is left of the budget
(after ``min_neurons_per_layer`` per layer); the split that keeps the largest total importance
wins. A layer may lose every head or every neuron (minimum 0): its attention or FFN block then
adds only its output bias. ``rearrange`` and ``mask_tuning`` are Kwon et al.'s two refinements
(:mod:`compbench.importance.mask_tuning`); tuned scales are folded into the output projections.
Finally the units are removed with the same slicing as head and FFN pruning, so MACs and latency
fall for real.

``scope: all`` (speech models) puts the CNN feature encoder's convolution channels in the budget too:
``amount`` is then the fraction of the feature encoder's, attention's and FFN's MACs together (the
prunable MACs; the manifest's ``prunable_macs``). A channel's cost is not its own (a convolution's MACs
are its output channels times its input channels), so the search tries every convolution keeping the
same fraction of its channels, its best-scored ones (:func:`split_whole_budget`), each fraction's MACs
counted exactly, heads and neurons filling what is left. Channels are scored by ``fisher`` (a gate on
each channel, the same task loss as the heads and neurons) or, with ``magnitude``, every kind loses
``amount`` of its MACs; the trajectory scores heads and neurons only. The channels are removed as
``conv_pruning`` removes them, so a saved variant reloads from its config.

``align`` (a number, or ``auto``: what this machine's kernels run fastest at) makes the search keep every
layer's heads, neurons (and channels) in multiples of it, or whole: units are kept a block at a time (a layer's
best ``align`` units, then its next best), so the budget is still met within one block's MACs. A number, like
``auto``, counts elements of the products' widths (one per neuron or channel, a head's size per head: with
64-wide heads, any alignment dividing 64 leaves heads as they are, 128 keeps them in pairs).
"""

from __future__ import annotations

import time

import torch

from compbench.architectures.families import InputSpec, ModelAdapter
from compbench.compression.compressor import Compressor, Option, always_needs_task, register
from compbench.compression.context import CompressionContext, examples_in, has_task_head, task_loss
from compbench.counting.macs import count_macs
from compbench.errors import InvalidInputError
from compbench.importance.gates import CHANNELS, HEADS, KINDS, NEURONS, Kept, UnitGates, gate_gradients, remove_units
from compbench.importance.magnitude import conv_channel_magnitude, head_magnitude, neuron_magnitude
from compbench.importance.mask_tuning import rearrange, tune_masks
from compbench.importance.ranking import resolve_align, units_for
from compbench.importance.trajectory import trajectory_importance
from compbench.surgery.conv_channels import at_ratio, conv_channels, conv_macs, keep_best_channels, kept_channels
from compbench.surgery.unit_costs import ENCODER_COMPONENTS, FEATURE_ENCODER, UnitCosts, encoder_macs, unit_costs
from compbench.surgery.units import head_dim

CHANNEL_RATIO_STEPS = 64  # scope all: the channels' keep-ratios tried between 0 and 1


def _ranked(scores: list[torch.Tensor], minimum: int, align: int = 1) -> tuple[list[tuple[int, list[int], float]], int]:
    """(layer, units, score) in the order units are kept, a block of ``align`` units at a time (each layer's best
    first; its last block the rest of the layer, where ``align`` does not divide it), so every layer keeps a
    multiple of ``align`` units or all of them: each layer's blocks that hold its best ``minimum`` units first,
    then blocks by their summed score (the scores are not negative, so a layer's blocks stay in its order); and
    how many blocks the minimum forces."""
    forced, rest = [], []
    for layer, values in enumerate(scores):
        order = sorted(range(len(values)), key=lambda u: (-float(values[u]), u))
        for start in range(0, len(order), align):
            units = order[start:start + align]
            block = (layer, units, sum(float(values[u]) for u in units))
            (forced if start < minimum else rest).append(block)
    rest.sort(key=lambda item: (-item[2], item[0], item[1][0]))
    return forced + rest, len(forced)


def _prefix_sums(values: list[float]) -> torch.Tensor:
    return torch.cumsum(torch.as_tensor([0.0] + values, dtype=torch.float64), 0)




def split_budget(scores: dict[str, list[torch.Tensor]], costs: UnitCosts, budget: float,
                 minimum: dict[str, int], heads_fraction: float | None = None,
                 align: dict[str, int] | None = None) -> tuple[Kept, dict]:
    """Units to keep per kind and layer so the kept encoder MACs are at most ``budget``.

    Every number of heads kept is tried (or only the one keeping ``heads_fraction`` of the heads'
    MACs); neurons fill the rest; the split with the largest total kept score wins. With ``align`` (units per
    kind), units are kept a block of that many at a time (:func:`_ranked`), so every layer keeps a multiple of
    it (or all its units) and the budget is met within one block."""
    align = align or {}
    ranked, forced = {}, {}  # per kind: blocks in the order they are kept, and how many the minimum forces
    for kind in KINDS:
        ranked[kind], forced[kind] = _ranked(scores[kind], minimum[kind], align.get(kind) or 1)
    cost = {kind: _prefix_sums([costs.of(kind)[layer] * len(units) for layer, units, _ in ranked[kind]])
            for kind in KINDS}
    value = {kind: _prefix_sums([score for _, _, score in ranked[kind]]) for kind in KINDS}
    if float(cost[HEADS][forced[HEADS]] + cost[NEURONS][forced[NEURONS]]) > budget:
        raise InvalidInputError(f"budget_pruning: the budget cannot keep min_heads_per_layer={minimum[HEADS]} "
                                f"and min_neurons_per_layer={minimum[NEURONS]}; lower the amount or the minimums")
    if heads_fraction is None:
        candidates = range(forced[HEADS], len(ranked[HEADS]) + 1)
    else:
        allowed = heads_fraction * float(cost[HEADS][-1])
        fits = int(torch.searchsorted(cost[HEADS], torch.tensor(allowed, dtype=torch.float64), right=True)) - 1
        candidates = [max(forced[HEADS], fits)]
    best = None
    tried = 0
    for heads in candidates:
        left = budget - float(cost[HEADS][heads])
        if left < float(cost[NEURONS][forced[NEURONS]]):
            break  # more heads only leave less
        neurons = int(torch.searchsorted(cost[NEURONS], torch.tensor(left, dtype=torch.float64), right=True)) - 1
        total = float(value[HEADS][heads] + value[NEURONS][neurons])
        tried += 1
        if best is None or total > best[0]:
            best = (total, heads, neurons)
    _, heads, neurons = best
    kept: dict[str, list[list[int]]] = {kind: [[] for _ in scores[kind]] for kind in KINDS}
    for kind, count in ((HEADS, heads), (NEURONS, neurons)):
        for layer, units, _ in ranked[kind][:count]:
            kept[kind][layer].extend(units)
    kept = {kind: [sorted(units) for units in layers] for kind, layers in kept.items()}
    return kept, {"heads_kept": sum(map(len, kept[HEADS])), "neurons_kept": sum(map(len, kept[NEURONS])),
                  "splits_tried": tried, "kept_score": best[0],
                  "kept_cost": float(cost[HEADS][heads] + cost[NEURONS][neurons])}



def split_whole_budget(scores: dict[str, list[torch.Tensor]], channel_scores: list[torch.Tensor], costs: UnitCosts,
                       config, samples: int, budget: float, minimum: dict[str, int],
                       align: dict[str, int] | None = None) -> tuple[Kept, list[int], dict]:
    """``scope: all``: units to keep per kind and layer, and channels per convolution layer, so the kept MACs
    of the convolutions, attention and FFN blocks are at most ``budget``.

    A channel's cost is not its own (a convolution's MACs are its output channels times its input channels,
    the previous layer's outputs), so the channels are not ranked one by one: every convolution keeps the
    same fraction of its channels (at least one), its best-scored ones, and each of
    :data:`CHANNEL_RATIO_STEPS` + 1 fractions is tried, its convolutions' MACs counted exactly; heads and
    neurons split what is left (:func:`split_budget`). The try with the largest total kept score wins. With
    ``align``, channels as well as heads and neurons are kept in multiples (per kind)."""
    align = align or {}
    widths = [len(s) for s in channel_scores]
    ranked = [torch.sort(s.double(), descending=True).values for s in channel_scores]
    value_of = [_prefix_sums(r.tolist()) for r in ranked]
    best, tried, seen = None, 0, set()
    for step in range(CHANNEL_RATIO_STEPS, -1, -1):
        channels = at_ratio(widths, step / CHANNEL_RATIO_STEPS, align.get(CHANNELS))
        if tuple(channels) in seen:
            continue
        seen.add(tuple(channels))
        conv_cost = sum(conv_macs(config, channels, samples))
        try:
            kept, split = split_budget(scores, costs, budget - conv_cost, minimum, align=align)
        except InvalidInputError:
            continue  # these channels leave too little for the minimum heads and neurons
        tried += 1
        total = split["kept_score"] + sum(float(v[c]) for v, c in zip(value_of, channels, strict=True))
        if best is None or total > best[0]:
            best = (total, kept, channels, {**split, "conv_kept_cost": conv_cost,
                                            "kept_cost": split["kept_cost"] + conv_cost})
    if best is None:
        raise InvalidInputError(f"budget_pruning: the budget cannot keep one channel per convolution, "
                                f"min_heads_per_layer={minimum[HEADS]} and min_neurons_per_layer="
                                f"{minimum[NEURONS]}; lower the amount or the minimums")
    total, kept, channels, split = best
    return kept, channels, {**split, "kept_score": total, "channel_fractions_tried": tried,
                            "channels_kept": sum(channels)}


def _summary(scores: list[torch.Tensor]) -> dict:
    values = torch.cat([s.float().flatten() for s in scores]) if scores else torch.zeros(0)
    if values.numel() == 0:
        return {"units": 0}
    return {"units": values.numel(), "min": float(values.min()), "median": float(values.median()),
            "max": float(values.max()), "per_layer_mean": [float(s.mean()) if s.numel() else None for s in scores]}


def _input_spec(modality: str, size: float) -> InputSpec:
    return InputSpec(modality, max(1, round(size)) if modality == "text" else round(size, 3))


def _check_scope(adapter: ModelAdapter, scope: str, method: str) -> bool:
    """Whether the budget covers the whole model (``scope: all``), refusing what that cannot apply to."""
    if scope != "all":
        return False
    if adapter.modality != "speech":
        raise InvalidInputError(f"budget_pruning scope: all adds a speech model's convolution channels to the "
                                f"budget; {adapter.config.model_type} is a text model (scope: transformer)")
    if method == "trajectory":
        raise InvalidInputError("budget_pruning scope: all scores convolution channels with heads and neurons by "
                                "importance: fisher (or magnitude); the trajectory scores heads and neurons only")
    return True


def _alignment(option: int | str | None, adapter: ModelAdapter, whole_model: bool) -> tuple[dict[str, int], dict]:
    """The ``align`` option per kind of unit, and what the manifest says of it. Here a number, like ``auto``, is
    a width in the products' elements (the search mixes heads and neurons): a neuron and a channel are one
    element wide, a head ``head_dim``, so a head count is the fewest heads whose width is a multiple of it."""
    if option is None:
        return {}, {}
    elements, measured = resolve_align(option, 1, adapter.floating_dtype())
    align = {HEADS: units_for(elements, head_dim(adapter)), NEURONS: elements}
    if whole_model:
        align[CHANNELS] = align[NEURONS]
    return align, {"align": align, **measured}


def prune_to_budget(model, amount: float, options: dict, context: CompressionContext):
    started = time.perf_counter()
    data = context.require_data("budget_pruning")
    for name in ("batches", "batch_size", "tokens"):
        if options[name] < 1:
            raise InvalidInputError(f"budget_pruning: {name} must be >= 1, got {options[name]}")
    if options["temperature"] <= 0 or options["kl_weight"] < 0:
        raise InvalidInputError("budget_pruning: temperature must be > 0 and kl_weight >= 0")
    minimum = {HEADS: options["min_heads_per_layer"], NEURONS: options["min_neurons_per_layer"]}
    if min(minimum.values()) < 0:
        raise InvalidInputError("budget_pruning: min_heads_per_layer and min_neurons_per_layer must be >= 0")
    method = options["importance"]
    adapter = ModelAdapter(model)
    whole_model = _check_scope(adapter, options["scope"], method)
    device = next(model.parameters()).device
    spec = _input_spec(adapter.modality, data.mean_input_size("train"))
    costs = unit_costs(model, spec)
    encoder_before = encoder_macs(costs.macs)
    conv_before = costs.macs.by_component.get(FEATURE_ENCODER, 0) if whole_model else 0
    prunable_before = encoder_before + conv_before
    budget = (1 - amount) * prunable_before
    batches = [b.to(device) for b in context.calibration(options["batches"], options["batch_size"])]
    needs_labels = method == "fisher" or options["rearrange"]
    if needs_labels and not (has_task_head(model, data) and all(b.labels is not None for b in batches)):
        what = "importance: fisher" if method == "fisher" else "rearrange: true"
        raise InvalidInputError(f"budget_pruning with {what} needs the task loss, so a model fine-tuned on "
                                f"{data.task} (compbench finetune: a classifier, or a CTC head)")
    gates = UnitGates(adapter, KINDS + (CHANNELS,) if whole_model and method == "fisher" else KINDS)
    align, alignment = _alignment(options["align"], adapter, whole_model)
    seconds: dict[str, float] = {"counting": time.perf_counter() - started}
    details: dict = {}

    mark = time.perf_counter()
    gradients = gate_gradients(gates, batches, lambda b: task_loss(model, b)) if needs_labels else None
    channel_scores = None
    if method == "trajectory":
        report = (lambda f: context.progress(f"trajectory importance {f:.0%}", f)) if context.progress else None
        scores, details["trajectory"] = trajectory_importance(
            gates, batches[0], options["tokens"], options["kl_weight"], options["temperature"], context.seed, report)
    elif method == "fisher":
        scores = {kind: [g.pow(2).sum(0) for g in gradients[kind]] for kind in KINDS}
        if whole_model:
            channel_scores = [g.pow(2).sum(0) for g in gradients[CHANNELS]]
    else:
        def per_layer(values):
            return [v / v.norm().clamp_min(1e-12) for v in values]
        layers = range(len(adapter.layers()))
        scores = {HEADS: per_layer([head_magnitude(adapter, i) for i in layers]),
                  NEURONS: per_layer([neuron_magnitude(adapter, i) for i in layers])}
    seconds["importance"] = time.perf_counter() - mark

    mark = time.perf_counter()
    samples = spec.samples if whole_model else 0
    channels_before = conv_channels(adapter) if whole_model else None
    if whole_model and method == "fisher":
        kept, channels_kept, split = split_whole_budget(scores, channel_scores, costs, adapter.config, samples,
                                                        budget, minimum, align)
    else:
        channels_kept = kept_channels(adapter.config, channels_before, amount, samples,
                                      align=align.get(CHANNELS)) if whole_model else None
        conv_cost = sum(conv_macs(adapter.config, channels_kept, samples)) if whole_model else 0
        heads_fraction = 1 - amount if method == "magnitude" else None  # magnitude: every kind loses amount
        kept, split = split_budget(scores, costs, budget - conv_cost, minimum, heads_fraction, align)
        if whole_model:
            split = {**split, "conv_kept_cost": conv_cost, "kept_cost": split["kept_cost"] + conv_cost,
                     "channels_kept": sum(channels_kept)}
    seconds["search"] = time.perf_counter() - mark
    if options["rearrange"]:
        mark = time.perf_counter()
        searched = kept
        kept = {kind: [rearrange(gradients[kind][layer], len(units)) for layer, units in enumerate(kept[kind])]
                for kind in KINDS}
        details["rearranged_units"] = {kind: sum(len(set(a) - set(b)) for a, b in zip(kept[kind], searched[kind],
                                                                                       strict=True))
                                       for kind in KINDS}
        seconds["rearrange"] = time.perf_counter() - mark
    if options["mask_tuning"]:
        mark = time.perf_counter()
        details["mask_tuning"] = tune_masks(gates, kept, batches)
        details["layers_tuned"] = sum(r["status"] == "tuned" for r in details["mask_tuning"])
        seconds["mask_tuning"] = time.perf_counter() - mark

    before = {HEADS: gates.units(HEADS), NEURONS: gates.units(NEURONS)}
    remove_units(gates, kept, fold_gates=options["mask_tuning"])
    if whole_model:
        details["channels_before"] = channels_before
        details["removed_channels"] = keep_best_channels(
            adapter, channels_kept, lambda layer: channel_scores[layer] if channel_scores is not None
            else conv_channel_magnitude(adapter, layer))
        details["channels_after"] = conv_channels(adapter)
    after = count_macs(model, adapter.build_inputs(spec, "meta"), adapter.component_of)
    encoder_after = encoder_macs(after)
    prunable_after = encoder_after + (after.by_component.get(FEATURE_ENCODER, 0) if whole_model else 0)
    seconds["total"] = time.perf_counter() - started
    heads_after = [len(units) for units in kept[HEADS]]
    neurons_after = [len(units) for units in kept[NEURONS]]
    seen = context.data_seen("train", examples_in(batches), batches=len(batches))
    summaries = {kind: _summary(scores[kind]) for kind in KINDS}
    if channel_scores is not None:
        summaries[CHANNELS] = _summary(channel_scores)
    if whole_model:
        details["prunable_macs"] = {"before": prunable_before, "target": round(budget), "after": prunable_after,
                                    "removed_fraction": 1 - prunable_after / prunable_before,
                                    "components": [FEATURE_ENCODER, *ENCODER_COMPONENTS]}
        details["conv_macs"] = {"before": conv_before, "after": after.by_component.get(FEATURE_ENCODER, 0)}
    return model, {
        "macs_at": spec.describe(), "scope": options["scope"],
        "encoder_macs": {"before": encoder_before, "target": round(budget) if not whole_model else None,
                         "after": encoder_after,
                         "removed_fraction": 1 - encoder_after / encoder_before if encoder_before else 0.0},
        "model_macs": {"before": costs.macs.total, "after": after.total,
                       "removed_fraction": 1 - after.total / costs.macs.total},
        "unit_macs": {HEADS: costs.heads, NEURONS: costs.neurons},
        "heads_before": before[HEADS], "heads_after": heads_after,
        "neurons_before": before[NEURONS], "neurons_after": neurons_after,
        "split": split, "importance_summary": summaries, **alignment,
        **details, "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "removed": round(1 - prunable_after / prunable_before, 4) if prunable_before else 0.0,
        "unit": ("fraction of the prunable MACs removed (feature encoder, attention, FFN)" if whole_model
                 else "fraction of encoder MACs removed"), "data": seen,
    }


register(Compressor(
    name="budget_pruning", compress=prune_to_budget, uses_context=True, needs_task=always_needs_task,
    description="remove heads and FFN neurons to cut the encoder's MACs by amount, one shot, no retraining "
                "(OPTIN trajectory or Kwon et al. Fisher; needs --task); scope: all adds a speech model's "
                "convolution channels, amount then of the prunable MACs",
    options={
        "importance": Option(str, "trajectory", "trajectory (OPTIN, label-free), fisher (Kwon et al., needs a "
                             "fine-tuned classifier) or magnitude (baseline)",
                             choices=("trajectory", "fisher", "magnitude")),
        "batches": Option(int, 16, "calibration minibatches of the train split (Fisher, rearrangement, mask tuning)"),
        "batch_size": Option(int, 8, "examples per calibration minibatch; the trajectory uses the first minibatch"),
        "tokens": Option(int, 256, "trajectory: tokens sampled (once, no padding) for the Gram matrices"),
        "kl_weight": Option(float, 1.0, "trajectory: weight of the logits' KL divergence"),
        "temperature": Option(float, 1.0, "trajectory: softmax temperature of the KL term (scaled by its square)"),
        "min_heads_per_layer": Option(int, 0, "heads every layer keeps"),
        "min_neurons_per_layer": Option(int, 0, "FFN neurons every layer keeps"),
        "rearrange": Option(bool, False, "Kwon et al.'s per-layer rearrangement with the block-diagonal Fisher "
                            "(needs a fine-tuned classifier)"),
        "mask_tuning": Option(bool, False, "Kwon et al.'s layer-wise least-squares rescaling of the kept units"),
        "scope": Option(str, "transformer", "transformer: heads and neurons, amount of the encoder's MACs; all (a "
                        "speech model): convolution channels too, amount of the feature encoder's, attention's and "
                        "FFN's MACs together (importance fisher or magnitude)", choices=("transformer", "all")),
        "align": Option((int, str, type(None)), None,
                        "keep every layer's heads, neurons (and channels) at multiples of this many elements of the "
                        "products' widths (a head is its size wide), or whole, the budget met within one block; "
                        "auto: the multiple this machine's kernels run fastest at (measured once, cached); null: "
                        "no alignment", minimum=1, words=("auto",)),
    }))
