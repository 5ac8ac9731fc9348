"""Weights that are not plain tensors: torch.ao's packed int8 Linears and torchao's tensor
subclasses (int8 data plus scales). Counting, memory and saving look through them here."""

from __future__ import annotations

import torch
from torch import nn


def packed_linear_weight(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """(int8 weight, float bias) of a torch.ao dynamically quantized Linear, else None."""
    packed = getattr(module, "_packed_params", None)
    if packed is None or not hasattr(packed, "_weight_bias"):
        return None
    return packed._weight_bias()


def is_tensor_subclass(tensor: torch.Tensor) -> bool:
    """A wrapper subclass such as torchao's quantized tensors (not a plain tensor or Parameter)."""
    return type(tensor) not in (torch.Tensor, nn.Parameter) and hasattr(tensor, "__tensor_flatten__")


def inner_tensors(tensor: torch.Tensor) -> list[torch.Tensor]:
    names, _ = tensor.__tensor_flatten__()
    return [getattr(tensor, name) for name in names]


def weight_values(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor holding a weight's values: a subclass's first inner tensor (its quantized data)."""
    return inner_tensors(tensor)[0] if is_tensor_subclass(tensor) else tensor


def count_nonzero(tensor: torch.Tensor) -> int:
    values = weight_values(tensor)
    return int(torch.count_nonzero(values.int_repr() if values.is_quantized else values))


def storage_bytes(tensor: torch.Tensor) -> int:
    """Bytes a weight occupies (for a subclass: all its inner tensors, e.g. int8 data and scales)."""
    if is_tensor_subclass(tensor):
        return sum(storage_bytes(t) for t in inner_tensors(tensor))
    return tensor.numel() * tensor.element_size()


INPUT_DEPENDENT_ATTRIBUTE = "compbench_input_dependent"  # a model whose path through it depends on input values


def has_quantized_weights(model: nn.Module) -> bool:
    """True when some weights are packed or tensor subclasses (quantized): not copyable to the meta device."""
    return any(packed_linear_weight(m) is not None for m in model.modules()) or any(
        is_tensor_subclass(p) for p in model.parameters())


def is_input_dependent(model: nn.Module) -> bool:
    """True for a model whose path through it depends on the input's values (early exit)."""
    return bool(getattr(model, INPUT_DEPENDENT_ATTRIBUTE, False))


def needs_real_forward(model: nn.Module) -> bool:
    """True when counting needs a real forward: quantized weights, or a model whose path depends on
    the input's values (early exit), where only a real forward shows what runs."""
    return is_input_dependent(model) or has_quantized_weights(model)
