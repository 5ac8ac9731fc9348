"""head_pruning: remove whole attention heads (q/k/v rows and output-projection columns).

Importance is the L2 norm of a head's q, k, v rows and output columns (``importance:
magnitude``, data-free, the default), its gradient sensitivity over a few batches
(``importance: sensitivity``) or its Fisher information under the task loss (``importance:
fisher``, needs a task; see :mod:`compbench.importance.gradient`), optionally
normalised per layer as Michel et al. 2019 do. ``scope: global``
ranks all heads together; ``scope: layer`` removes the same fraction from every layer. Every
layer keeps at least one head.
"""

from __future__ import annotations

from compbench.architectures.families import ModelAdapter
from compbench.compression.compressor import Compressor, Option, register
from compbench.compression.context import CompressionContext
from compbench.importance.gates import HEADS
from compbench.importance.gradient import IMPORTANCE_OPTIONS, gate_importance, importance_needs_task
from compbench.importance.magnitude import head_magnitude
from compbench.importance.ranking import ALIGN_OPTION, aligned_removals, units_to_remove
from compbench.surgery.units import head_dim, heads_in_layer, keep_heads


def prune_heads(model, amount: float, options: dict, context: CompressionContext):
    adapter = ModelAdapter(model)
    layers = range(len(adapter.layers()))
    seen = {}
    if options["importance"] in ("sensitivity", "fisher"):
        importance, seen = gate_importance(adapter, HEADS, options, context)
    else:
        importance = [head_magnitude(adapter, i) for i in layers]
    if options["normalize"]:
        importance = [scores / scores.norm().clamp_min(1e-12) for scores in importance]
    removed, alignment = aligned_removals(importance, units_to_remove(importance, amount, options["scope"]),
                                          options["align"], head_dim(adapter), adapter.floating_dtype())
    before = [heads_in_layer(adapter, i) for i in layers]
    for layer, heads in zip(layers, removed, strict=True):
        if heads:
            keep_heads(adapter, layer, [h for h in range(before[layer]) if h not in heads])
    after = [heads_in_layer(adapter, i) for i in layers]
    return model, {"heads_before": before, "heads_after": after, "removed_heads": removed,
                   "removed": sum(before) - sum(after), "total": sum(before), "unit": "heads removed",
                   **alignment, **seen}


register(Compressor(
    name="head_pruning", compress=prune_heads, uses_context=True, needs_task=importance_needs_task,
    description="remove whole attention heads by magnitude, sensitivity or Fisher (amount: fraction of heads)",
    options={
        **IMPORTANCE_OPTIONS,
        "align": ALIGN_OPTION,
        "scope": Option(str, "global", "rank heads across all layers, or remove the same fraction per layer",
                        choices=("global", "layer")),
        "normalize": Option(bool, True, "normalise importance per layer before a global ranking"),
    }))
