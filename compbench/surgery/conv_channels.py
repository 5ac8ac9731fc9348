"""Removing output channels of a speech model's CNN feature encoder for real, and what they cost.

A convolution's output channels are its weight's (and bias's) rows; the same channels are the next
convolution's input columns or, after the last convolution, the feature projection's inputs (its
LayerNorm's parameters and its Linear's columns). A normalisation inside a convolution layer loses the
same channels: hubert-base's first-layer GroupNorm (one group per channel) and the per-layer LayerNorm of
``feat_extract_norm: layer`` models. The config's ``conv_dim`` then says how many channels each layer
has, so a saved variant is rebuilt with them from its config alone (no structure record needed).
:func:`conv_macs` gives the convolutions' MACs for any channel counts (the counter's ``feature_encoder``
component), :func:`kept_channels` the uniform keep-fraction nearest a share of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from compbench.architectures.families import SAMPLE_RATE, ModelAdapter
from compbench.compression.compressor import nearest_allowed
from compbench.errors import InvalidInputError
from compbench.surgery.linear import LowRankLinear, slice_linear


def conv_layers(adapter: ModelAdapter) -> list[nn.Module]:
    """The feature encoder's convolution layers, first to last (each has ``.conv``, some ``.layer_norm``)."""
    if adapter.modality != "speech":
        raise InvalidInputError(f"{adapter.config.model_type} has no CNN feature encoder: pruning convolution "
                                "channels applies to speech models")
    return list(adapter.base.get_submodule(adapter.layout.front_end).conv_layers)


def conv_channels(adapter: ModelAdapter) -> list[int]:
    return [layer.conv.out_channels for layer in conv_layers(adapter)]


REFERENCE_SAMPLES = 10 * SAMPLE_RATE  # where a share of the convolutions' MACs is counted unless told
RATIO_STEPS = 4096  # keep-ratios tried between 0 and 1


