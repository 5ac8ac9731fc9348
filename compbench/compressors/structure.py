"""Shape surgery shared by the structured compressors, and its record in the config.

Removing heads or neurons slices Linear layers; low-rank replaces a Linear by two. The final
shapes are written into the config as ``compbench_structure`` so that a saved variant is
rebuilt with the same shapes before its weights are loaded (:func:`apply_structure`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import nn

from compbench.models.families import ModelAdapter

STRUCTURE_KEY = "compbench_structure"
TOP_K_ATTRIBUTE = "compbench_top_k"  # set on an attention module that runs hard (top-k) attention
EXITS_ATTRIBUTE = "compbench_exits"  # early exit: the model's ModuleList of exits (saved with its weights)
HEAD_ATTRIBUTES = ("num_heads", "num_attention_heads", "n_heads")


class LowRankLinear(nn.Module):
    """``up(down(x))``: a rank-``rank`` factorisation of a Linear layer."""

    def __init__(self, in_features: int, rank: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))


def _sliced(linear: nn.Linear, rows: Sequence[int] | None, cols: Sequence[int] | None) -> nn.Linear:
    weight = linear.weight.detach()
    if rows is not None:
        weight = weight[list(rows)]
    if cols is not None:
        weight = weight[:, list(cols)]
    with warnings.catch_warnings():  # a Linear with no rows or columns left: nothing to initialise
        warnings.filterwarnings("ignore", "Initializing zero-element tensors")
        new = nn.Linear(weight.shape[1], weight.shape[0], bias=linear.bias is not None,
                        device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if linear.bias is not None:
            new.bias.copy_(linear.bias.detach() if rows is None else linear.bias.detach()[list(rows)])
    new.train(linear.training)
    return new


def slice_linear(module: nn.Module, rows: Sequence[int] | None = None,
                 cols: Sequence[int] | None = None) -> nn.Module:
    """Keep output features ``rows`` and input features ``cols`` of a Linear or LowRankLinear."""
    if isinstance(module, LowRankLinear):
        new = LowRankLinear(module.in_features if cols is None else len(cols), module.rank,
                            module.out_features if rows is None else len(rows), module.up.bias is not None)
        new.down = _sliced(module.down, None, cols)
        new.up = _sliced(module.up, rows, None)
        return new
    if not isinstance(module, nn.Linear):
        raise TypeError(f"cannot slice a {type(module).__name__}")
    return _sliced(module, rows, cols)


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The (out, in) matrix a Linear or LowRankLinear applies."""
    if isinstance(module, LowRankLinear):
        return module.up.weight.detach() @ module.down.weight.detach()
    return module.weight.detach()


def half_up(value: float) -> int:
    """Round to the nearest whole number, halves up (0.5 * 9 heads -> 5)."""
    return int(value + 0.5)


def units_to_remove(importance: list[torch.Tensor], amount: float, scope: str) -> list[list[int]]:
    """Units (heads, neurons) to remove per layer, least important first; every layer keeps one.

    ``scope: layer`` removes ``round(amount * n)`` from each layer of ``n``; ``scope: global``
    removes ``round(amount * total)`` by one ranking across layers."""
    counts = [len(scores) for scores in importance]
    if scope == "layer":
        return [sorted(torch.argsort(scores)[:min(half_up(amount * n), n - 1)].tolist())
                for scores, n in zip(importance, counts, strict=True)]
    target = half_up(amount * sum(counts))
    ranked = sorted((float(score), layer, unit) for layer, scores in enumerate(importance)
                    for unit, score in enumerate(scores))
    removed: list[list[int]] = [[] for _ in counts]
    for _, layer, unit in ranked:
        if target == 0:
            break
        if counts[layer] - len(removed[layer]) > 1:
            removed[layer].append(unit)
            target -= 1
    return [sorted(units) for units in removed]


def head_dim(adapter: ModelAdapter) -> int:
    return adapter.config.hidden_size // adapter.config.num_attention_heads


