"""conv_pruning: remove output channels of a speech model's CNN feature encoder (with what reads them).

``amount`` is the fraction of the feature encoder's MACs removed. A convolution's MACs are its frames
times its output channels, input channels and kernel width, and its frames grow linearly with the input,
so the fraction is the same at 1 s and at 10 s (counted at 10 s; rounding the frames moves it by less
than 0.1 %). Every layer keeps the same fraction of its channels (the fraction whose MACs come nearest
``amount``; layers after the first lose MACs twice, as their inputs go too), and at least one channel.
Which channels go: the least important, by magnitude (each channel's filter norm, times its
normalisation's scale, times the norm of the weights that read it; data-free, the default), by gradient
sensitivity, or by the Fisher information of the task loss (``importance: fisher``, with a task), each
through a gate on what reads the channel (:mod:`compbench.importance.gradient`). With ``align`` (a number, or
``auto``: what this machine's kernels prefer), every layer keeps a multiple of it (or all its channels), the
fraction chosen among those aligned widths. The model's ``conv_dim`` records the new widths, so a saved
variant reloads from its config.
"""

from __future__ import annotations

from compbench.architectures.families import ModelAdapter
from compbench.compression.compressor import Compressor, register
from compbench.compression.context import CompressionContext
from compbench.errors import InvalidInputError
from compbench.importance.gates import CHANNELS
from compbench.importance.gradient import IMPORTANCE_OPTIONS, gate_importance, importance_needs_task
from compbench.importance.magnitude import conv_channel_magnitude
from compbench.importance.ranking import ALIGN_OPTION, resolve_align
from compbench.surgery.conv_channels import (
    check_last_channels_removable,
    conv_channels,
    conv_macs,
    keep_best_channels,
    kept_channels,
)


def prune_conv_channels(model, amount: float, options: dict, context: CompressionContext):
    adapter = ModelAdapter(model)
    if adapter.modality != "speech":
        raise InvalidInputError(f"conv_pruning removes channels of a speech model's CNN feature encoder; "
                                f"{adapter.config.model_type} is a text model")
    check_last_channels_removable(adapter)  # every layer loses the same fraction, the last one too
    before = conv_channels(adapter)
    align, measured = resolve_align(options["align"], 1, adapter.floating_dtype())
    targets = kept_channels(adapter.config, before, amount, align=align)
    alignment = {} if align is None else {"align": align, **measured,
                                          "channels_before_align": kept_channels(adapter.config, before, amount)}
    seen = {}
    if options["importance"] in ("sensitivity", "fisher"):
        scores, seen = gate_importance(adapter, CHANNELS, options, context)
    else:
        scores = None  # magnitude: each layer scored once the layers before it have lost their channels
    removed_channels = keep_best_channels(
        adapter, targets, lambda layer: scores[layer] if scores is not None else conv_channel_magnitude(adapter, layer))
    after = conv_channels(adapter)
    macs_before, macs_after = sum(conv_macs(adapter.config, before)), sum(conv_macs(adapter.config, after))
    return model, {"channels_before": before, "channels_after": after, "removed_channels": removed_channels,
                   "conv_macs_removed": round(1 - macs_after / macs_before, 6),
                   "removed": sum(before) - sum(after), "total": sum(before),
                   "unit": "convolution channels removed", **alignment, **seen}


register(Compressor(
    name="conv_pruning", compress=prune_conv_channels, uses_context=True, needs_task=importance_needs_task,
    description="remove output channels of a speech model's CNN feature encoder by magnitude, sensitivity or "
                "Fisher (amount: fraction of the feature encoder's convolution MACs)",
    options={**IMPORTANCE_OPTIONS, "align": ALIGN_OPTION}))