def conv_macs(config, channels: Sequence[int], samples: int = REFERENCE_SAMPLES) -> list[int]:
    """Each convolution's MACs at ``samples`` of audio with ``channels`` output channels per layer: its frames
    times its output channels, input channels and kernel width (what the counter counts for it)."""
    macs, inputs, length = [], 1, samples
    for width, kernel, stride in zip(channels, config.conv_kernel, config.conv_stride, strict=True):
        length = max((length - kernel) // stride + 1, 0)
        macs.append(length * width * inputs * kernel)
        inputs = width
    return macs


def at_ratio(channels: Sequence[int], ratio: float, align: int | None = None) -> list[int]:
    """Channels each layer keeps at one keep-ratio: the same fraction everywhere, rounded, at least one; with
    ``align``, each rounded to the nearest multiple of it (or the whole layer)."""
    kept = [max(1, int(ratio * c + 0.5)) for c in channels]
    return kept if align is None else [nearest_allowed(k, align, c) for k, c in zip(kept, channels, strict=True)]


def kept_channels(config, channels: Sequence[int], amount: float, samples: int = REFERENCE_SAMPLES,
                  steps: int = RATIO_STEPS, align: int | None = None) -> list[int]:
    """Channels each layer keeps: the same fraction everywhere (at least one; with ``align``, each layer's count
    a multiple of it or the whole layer), the fraction whose removed share of the convolutions' MACs at
    ``samples`` comes nearest ``amount`` (the smaller removal on a tie)."""
    total = sum(conv_macs(config, channels, samples))
    best, best_gap = list(channels), amount
    for step in range(steps, -1, -1):
        kept = at_ratio(channels, step / steps, align)
        gap = abs(1 - sum(conv_macs(config, kept, samples)) / total - amount)
        if gap < best_gap - 1e-12:
            best, best_gap = kept, gap
    return best


def _sliced_conv(conv: nn.Conv1d, outputs: Sequence[int] | None = None,
                 inputs: Sequence[int] | None = None) -> nn.Conv1d:
    weight = conv.weight.detach()
    if outputs is not None:
        weight = weight[list(outputs)]
    if inputs is not None:
        weight = weight[:, list(inputs)]
    bias = conv.bias.detach() if conv.bias is not None else None
    if bias is not None and outputs is not None:
        bias = bias[list(outputs)]
    new = nn.Conv1d(weight.shape[1], weight.shape[0], conv.kernel_size, stride=conv.stride, padding=conv.padding,
                    dilation=conv.dilation, groups=conv.groups, bias=bias is not None,
                    padding_mode=conv.padding_mode, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    new.train(conv.training)
    return new


def _sliced_norm(norm: nn.Module, channels: Sequence[int]) -> nn.Module:
    """A per-channel GroupNorm or a LayerNorm over the channels, keeping only ``channels``."""
    index = list(channels)
    if isinstance(norm, nn.GroupNorm):
        if norm.num_groups != norm.num_channels:
            raise InvalidInputError(f"a GroupNorm of {norm.num_groups} groups over {norm.num_channels} channels "
                                    "cannot lose single channels")
        new = nn.GroupNorm(len(index), len(index), eps=norm.eps, affine=norm.affine)
    elif isinstance(norm, nn.LayerNorm):
        new = nn.LayerNorm(len(index), eps=norm.eps, elementwise_affine=norm.elementwise_affine,
                           bias=norm.bias is not None)
    else:
        raise InvalidInputError(f"cannot remove channels from a {type(norm).__name__}")
    reference = norm.weight if getattr(norm, "weight", None) is not None else None
    new.to(device=reference.device if reference is not None else None,
           dtype=reference.dtype if reference is not None else None)
    with torch.no_grad():
        if getattr(norm, "weight", None) is not None:
            new.weight.copy_(norm.weight.detach()[index])
        if getattr(norm, "bias", None) is not None:
            new.bias.copy_(norm.bias.detach()[index])
    new.train(norm.training)
    return new


def _slice_projection_inputs(projection: nn.Module, channels: Sequence[int]) -> nn.Module:
    if isinstance(projection, LowRankLinear):
        projection.down = slice_linear(projection.down, cols=channels)
        projection.in_features = len(channels)
        return projection
    return slice_linear(projection, cols=channels)


def check_last_channels_removable(adapter: ModelAdapter) -> None:
    """The last convolution's channels feed the feature projection; without one (ARMHuBERT: the CNN's width is the
    encoder's) they are the encoder's width and cannot be removed."""
    if not isinstance(adapter.base.feature_projection.projection, nn.Linear | LowRankLinear):
        raise InvalidInputError("the last convolution's channels are this encoder's width (it has no feature "
                                "projection, as ARMHuBERT): they cannot be removed")


def keep_conv_channels(adapter: ModelAdapter, layer: int, channels: Sequence[int]) -> None:
    """Keep only ``channels`` (indices, at least one) of convolution ``layer``'s outputs, with everything that
    reads them; ``config.conv_dim`` follows."""
    if not channels:
        raise InvalidInputError(f"convolution layer {layer} must keep at least one channel")
    layers = conv_layers(adapter)
    block = layers[layer]
    block.conv = _sliced_conv(block.conv, outputs=channels)
    if hasattr(block, "layer_norm"):
        block.layer_norm = _sliced_norm(block.layer_norm, channels)
    if hasattr(block, "out_conv_dim"):
        block.out_conv_dim = len(channels)
    if layer + 1 < len(layers):
        following = layers[layer + 1]
        following.conv = _sliced_conv(following.conv, inputs=channels)
        if hasattr(following, "in_conv_dim"):
            following.in_conv_dim = len(channels)
    else:
        check_last_channels_removable(adapter)
        projection = adapter.base.feature_projection
        if getattr(projection, "layer_norm", None) is not None:
            projection.layer_norm = _sliced_norm(projection.layer_norm, channels)
        projection.projection = _slice_projection_inputs(projection.projection, channels)
    dims = list(adapter.config.conv_dim)
    dims[layer] = len(channels)
    adapter.config.conv_dim = dims


def keep_best_channels(adapter: ModelAdapter, targets: Sequence[int],
                       importance: Callable[[int], torch.Tensor]) -> list[list[int]]:
    """Keep ``targets[layer]`` channels of every convolution layer, first to last, the best by ``importance(layer)``
    (asked once the layers before it have lost theirs; among equal scores the lower indices go first); the channels
    removed."""
    removed = []
    for layer, width in enumerate(conv_channels(adapter)):
        scores = importance(layer)
        order = sorted(range(width), key=lambda c: (float(scores[c]), c))
        dropped = sorted(order[:width - targets[layer]])
        removed.append(dropped)
        if dropped:
            gone = set(dropped)
            keep_conv_channels(adapter, layer, [c for c in range(width) if c not in gone])
    return removed
