"""head_pruning: remove whole attention heads (q/k/v rows and output-projection columns).

Importance is the L2 norm of a head's q, k, v rows and output columns (``importance:
magnitude``, data-free, the default) or its gradient sensitivity over a few batches
(``importance: sensitivity``, see :mod:`compbench.compressors.sensitivity`), optionally
normalised per layer as Michel et al. 2019 do. ``scope: global``
ranks all heads together; ``scope: layer`` removes the same fraction from every layer. Every
layer keeps at least one head.
"""

from __future__ import annotations

import torch

from compbench.compressors.base import Compressor, Option, register
from compbench.compressors.sensitivity import gate_sensitivity
from compbench.compressors.structure import (
    effective_weight,
    half_up,
    head_dim,
    heads_in_layer,
    keep_heads,
    make_attention_modular,
)
from compbench.errors import InvalidInputError
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


def _choose(importance: list[torch.Tensor], amount: float, scope: str) -> list[list[int]]:
    """Heads to remove per layer, fewest-important first, each layer keeping one."""
    counts = [len(scores) for scores in importance]
    if scope == "layer":
        return [sorted(torch.argsort(scores)[:min(half_up(amount * n), n - 1)].tolist())
                for scores, n in zip(importance, counts, strict=True)]
    target = half_up(amount * sum(counts))
    ranked = sorted((float(score), layer, head) for layer, scores in enumerate(importance)
                    for head, score in enumerate(scores))
    removed: list[list[int]] = [[] for _ in counts]
    for _, layer, head in ranked:
        if target == 0:
            break
        if counts[layer] - len(removed[layer]) > 1:
            removed[layer].append(head)
            target -= 1
    return [sorted(heads) for heads in removed]


def prune_heads(model, amount: float, options: dict):
    adapter = ModelAdapter(model)
    layers = range(len(adapter.layers()))
    if options["importance"] == "sensitivity":
        if options["batches"] < 1:
            raise InvalidInputError(f"head_pruning: batches must be >= 1, got {options['batches']}")
        output_path = adapter.layout.attention_output
        for layer in layers:  # WavLM: call the output projection as a module, so it can be gated
            make_attention_modular(adapter, layer)
        importance = gate_sensitivity(adapter, lambda i: adapter.layers()[i].get_submodule(output_path),
                                      [heads_in_layer(adapter, i) for i in layers], head_dim(adapter),
                                      options["batches"])
    else:
        importance = [head_importance(adapter, i) for i in layers]
    if options["normalize"]:
        importance = [scores / scores.norm().clamp_min(1e-12) for scores in importance]
    removed = _choose(importance, amount, options["scope"])
    before = [heads_in_layer(adapter, i) for i in layers]
    for layer, heads in zip(layers, removed, strict=True):
        if heads:
            keep_heads(adapter, layer, [h for h in range(before[layer]) if h not in heads])
    after = [heads_in_layer(adapter, i) for i in layers]
    return model, {"heads_before": before, "heads_after": after, "removed_heads": removed,
                   "removed": sum(before) - sum(after), "total": sum(before)}


register(Compressor(
    name="head_pruning", compress=prune_heads,
    description="remove whole attention heads by magnitude or sensitivity (amount: fraction of heads)",
    options={
        "importance": Option(str, "magnitude", "weight magnitude (data-free) or gradient sensitivity",
                             choices=("magnitude", "sensitivity")),
        "batches": Option(int, 4, "batches of generated inputs for sensitivity"),
        "scope": Option(str, "global", "rank heads across all layers, or remove the same fraction per layer",
                        choices=("global", "layer")),
        "normalize": Option(bool, True, "normalise importance per layer before a global ranking"),
    }))
