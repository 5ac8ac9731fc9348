"""head_pruning: remove whole attention heads (q/k/v rows and output-projection columns).

Importance is the L2 norm of a head's q, k, v rows and output columns (``importance:
magnitude``, data-free, the default), its gradient sensitivity over a few batches
(``importance: sensitivity``) or its Fisher information under the task loss (``importance:
fisher``, needs a task; see :mod:`compbench.compressors.sensitivity`), optionally
normalised per layer as Michel et al. 2019 do. ``scope: global``
ranks all heads together; ``scope: layer`` removes the same fraction from every layer. Every
layer keeps at least one head.
"""

from __future__ import annotations

import torch

from compbench.compressors.base import Compressor, Option, register
from compbench.compressors.context import CompressionContext
from compbench.compressors.sensitivity import IMPORTANCE_OPTIONS, gate_importance, importance_needs_task
from compbench.compressors.structure import (
    effective_weight,
    head_dim,
    heads_in_layer,
    keep_heads,
    units_to_remove,
)
from compbench.compressors.unit_gates import HEADS
from compbench.models.families import ModelAdapter


def head_importance(adapter: ModelAdapter, layer: int) -> torch.Tensor:
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


def prune_heads(model, amount: float, options: dict, context: CompressionContext):
    adapter = ModelAdapter(model)
    layers = range(len(adapter.layers()))
    seen = {}
    if options["importance"] in ("sensitivity", "fisher"):
        importance, seen = gate_importance(adapter, HEADS, options, context)
    else:
        importance = [head_importance(adapter, i) for i in layers]
    if options["normalize"]:
        importance = [scores / scores.norm().clamp_min(1e-12) for scores in importance]
    removed = units_to_remove(importance, amount, options["scope"])
    before = [heads_in_layer(adapter, i) for i in layers]
    for layer, heads in zip(layers, removed, strict=True):
        if heads:
            keep_heads(adapter, layer, [h for h in range(before[layer]) if h not in heads])
    after = [heads_in_layer(adapter, i) for i in layers]
    return model, {"heads_before": before, "heads_after": after, "removed_heads": removed,
                   "removed": sum(before) - sum(after), "total": sum(before), "unit": "heads removed", **seen}


register(Compressor(
    name="head_pruning", compress=prune_heads, uses_context=True, needs_task=importance_needs_task,
    description="remove whole attention heads by magnitude, sensitivity or Fisher (amount: fraction of heads)",
    options={
        **IMPORTANCE_OPTIONS,
        "scope": Option(str, "global", "rank heads across all layers, or remove the same fraction per layer",
                        choices=("global", "layer")),
        "normalize": Option(bool, True, "normalise importance per layer before a global ranking"),
    }))