def heads_in_layer(adapter: ModelAdapter, layer: int) -> int:
    return adapter.attention_projections(layer)["query"].out_features // head_dim(adapter)


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
        from compbench.compressors.wavlm_attention import keep_wavlm_heads

        keep_wavlm_heads(attention, list(heads))
    for attribute in HEAD_ATTRIBUTES:
        if hasattr(attention, attribute):
            setattr(attention, attribute, len(heads))
    if hasattr(attention, "all_head_size"):
        attention.all_head_size = len(heads) * size
    if not heads:
        _remove_every_head(adapter, attention)


def keep_layers(adapter: ModelAdapter, layers: Sequence[int]) -> int:
    """Keep only the given Transformer layers, in order; returns how many are left.

    A head that reads a learned weighted sum of every hidden state (``use_weighted_layer_sum``) keeps
    the weights of the states that remain: the embeddings' and the kept layers' outputs."""
    modules = adapter.layers()
    adapter.base.set_submodule(adapter.layout.layers, nn.ModuleList([modules[i] for i in layers]))
    adapter.config.num_hidden_layers = len(layers)
    weights = getattr(adapter.model, "layer_weights", None)
    if adapter.base is not adapter.model and isinstance(weights, nn.Parameter):
        states = torch.as_tensor([0] + [i + 1 for i in layers])
        adapter.model.layer_weights = nn.Parameter(weights.detach()[states].clone(),
                                                   requires_grad=weights.requires_grad)
    return len(layers)


def keep_neurons(adapter: ModelAdapter, layer: int, neurons: Sequence[int]) -> None:
    """Keep only FFN intermediate ``neurons``: rows of the first Linear, columns of the second."""
    block = adapter.layers()[layer]
    lay = adapter.layout
    block.set_submodule(lay.ffn_in, slice_linear(block.get_submodule(lay.ffn_in), rows=neurons))
    block.set_submodule(lay.ffn_out, slice_linear(block.get_submodule(lay.ffn_out), cols=neurons))


def attention_module(adapter: ModelAdapter, layer: int) -> nn.Module:
    """The module that owns one layer's q/k/v projections (the one that calls the attention function)."""
    return adapter.layers()[layer].get_submodule(adapter.layout.query.rpartition(".")[0])


def make_attention_modular(adapter: ModelAdapter, layer: int) -> None:
    """Families whose attention reads projection weights directly (WavLM) get a forward that
    calls them as modules, so they can be replaced (low rank, quantization)."""
    if adapter.config.model_type == "wavlm":
        from compbench.compressors.wavlm_attention import make_modular

        make_modular(attention_module(adapter, layer))


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
    top_k = [getattr(attention_module(adapter, i), TOP_K_ATTRIBUTE, None) for i in layers]
    if any(k is not None for k in top_k):  # hard attention: keys each query attends to, per layer
        structure["hard_attention"] = top_k
    exits = getattr(adapter.model, EXITS_ATTRIBUTE, None)
    if exits is not None:  # early exit: an exit after each of the first layers, and when to leave
        structure["early_exit"] = {"exits": len(exits), "labels": adapter.config.num_labels,
                                   "pooling": exits[0].pooling if len(exits) else None,
                                   "threshold": adapter.model.compbench_exit_threshold}
    return structure


def config_intermediate_size(config) -> int:
    return getattr(config, "intermediate_size", None) or config.hidden_dim  # DistilBERT: hidden_dim


def is_plain(adapter: ModelAdapter, structure: dict) -> bool:
    layers = len(adapter.layers())
    heads = adapter.config.num_attention_heads
    inner = config_intermediate_size(adapter.config)
    return (structure["attention_heads"] == [heads] * layers
            and structure["intermediate_sizes"] == [inner] * layers and not structure["low_rank"]
            and "kept_heads" not in structure and "hard_attention" not in structure
            and "early_exit" not in structure)


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
    for layer, top_k in enumerate(structure.get("hard_attention", [])):
        if top_k is not None:
            from compbench.compressors.hard_attention import set_hard_attention

            set_hard_attention(adapter.model, attention_module(adapter, layer), top_k)
    if structure.get("early_exit") is not None:
        from compbench.compressors.early_exit import ExitHead, with_exits

        spec = structure["early_exit"]
        exits = nn.ModuleList(ExitHead(adapter.config.hidden_size, spec["labels"], spec["pooling"])
                              for _ in range(spec["exits"]))
        with_exits(adapter.model, exits, spec["threshold"])
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
