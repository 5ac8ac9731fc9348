"""Removing whole Transformer layers, and refusing a removal that would leave a kept layer depending on one removed.

Two architectures have layers that read what an earlier layer computed: WavLM's first layer holds the relative
position bias every layer adds, and under attention-map reuse (ARMHuBERT, :mod:`.attention_reuse`) a reusing layer
reads the attention probabilities of the last layer before it that computes them. Removing that layer and keeping
the one that depends on it would leave a model that fails, or silently reads another layer's map; every
compressor that removes layers (layer drop, accuracy-driven search, distillation's shallower students) goes
through :func:`keep_layers`, which refuses it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from compbench.architectures.families import ModelAdapter
from compbench.errors import InvalidInputError
from compbench.surgery.attention_reuse import reuse_pattern


def check_layers_kept(adapter: ModelAdapter, layers: Sequence[int]) -> None:
    """An error where keeping only ``layers`` would remove a layer that a kept one depends on."""
    kept = set(layers)
    if adapter.config.model_type == "wavlm" and 0 not in kept:
        raise InvalidInputError("WavLM's first layer holds the relative position bias that every layer uses: keep "
                                "layer 0 (remove layers from the top, or alternate ones)")
    pattern = reuse_pattern(adapter)
    for layer in sorted(kept) if pattern else ():
        if pattern[layer]:
            source = max(j for j in range(layer) if not pattern[j])  # the first layer always computes its map
            if source not in kept:
                raise InvalidInputError(f"layer {layer} reuses the attention map of layer {source}, which would be "
                                        f"removed: remove layer {layer} with it, or keep both")


def keep_layers(adapter: ModelAdapter, layers: Sequence[int]) -> int:
    """Keep only the given Transformer layers, in order; returns how many are left.

    A head that reads a learned weighted sum of every hidden state (``use_weighted_layer_sum``) keeps
    the weights of the states that remain: the embeddings' and the kept layers' outputs."""
    check_layers_kept(adapter, layers)
    modules = adapter.layers()
    adapter.base.set_submodule(adapter.layout.layers, nn.ModuleList([modules[i] for i in layers]))
    adapter.config.num_hidden_layers = len(layers)
    weights = getattr(adapter.model, "layer_weights", None)
    if adapter.base is not adapter.model and isinstance(weights, nn.Parameter):
        states = torch.as_tensor([0] + [i + 1 for i in layers])
        adapter.model.layer_weights = nn.Parameter(weights.detach()[states].clone(),
                                                   requires_grad=weights.requires_grad)
    return len(layers)
