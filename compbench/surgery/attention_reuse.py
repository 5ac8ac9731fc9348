"""Attention-map reuse (ARMHuBERT, Jang et al., Interspeech 2023): a layer that reuses the attention probabilities
of the layer before it, so it has no queries or keys, only values and its output projection.

transformers' HuBERT has no such layer. Each reusing layer's attention becomes :class:`ReusedMapAttention` (its
value and output projections; its probabilities read from the layer before), and each layer whose map a later
layer reuses keeps its own attention module, marked to keep its probabilities (``compbench_map_store``), which an
attention function registered in transformers' attention-function registry (``compbench_maps|BASE``, over the
implementation the model ran before) computes explicitly, as eager attention does, and keeps; every other layer
runs BASE unchanged. A reusing layer's cost is its two projections and one matmul of the probabilities with its
values: no query, key or score matmul, which the MAC counter sees. The pattern (``attention_reuse``: per layer,
whether it reuses) is a structure part: a preset builds it from its config, a saved variant gets it back on reload.

What removes heads cannot work on such a model (a reusing layer has the heads of the map it reads, and no queries
or keys to score or slice): the adapter's attention projections name the layer that has none.
"""

from __future__ import annotations

import torch
from torch import nn

from compbench.architectures.families import ModelAdapter
from compbench.errors import InvalidInputError
from compbench.surgery.attention_functions import base_function, eager_function, register_over
from compbench.surgery.structure import StructurePart, register_part

PREFIX = "compbench_maps|"
MAP_STORE = "compbench_map_store"  # on an attention module whose probabilities the next layer reuses


class MapStore:
    """The attention probabilities of the last layer that computed them, for the layers that reuse them (shared by
    the modules of one model; a deep copy of the model copies it with them)."""

    def __init__(self):
        self.probabilities: torch.Tensor | None = None


class ReusedMapAttention(nn.Module):
    """A layer's attention that reuses the previous layer's probabilities: ``out_proj(probabilities @ v_proj(x))``,
    heads of ``width // heads`` values each (ARMHuBERT's ``MultiheadAttentionReuse``)."""

    def __init__(self, width: int, heads: int, store: MapStore, v_proj: nn.Linear | None = None,
                 out_proj: nn.Linear | None = None):
        super().__init__()
        self.num_heads, self.head_dim = heads, width // heads
        self.v_proj = v_proj if v_proj is not None else nn.Linear(width, width)
        self.out_proj = out_proj if out_proj is not None else nn.Linear(width, width)
        setattr(self, MAP_STORE, store)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
        probabilities = getattr(self, MAP_STORE).probabilities
        if probabilities is None:
            raise RuntimeError("a layer that reuses an attention map ran before any layer computed one")
        batch, frames, _ = hidden_states.shape
        values = self.v_proj(hidden_states).view(batch, frames, -1, self.head_dim).transpose(1, 2)
        output = torch.matmul(probabilities.to(values.dtype), values).transpose(1, 2).reshape(batch, frames, -1)
        return self.out_proj(output), None


def _map_keeping_attention(base: str):
    def attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                  **kwargs):
        store = getattr(module, MAP_STORE, None)
        if store is None:
            return base_function(base, module)(module, query, key, value, attention_mask, dropout=dropout,
                                        scaling=scaling, **kwargs)
        output, probabilities = eager_function(module)(module, query, key, value, attention_mask, dropout=dropout,
                                                       scaling=scaling)
        store.probabilities = probabilities
        return output, probabilities
    return attention


def register_map_keeping(base: str) -> str:
    """The registry name of map-keeping attention over ``base`` (registered on first use)."""
    return register_over(PREFIX, base, _map_keeping_attention)


def add_attention_reuse(adapter: ModelAdapter, pattern: list[bool]) -> None:
    """Make every layer ``pattern`` marks reuse the attention probabilities of the last layer before it that
    computes its own (the first layer computes its own)."""
    layers = adapter.layers()
    if len(pattern) != len(layers) or not pattern or pattern[0]:
        raise InvalidInputError(f"an attention-reuse pattern names each of the {len(layers)} layers, and the first "
                                "computes its own map")
    if adapter.config.model_type not in ("hubert", "wav2vec2", "data2vec-audio"):
        raise InvalidInputError(f"attention-map reuse is built for HuBERT-style encoders, not "
                                f"{adapter.config.model_type}")
    store = MapStore()
    for layer, reuses in zip(layers, pattern, strict=True):
        attention = layer.attention
        if reuses:
            layer.attention = ReusedMapAttention(attention.embed_dim, attention.num_heads, store,
                                                 attention.v_proj, attention.out_proj)
        else:
            setattr(attention, MAP_STORE, store)
    base = (adapter.config._attn_implementation or "eager").removeprefix(PREFIX)
    adapter.model.set_attn_implementation(register_map_keeping(base))


def reuse_pattern(adapter: ModelAdapter) -> list[bool] | None:
    pattern = [isinstance(getattr(layer, "attention", None), ReusedMapAttention) for layer in adapter.layers()]
    return pattern if any(pattern) else None


def _rebuild(adapter: ModelAdapter, pattern: list[bool]) -> None:
    if reuse_pattern(adapter) is None:
        add_attention_reuse(adapter, pattern)


register_part(StructurePart("attention_reuse", reuse_pattern, _rebuild))
