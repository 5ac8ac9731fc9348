"""Selective hard attention (AxFormer): each query attends to its ``top_k`` highest-scoring keys only.

The attention function is registered in transformers' attention-function registry under
``compbench_topk|BASE``, where BASE is the implementation the model ran before (``sdpa``,
``eager``, ...), with BASE's mask function; layers whose attention module carries
``compbench_top_k`` run top-k attention, every other layer runs BASE unchanged. So it works
whatever the attention implementation, in every family that calls the registry (all but WavLM,
whose gated relative-position attention compbench runs itself; it gets a clear error). A saved
variant records each layer's ``top_k`` in its structure (``hard_attention``) and gets it back on reload.

Cost, honestly: the scores are still computed densely (q times every key), and the aggregation
is a dense matmul with zeros outside the top k, so ``macs`` does not change. ``macs_effective``
counts only the k values aggregated per query: the probabilities are declared to the MAC counter
with ``k`` nonzeros per row (:func:`compbench.counting.macs.declare_density`). A sparse kernel
would be needed to turn that into time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from compbench.architectures.families import ModelAdapter
from compbench.counting.macs import declare_density
from compbench.errors import InvalidInputError
from compbench.surgery.attention_functions import base_function, register_over
from compbench.surgery.structure import StructurePart, register_part
from compbench.surgery.units import attention_module

PREFIX = "compbench_topk|"
TOP_K_ATTRIBUTE = "compbench_top_k"  # set on an attention module that runs hard (top-k) attention


def _top_k_attention(base: str):
    def attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                  **kwargs):
        top_k = getattr(module, TOP_K_ATTRIBUTE, None)
        if top_k is None:
            return base_function(base, module)(module, query, key, value, attention_mask, dropout=dropout,
                                        scaling=scaling, **kwargs)
        scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
        scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
        if attention_mask is not None:
            mask = attention_mask[..., : key.shape[-2]]
            scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
        keep = min(top_k, key.shape[-2])
        top = scores.topk(keep, dim=-1)
        sparse = torch.full_like(scores, float("-inf")).scatter(-1, top.indices, top.values)
        probs = F.softmax(sparse.float(), dim=-1).to(query.dtype)
        probs = F.dropout(probs, p=dropout, training=module.training)
        declare_density(probs, probs.numel() // key.shape[-2] * keep)
        output = torch.matmul(probs, value).transpose(1, 2).contiguous()
        return output, probs
    return attention


def register_top_k(base: str) -> str:
    """The registry name of top-k attention over ``base`` (registered on first use)."""
    return register_over(PREFIX, base, _top_k_attention)


def base_implementation(config) -> str:
    current = config._attn_implementation or "eager"
    return current.removeprefix(PREFIX)


def set_hard_attention(model: nn.Module, attention: nn.Module, top_k: int | None) -> None:
    """Switch one attention module to top-k attention (``top_k`` None switches it back)."""
    config = model.config
    if config.model_type == "wavlm":
        raise InvalidInputError("hard attention is not available for wavlm: its attention does not go through "
                                "transformers' attention-function registry")
    if top_k is not None and top_k < 1:
        raise InvalidInputError(f"top_k must be >= 1, got {top_k}")
    if top_k is None:
        if hasattr(attention, TOP_K_ATTRIBUTE):
            delattr(attention, TOP_K_ATTRIBUTE)
        return
    name = register_top_k(base_implementation(config))
    if config._attn_implementation != name:
        model.set_attn_implementation(name)
    setattr(attention, TOP_K_ATTRIBUTE, top_k)


def _describe(adapter: ModelAdapter) -> list[int | None] | None:
    """Keys each query attends to, per layer (None: dense attention); None when no layer is hard."""
    top_k = [getattr(attention_module(adapter, i), TOP_K_ATTRIBUTE, None) for i in range(len(adapter.layers()))]
    return top_k if any(k is not None for k in top_k) else None


def _rebuild(adapter: ModelAdapter, top_k: list[int | None]) -> None:
    for layer, keys in enumerate(top_k):
        if keys is not None:
            set_hard_attention(adapter.model, attention_module(adapter, layer), keys)


register_part(StructurePart("hard_attention", _describe, _rebuild))
