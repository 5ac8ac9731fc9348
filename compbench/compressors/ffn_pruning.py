"""ffn_pruning: remove FFN intermediate neurons (rows of the first Linear, columns of the second).

Importance is ``|row of W_in| * |column of W_out|`` per neuron (``importance: magnitude``,
data-free, the default), its gradient sensitivity over a few batches (``importance:
sensitivity``) or its Fisher information under the task loss (``importance: fisher``, needs a
task; see :mod:`compbench.importance.gradient`). ``scope: layer``
(default) removes the same fraction from every layer; ``scope: global`` ranks all neurons.
Every layer keeps at least one neuron.
"""

from __future__ import annotations

from compbench.architectures.families import ModelAdapter
from compbench.compression.compressor import Compressor, Option, register
from compbench.compression.context import CompressionContext
from compbench.importance.gates import NEURONS
from compbench.importance.gradient import IMPORTANCE_OPTIONS, gate_importance, importance_needs_task
from compbench.importance.magnitude import neuron_magnitude
from compbench.importance.ranking import ALIGN_OPTION, aligned_removals, units_to_remove
from compbench.surgery.units import keep_neurons


def prune_neurons(model, amount: float, options: dict, context: CompressionContext):
    adapter = ModelAdapter(model)
    layers = range(len(adapter.layers()))
    seen = {}
    if options["importance"] in ("sensitivity", "fisher"):
        importance, seen = gate_importance(adapter, NEURONS, options, context)
    else:
        importance = [neuron_magnitude(adapter, i) for i in layers]
    before = [len(scores) for scores in importance]
    removed, alignment = aligned_removals(importance, units_to_remove(importance, amount, options["scope"]),
                                          options["align"], 1, adapter.floating_dtype())
    for layer, neurons in zip(layers, removed, strict=True):
        if neurons:
            dropped = set(neurons)
            keep_neurons(adapter, layer, [n for n in range(before[layer]) if n not in dropped])
    after = [adapter.ffn(i)[0].out_features for i in layers]
    return model, {"neurons_before": before, "neurons_after": after,
                   "removed": sum(before) - sum(after), "total": sum(before), "unit": "FFN neurons removed",
                   **alignment, **seen}


register(Compressor(
    name="ffn_pruning", compress=prune_neurons, uses_context=True, needs_task=importance_needs_task,
    description="remove FFN intermediate neurons by magnitude, sensitivity or Fisher (amount: fraction of neurons)",
    options={
        **IMPORTANCE_OPTIONS,
        "align": ALIGN_OPTION,
        "scope": Option(str, "layer", "the same fraction per layer, or one ranking across layers",
                        choices=("layer", "global")),
    }))
