"""conv_pruning: remove output channels of a speech model's CNN feature encoder (with what reads them).

``amount`` is the fraction of the feature encoder's MACs removed. A convolution's MACs are its frames
times its output channels, input channels and kernel width, and its frames grow linearly with the input,
so the fraction is the same at 1 s and at 10 s (counted at 10 s; rounding the frames moves it by less
than 0.1 %). Every layer keeps the same fraction of its channels (the fraction whose MACs come nearest
``amount``; layers after the first lose MACs twice, as their inputs go too), and at least one channel.
Which channels go: the least important, by magnitude (each channel's filter norm, times its
normalisation's scale, times the norm of the weights that read it; data-free, the default), by gradient
sensitivity, or by the Fisher information of the task loss (``importance: fisher``, with a task), each
through a gate on what reads the channel (:mod:`compbench.importance.gradient`). The model's ``conv_dim``
records the new widths, so a saved variant reloads from its config.
"""

from __future__ import annotations

from compbench.architectures.families import SAMPLE_RATE, ModelAdapter
from compbench.compression.compressor import Compressor, register
from compbench.compression.context import CompressionContext
from compbench.errors import InvalidInputError
from compbench.importance.gates import CHANNELS
from compbench.importance.gradient import IMPORTANCE_OPTIONS, gate_importance, importance_needs_task
from compbench.importance.magnitude import conv_channel_magnitude
from compbench.surgery.conv_channels import conv_channels, conv_layers, keep_conv_channels

REFERENCE_SAMPLES = 10 * SAMPLE_RATE  # where the fraction of MACs is counted
_RATIO_STEPS = 4096  # keep-ratios tried between 0 and 1


def conv_macs(config, channels: list[int], samples: int = REFERENCE_SAMPLES) -> list[int]:
    """Each convolution's MACs at ``samples`` of audio with ``channels`` output channels per layer."""
    macs, inputs, length = [], 1, samples
    for width, kernel, stride in zip(channels, config.conv_kernel, config.conv_stride, strict=True):
        length = max((length - kernel) // stride + 1, 0)
        macs.append(length * width * inputs * kernel)
        inputs = width
    return macs


def kept_channels(config, channels: list[int], amount: float) -> list[int]:
    """Channels each layer keeps: the same fraction everywhere (at least one), the fraction whose removed
    share of the convolutions' MACs comes nearest ``amount`` (the smaller removal on a tie)."""
    total = sum(conv_macs(config, channels))
    best, best_gap = list(channels), amount
    for step in range(_RATIO_STEPS, -1, -1):
        ratio = step / _RATIO_STEPS
        kept = [max(1, int(ratio * c + 0.5)) for c in channels]
        gap = abs(1 - sum(conv_macs(config, kept)) / total - amount)
        if gap < best_gap - 1e-12:
            best, best_gap = kept, gap
    return best


def prune_conv_channels(model, amount: float, options: dict, context: CompressionContext):
    adapter = ModelAdapter(model)
    if adapter.modality != "speech":
        raise InvalidInputError(f"conv_pruning removes channels of a speech model's CNN feature encoder; "
                                f"{adapter.config.model_type} is a text model")
    before = conv_channels(adapter)
    targets = kept_channels(adapter.config, before, amount)
    seen = {}
    if options["importance"] in ("sensitivity", "fisher"):
        scores, seen = gate_importance(adapter, CHANNELS, options, context)
    else:
        scores = None  # magnitude: each layer scored once the layers before it have lost their channels
    removed_channels = []
    for layer in range(len(conv_layers(adapter))):
        importance = scores[layer] if scores is not None else conv_channel_magnitude(adapter, layer)
        order = sorted(range(before[layer]), key=lambda c: (float(importance[c]), c))
        dropped = sorted(order[:before[layer] - targets[layer]])
        removed_channels.append(dropped)
        if dropped:
            gone = set(dropped)
            keep_conv_channels(adapter, layer, [c for c in range(before[layer]) if c not in gone])
    after = conv_channels(adapter)
    macs_before, macs_after = sum(conv_macs(adapter.config, before)), sum(conv_macs(adapter.config, after))
    return model, {"channels_before": before, "channels_after": after, "removed_channels": removed_channels,
                   "conv_macs_removed": round(1 - macs_after / macs_before, 6),
                   "removed": sum(before) - sum(after), "total": sum(before),
                   "unit": "convolution channels removed", **seen}


register(Compressor(
    name="conv_pruning", compress=prune_conv_channels, uses_context=True, needs_task=importance_needs_task,
    description="remove output channels of a speech model's CNN feature encoder by magnitude, sensitivity or "
                "Fisher (amount: fraction of the feature encoder's convolution MACs)",
    options=IMPORTANCE_OPTIONS))
