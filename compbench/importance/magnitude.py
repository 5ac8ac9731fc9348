"""Magnitude importance, data-free: how large a unit's weights are.

A head's score is the L2 norm of its q, k, v rows and its output-projection columns; an FFN
neuron's is ``|row of W_in| * |column of W_out|``; a convolution channel's is its filter's norm times
the norm of the weights that read it. Low-rank projections are scored by the matrix they apply."""

from __future__ import annotations

import torch

from compbench.architectures.families import ModelAdapter
from compbench.surgery.conv_channels import conv_layers
from compbench.surgery.linear import effective_weight
from compbench.surgery.units import head_dim, heads_in_layer


def head_magnitude(adapter: ModelAdapter, layer: int) -> torch.Tensor:
    """L2 norm of each head's weights in one layer."""
    size = head_dim(adapter)
    heads = heads_in_layer(adapter, layer)
    projections = adapter.attention_projections(layer)
    squares = torch.zeros(heads)
    for name in ("query", "key", "value"):
        rows = effective_weight(projections[name]).float().pow(2).sum(dim=1)
        squares += rows.reshape(heads, size).sum(dim=1)
    cols = effective_weight(projections["output"]).float().pow(2).sum(dim=0)
    squares += cols.reshape(heads, size).sum(dim=1)
    return squares.sqrt()


def neuron_magnitude(adapter: ModelAdapter, layer: int) -> torch.Tensor:
    """``|row of W_in| * |column of W_out|`` of each FFN neuron in one layer."""
    ffn_in, ffn_out = adapter.ffn(layer)
    return effective_weight(ffn_in).float().norm(dim=1) * effective_weight(ffn_out).float().norm(dim=0)


def conv_channel_magnitude(adapter: ModelAdapter, layer: int) -> torch.Tensor:
    """Each output channel of one feature-encoder convolution: the L2 norm of its filter (times its
    normalisation's scale where one follows) times the L2 norm of the weights that read it (the next
    convolution's input column, or the feature projection's column times its LayerNorm's scale)."""
    layers = conv_layers(adapter)
    block = layers[layer]
    incoming = block.conv.weight.detach().float().flatten(1).norm(dim=1)
    norm = getattr(block, "layer_norm", None)
    if getattr(norm, "weight", None) is not None:
        incoming = incoming * norm.weight.detach().float().abs()
    if layer + 1 < len(layers):
        outgoing = layers[layer + 1].conv.weight.detach().float().transpose(0, 1).flatten(1).norm(dim=1)
    else:
        projection = adapter.base.feature_projection
        outgoing = effective_weight(projection.projection).float().norm(dim=0)
        scale = getattr(getattr(projection, "layer_norm", None), "weight", None)
        if scale is not None:
            outgoing = outgoing * scale.detach().float().abs()
    return incoming * outgoing
