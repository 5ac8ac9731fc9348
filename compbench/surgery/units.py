"""Removing units for real: attention heads (q/k/v rows, output-projection columns), FFN neurons
(rows of the first Linear, columns of the second); whole layers are :mod:`.layers`'.

Every function changes the adapter's model in place; compressors call them on their own copy.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from compbench.architectures.families import ModelAdapter
from compbench.surgery.linear import slice_linear
from compbench.surgery.wavlm_attention import keep_wavlm_heads, make_modular

HEADS, NEURONS = "heads", "neurons"  # the two kinds of Transformer unit, as gates, costs and manifests name them

HEAD_ATTRIBUTES = ("num_heads", "num_attention_heads", "n_heads")


def head_dim(adapter: ModelAdapter) -> int:
    return adapter.config.hidden_size // adapter.config.num_attention_heads


def heads_in_layer(adapter: ModelAdapter, layer: int) -> int:
    """Heads of a layer, by its value projection (which a layer reusing an attention map has too)."""
    return adapter.layers()[layer].get_submodule(adapter.layout.value).out_features // head_dim(adapter)


def attention_module(adapter: ModelAdapter, layer: int) -> nn.Module:
    """The module that owns one layer's q/k/v projections (the one that calls the attention function)."""
    return adapter.layers()[layer].get_submodule(adapter.layout.query.rpartition(".")[0])


def make_attention_modular(adapter: ModelAdapter, layer: int) -> None:
    """Families whose attention reads projection weights directly (WavLM) get a forward that
    calls them as modules, so they can be replaced (low rank, quantization)."""
    if adapter.config.model_type == "wavlm":
        make_modular(attention_module(adapter, layer))


class NoHeadsAttention(nn.Module):
    """An attention module with every head removed: what it passes on is the output projection's
    bias (a Linear with no input columns), so its matmuls and MACs are gone.

    Mixed in before the family's own attention class (see :func:`keep_heads`), so the module keeps
    its q/k/v/o Linear layers (with no rows or columns) and loads like any other."""

    output_projection: str | None  # the attribute holding the output projection, if it lives here

    def forward(self, hidden_states, *args, **kwargs):
        empty = hidden_states.new_zeros(*hidden_states.shape[:-1], 0)
        if self.output_projection is None:  # BERT: the projection follows in the parent module
            return empty, None
        return getattr(self, self.output_projection)(empty), None


_NO_HEADS_CLASSES: dict[type, type] = {}


def _remove_every_head(adapter: ModelAdapter, attention: nn.Module) -> None:
    if isinstance(attention, NoHeadsAttention) or adapter.config.model_type == "wavlm":
        return  # WavLM's subset-capable attention already runs with no heads (and keeps the position bias)
    cls = type(attention)
    if cls not in _NO_HEADS_CLASSES:
        _NO_HEADS_CLASSES[cls] = type(f"NoHeads{cls.__name__}", (NoHeadsAttention, cls), {})
    owner = adapter.layout.query.rpartition(".")[0]
    inside = adapter.layout.attention_output.startswith(owner + ".")
    attention.output_projection = adapter.layout.attention_output[len(owner) + 1:] if inside else None
    attention.__class__ = _NO_HEADS_CLASSES[cls]


def keep_heads(adapter: ModelAdapter, layer: int, heads: Sequence[int]) -> None:
    """Keep only ``heads`` (indices) of one layer's attention: q/k/v rows, output columns.

    With no heads left the attention passes on only its output bias (:class:`NoHeadsAttention`)."""
    size = head_dim(adapter)
    index = [h * size + i for h in heads for i in range(size)]
    block = adapter.layers()[layer]
    lay = adapter.layout
    for path in (lay.query, lay.key, lay.value):
        block.set_submodule(path, slice_linear(block.get_submodule(path), rows=index))
    block.set_submodule(lay.attention_output, slice_linear(block.get_submodule(lay.attention_output), cols=index))
    attention = block.get_submodule(lay.query.rpartition(".")[0])
    if adapter.config.model_type == "wavlm":
        keep_wavlm_heads(attention, list(heads))
    for attribute in HEAD_ATTRIBUTES:
        if hasattr(attention, attribute):
            setattr(attention, attribute, len(heads))
    if hasattr(attention, "all_head_size"):
        attention.all_head_size = len(heads) * size
    if not heads:
        _remove_every_head(adapter, attention)


def keep_neurons(adapter: ModelAdapter, layer: int, neurons: Sequence[int]) -> None:
    """Keep only FFN intermediate ``neurons``: rows of the first Linear, columns of the second."""
    block = adapter.layers()[layer]
    lay = adapter.layout
    block.set_submodule(lay.ffn_in, slice_linear(block.get_submodule(lay.ffn_in), rows=neurons))
    block.set_submodule(lay.ffn_out, slice_linear(block.get_submodule(lay.ffn_out), cols=neurons))
