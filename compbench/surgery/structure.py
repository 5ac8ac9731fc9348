"""The structure record: the per-layer shapes a compressed model has, written into its config as
``compbench_structure`` so that a saved variant is rebuilt with the same shapes before its weights
are loaded.

The record always holds the attention heads and FFN sizes per layer and the low-rank factorisations
(and, for WavLM, which original heads each layer kept). Anything else a variant's modules carry
(top-k attention, exits) is a :class:`StructurePart`, registered by the module that builds it
(:mod:`compbench.surgery.hard_attention`, :mod:`compbench.surgery.exits`): it says what to record
and how to rebuild it. This module names none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compbench.architectures.families import ModelAdapter
from compbench.registry import Registry
from compbench.surgery.linear import LowRankLinear
from compbench.surgery.units import attention_module, heads_in_layer, keep_heads, keep_neurons, make_attention_modular

STRUCTURE_KEY = "compbench_structure"


@dataclass(frozen=True)
class StructurePart:
    """One more thing a variant's structure record holds, under ``name``.

    ``describe(adapter)`` returns what to record, or None when the model has none of it;
    ``rebuild(adapter, value)`` gives a freshly built model (before its weights load) that structure."""

    name: str
    describe: Callable[[ModelAdapter], Any]
    rebuild: Callable[[ModelAdapter, Any], None]


STRUCTURE_PARTS: Registry[StructurePart] = Registry("structure part")


def register_part(part: StructurePart) -> StructurePart:
    return STRUCTURE_PARTS.register(part.name, part)


def config_intermediate_size(config) -> int:
    return getattr(config, "intermediate_size", None) or config.hidden_dim  # DistilBERT: hidden_dim


def describe_structure(adapter: ModelAdapter) -> dict:
    """The per-layer shapes that differ from what the config alone would build."""
    layers = range(len(adapter.layers()))
    structure = {
        "attention_heads": [heads_in_layer(adapter, i) for i in layers],
        "intermediate_sizes": [adapter.ffn(i)[0].out_features for i in layers],
        "low_rank": {name: module.rank for name, module in adapter.base.named_modules()
                     if isinstance(module, LowRankLinear)},
    }
    kept = [getattr(attention_module(adapter, i), "kept_heads", None) for i in layers]
    if any(k is not None for k in kept):  # WavLM: which original heads each layer still has
        structure["kept_heads"] = kept
    for name, part in STRUCTURE_PARTS.items():
        value = part.describe(adapter)
        if value is not None:
            structure[name] = value
    return structure


def is_plain(adapter: ModelAdapter, structure: dict) -> bool:
    """Whether ``structure`` is what the config alone builds (nothing to record)."""
    layers = len(adapter.layers())
    heads = adapter.config.num_attention_heads
    inner = config_intermediate_size(adapter.config)
    return (structure["attention_heads"] == [heads] * layers
            and structure["intermediate_sizes"] == [inner] * layers and not structure["low_rank"]
            and "kept_heads" not in structure and not any(name in structure for name in STRUCTURE_PARTS))


def apply_structure(adapter: ModelAdapter, structure: dict) -> None:
    """Reshape a freshly built model to ``structure`` (values are loaded afterwards)."""
    kept_heads = structure.get("kept_heads")
    for layer, heads in enumerate(structure.get("attention_heads", [])):
        if kept_heads is not None and kept_heads[layer] is not None:
            make_attention_modular(adapter, layer)
            keep_heads(adapter, layer, kept_heads[layer])
        elif heads != heads_in_layer(adapter, layer):
            keep_heads(adapter, layer, range(heads))
    for layer, size in enumerate(structure.get("intermediate_sizes", [])):
        if size != adapter.ffn(layer)[0].out_features:
            keep_neurons(adapter, layer, range(size))
    for name, part in STRUCTURE_PARTS.items():
        if structure.get(name) is not None:
            part.rebuild(adapter, structure[name])
    for name, rank in structure.get("low_rank", {}).items():
        linear = adapter.base.get_submodule(name)
        adapter.base.set_submodule(name, LowRankLinear(linear.in_features, rank, linear.out_features,
                                                       linear.bias is not None))


def record_structure(adapter: ModelAdapter) -> None:
    """Write the model's current shapes into its config (removed when nothing differs)."""
    structure = describe_structure(adapter)
    if is_plain(adapter, structure):
        if hasattr(adapter.config, STRUCTURE_KEY):
            delattr(adapter.config, STRUCTURE_KEY)
        return
    setattr(adapter.config, STRUCTURE_KEY, structure)
