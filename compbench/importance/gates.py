"""Gates on attention heads and FFN neurons (one multiplier per unit on each output projection's input)
and, in speech models, on the CNN feature encoder's channels (on what reads each convolution's output: the
next convolution, or the feature projection after the last one).

A gate of 1 leaves the model as it is, 0 masks the unit, any other value rescales what the unit
adds to the layer (mask tuning folds those values into the projection's columns). A gate may
also hold one row per example, ``(batch, units)``, so that several masks run in one batched
forward (the trajectory importance does this). While a :class:`UnitGates` is entered, the inputs
of chosen projections can be captured (before the gate), and a capture can end the forward early.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from compbench.architectures.families import ModelAdapter
from compbench.compression.context import Batch
from compbench.counting.weights import is_input_dependent
from compbench.eval_mode import evaluating
from compbench.surgery.conv_channels import conv_channels, conv_layers
from compbench.surgery.linear import LowRankLinear
from compbench.surgery.units import (
    HEADS,
    NEURONS,
    head_dim,
    heads_in_layer,
    keep_heads,
    keep_neurons,
    make_attention_modular,
)

CHANNELS = "channels"
KINDS = (HEADS, NEURONS)  # the Transformer's units: what a gate set holds unless asked for others
Kept = dict[str, list[list[int]]]  # per kind (heads, neurons), per layer: the unit indices kept


class StopForward(Exception):
    """Raised by a capture that has what it needs, to skip the rest of the forward."""


class UnitGates:
    """Gates of ones on every head and neuron (or only the ``kinds`` given) of ``adapter``'s model,
    applied while entered."""

    def __init__(self, adapter: ModelAdapter, kinds: tuple[str, ...] = KINDS):
        self.adapter = adapter
        self.kinds = kinds
        layers = range(len(adapter.layers()))
        if HEADS in kinds:
            for layer in layers:  # WavLM: call the output projection as a module, so it can be gated
                make_attention_modular(adapter, layer)
        self.unit_size = {HEADS: head_dim(adapter), NEURONS: 1, CHANNELS: 1}
        counts = {HEADS: lambda: [heads_in_layer(adapter, i) for i in layers],
                  NEURONS: lambda: [adapter.ffn(i)[0].out_features for i in layers],
                  CHANNELS: lambda: conv_channels(adapter)}
        self.values: dict[str, list[torch.Tensor]] = {kind: [torch.ones(n) for n in counts[kind]()]
                                                      for kind in kinds}
        self.capture: tuple[str, int] | None = None  # (kind, layer) whose gate input to keep
        self.stop_after_capture = False
        self.captured: list[torch.Tensor] = []
        self._handles: list = []

    def module(self, kind: str, layer: int) -> nn.Module:
        """The projection whose input carries the units' outputs (for channels: the next convolution layer,
        or the feature projection)."""
        if kind == HEADS:
            return self.adapter.attention_projections(layer)["output"]
        if kind == CHANNELS:
            following = conv_layers(self.adapter)[layer + 1:]
            return following[0] if following else self.adapter.base.feature_projection
        return self.adapter.ffn(layer)[1]

    def _channel_axis(self, kind: str, layer: int) -> int:
        """Where the units lie in the gated input: the last axis, but a convolution's (batch, channels, frames)."""
        return 1 if kind == CHANNELS and layer + 1 < len(self.values[kind]) else -1

    def units(self, kind: str) -> list[int]:
        return [len(v) if v.dim() == 1 else v.shape[1] for v in self.values[kind]]

    def reset(self) -> None:
        for kind in self.kinds:
            self.values[kind] = [torch.ones(n) for n in self.units(kind)]

    def __enter__(self) -> UnitGates:
        for kind in self.kinds:
            for layer in range(len(self.values[kind])):
                self._handles.append(self.module(kind, layer).register_forward_pre_hook(self._hook(kind, layer)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, kind: str, layer: int):
        size = self.unit_size[kind]
        across_frames = self._channel_axis(kind, layer) == 1

        def hook(module, args):
            x = args[0]
            if self.capture == (kind, layer):
                self.captured.append(x.detach())
                if self.stop_after_capture:
                    raise StopForward
            gate = self.values[kind][layer].to(device=x.device, dtype=x.dtype).repeat_interleave(size, dim=-1)
            if across_frames:  # (channels,) or (batch, channels) against (batch, channels, frames)
                gate = gate[..., None]
            elif gate.dim() == 2:  # one row per example
                gate = gate.reshape(gate.shape[0], *([1] * (x.dim() - 2)), gate.shape[1])
            return (x * gate,) + tuple(args[1:])
        return hook


def gate_gradients(gates: UnitGates, batches: list[Batch], loss: Callable[[Batch], torch.Tensor]
                   ) -> dict[str, list[torch.Tensor]]:
    """dL/dgate at gates of ones, one row per minibatch: ``{kind: [(batches, units) per layer]}``.
    The model runs in eval mode; its parameters get no gradients. A gate the batch's forward never
    reached (the layers after an early exit) has gradient zero: as the model runs, it does not matter.
    In a model whose path does not depend on its input, every gate must be reached."""
    unused_allowed = is_input_dependent(gates.adapter.model)
    gates.values = {kind: [torch.ones(n, requires_grad=True) for n in gates.units(kind)] for kind in gates.kinds}
    flat = [gate for kind in gates.kinds for gate in gates.values[kind]]
    rows = []
    try:
        with evaluating(gates.adapter.model), gates:
            for batch in batches:
                with torch.enable_grad():
                    grads = torch.autograd.grad(loss(batch), flat, allow_unused=unused_allowed)
                    rows.append([torch.zeros_like(gate) if g is None else g.detach() for g, gate in zip(
                        grads, flat, strict=True)])
    finally:
        gates.reset()
    gradients, start = {}, 0
    for kind in gates.kinds:
        layers = len(gates.values[kind])
        gradients[kind] = [torch.stack([row[start + layer] for row in rows]) for layer in range(layers)]
        start += layers
    return gradients


def scale_columns(module: nn.Module, scale: torch.Tensor) -> None:
    """Multiply the input columns of a Linear (or LowRankLinear) by ``scale``: a gate folded in."""
    linear = module.down if isinstance(module, LowRankLinear) else module
    with torch.no_grad():
        linear.weight.mul_(scale.to(linear.weight.dtype)[None, :])


def valid_positions(adapter: ModelAdapter, batch: Batch, length: int) -> torch.Tensor:
    """(batch, length) booleans: the token or frame positions that are not padding."""
    mask = batch.inputs.get("attention_mask")
    if mask is None:
        return torch.ones(batch.size, length, dtype=torch.bool)
    if adapter.modality == "speech":  # a sample mask: the frames it covers
        mask = adapter.base._get_feature_vector_attention_mask(length, mask)
    return mask.bool().cpu()


def remove_units(gates: UnitGates, kept: Kept, fold_gates: bool) -> None:
    """Physically remove every unit not in ``kept``, after folding the gates' values (tuned scales)
    into the output projections' columns when ``fold_gates``."""
    adapter = gates.adapter
    for kind in KINDS:
        for layer, units in enumerate(kept[kind]):
            if fold_gates:
                values = gates.values[kind][layer]
                scale_columns(gates.module(kind, layer), values.repeat_interleave(gates.unit_size[kind]))
            if len(units) < gates.units(kind)[layer]:
                (keep_heads if kind == HEADS else keep_neurons)(adapter, layer, units)
