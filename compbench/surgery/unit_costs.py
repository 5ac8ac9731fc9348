"""What each unit of a Transformer costs in MACs, from the counter itself, and a speech model's MACs as an exact
function of the units it keeps (heads and neurons per layer, channels per convolution).

A head's or a neuron's cost in a layer is the counter's difference when one is removed (counted on meta
copies: no weights are touched); the encoder's MACs are linear in the heads and neurons kept. A
convolution's MACs are its output channels times its input channels (the previous convolution's outputs)
times its frames and kernel width, so the feature encoder's are bilinear in the channels kept, and the
feature projection reads the last convolution's channels. :class:`ModelCosts` adds these up; evaluated at
fractional (expected) counts it is differentiable, at whole counts it equals the counter's count of the
model with those units removed.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

from compbench.architectures.families import InputSpec, ModelAdapter
from compbench.counting.macs import MacCount, count_macs
from compbench.counting.meta import meta_clone
from compbench.surgery.conv_channels import conv_channels, conv_macs, keep_conv_channels
from compbench.surgery.units import HEADS, heads_in_layer, keep_heads, keep_neurons

ENCODER_COMPONENTS = ("attention", "ffn")
FEATURE_ENCODER = "feature_encoder"


def encoder_macs(count: MacCount) -> int:
    """MACs of the Transformer layers' attention and FFN blocks: what head and neuron pruning can remove."""
    return sum(count.by_component.get(component, 0) for component in ENCODER_COMPONENTS)


@dataclass(frozen=True)
class UnitCosts:
    """MACs of one head and of one neuron, per layer, at one input size, and the whole model's count."""

    heads: list[int]
    neurons: list[int]
    macs: MacCount

    def of(self, kind: str) -> list[int]:
        return self.heads if kind == HEADS else self.neurons


def unit_costs(model, spec: InputSpec) -> UnitCosts:
    """Each layer's cost of one head and one neuron: the counter's difference when one is removed."""
    clone, _ = meta_clone(model)
    adapter = ModelAdapter(clone)
    inputs = adapter.build_inputs(spec, "meta")
    whole = count_macs(clone, inputs, adapter.component_of)

    def removal_cost(remove) -> int:
        smaller = copy.deepcopy(clone)
        remove(ModelAdapter(smaller))
        return whole.total - count_macs(smaller, inputs).total

    heads, neurons = [], []
    for layer in range(len(adapter.layers())):
        count = heads_in_layer(adapter, layer)
        heads.append(removal_cost(lambda a, n=count, i=layer: keep_heads(a, i, range(n - 1))) if count else 0)
        count = adapter.ffn(layer)[0].out_features
        neurons.append(removal_cost(lambda a, n=count, i=layer: keep_neurons(a, i, range(n - 1))) if count else 0)
    return UnitCosts(heads, neurons, whole)


@dataclass(frozen=True)
class ModelCosts:
    """A speech model's MACs at one input length as a function of the units it keeps."""

    units: UnitCosts
    conv_config: object  # what conv_macs reads: conv_kernel, conv_stride
    samples: int
    channels: list[int]  # the dense model's channels per convolution
    dense_heads: list[int]  # the dense model's heads per layer
    dense_neurons: list[int]  # the dense model's FFN neurons per layer
    projection_per_channel: int  # the feature projection's MACs per channel it reads
    fixed: int  # everything that no unit changes

    @property
    def total(self) -> int:
        """The dense model's MACs (the counter's count)."""
        return self.units.macs.total

    def macs(self, heads: Sequence, neurons: Sequence, channels: Sequence):
        """The model's MACs keeping ``heads[l]`` heads and ``neurons[l]`` neurons in layer l and ``channels[i]``
        channels in convolution i (numbers, or tensors of expected counts: the result is then a tensor)."""
        total = self.fixed + self.projection_per_channel * channels[-1]
        for layer, (kept_heads, kept_neurons) in enumerate(zip(heads, neurons, strict=True)):
            total = total + kept_heads * self.units.heads[layer] + kept_neurons * self.units.neurons[layer]
        for macs in conv_macs(self.conv_config, channels, self.samples):
            total = total + macs
        return total


def model_costs(model, spec: InputSpec) -> ModelCosts:
    """:class:`ModelCosts` of a speech model at ``spec``: the unit costs, and the feature projection's cost per
    channel as the counter's difference when the last convolution loses one channel, less that convolution's."""
    units = unit_costs(model, spec)
    dense = ModelAdapter(model)
    channels = conv_channels(dense)
    clone, _ = meta_clone(model)
    fewer = channels[:-1] + [channels[-1] - 1]
    keep_conv_channels(ModelAdapter(clone), len(channels) - 1, range(fewer[-1]))
    conv_drop = sum(conv_macs(model.config, channels, spec.samples)) - sum(conv_macs(model.config, fewer,
                                                                                      spec.samples))
    projection = units.macs.total - count_macs(clone, dense.build_inputs(spec, "meta")).total - conv_drop
    heads = [heads_in_layer(dense, i) for i in range(len(units.heads))]
    neurons = [dense.ffn(i)[0].out_features for i in range(len(units.neurons))]
    costs = ModelCosts(units, model.config, spec.samples, channels, heads, neurons, projection, 0)
    fixed = units.macs.total - costs.macs(heads, neurons, channels)
    return ModelCosts(units, model.config, spec.samples, channels, heads, neurons, projection, fixed)
