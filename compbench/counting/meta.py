"""A structural copy of a module on the ``meta`` device (same shapes, no weight memory), and operators run on
meta tensors with their output shapes remembered."""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_unflatten


def meta_clone(model: nn.Module) -> tuple[nn.Module, dict[int, torch.Tensor]]:
    """Copy ``model`` with every parameter and buffer replaced by a meta tensor.

    Returns the copy and a map from ``id(meta tensor)`` to the original tensor, so that
    callers can look up the real values (e.g. how many weights are nonzero). The input
    model is not modified and no tensor data is copied.
    """
    memo: dict[int, object] = {}
    originals: dict[int, torch.Tensor] = {}
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if id(tensor) in memo:
            continue
        meta = torch.empty_like(tensor, device="meta")
        if isinstance(tensor, nn.Parameter):
            meta = nn.Parameter(meta, requires_grad=tensor.requires_grad)
        memo[id(tensor)] = meta
        originals[id(meta)] = tensor
    clone = copy.deepcopy(model, memo)
    return clone, originals


def to_meta(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same inputs as meta tensors (shape and dtype kept)."""
    return {k: torch.empty_like(v, device="meta") if isinstance(v, torch.Tensor) else v
            for k, v in inputs.items()}


def is_meta(model: nn.Module) -> bool:
    return all(t.is_meta for t in itertools.chain(model.parameters(), model.buffers()))


# (operator, the shape, stride, dtype and offset of each tensor operand, every other operand with its type)
# -> the layout of each output. A meta kernel computes nothing but output shapes, yet many of PyTorch's are
# Python (torch._meta_registrations, torch._refs): about a millisecond per call here, two thirds of a small
# model's count. A Transformer's layers repeat the same operators on the same shapes.
_OUTPUT_LAYOUTS: dict[tuple, tuple] = {}
_MOST_LAYOUTS = 50_000


def _operand_key(value) -> object:
    if isinstance(value, torch.Tensor):
        return (tuple(value.shape), value.stride(), value.dtype, value.storage_offset())
    return (type(value), tuple(value) if isinstance(value, list) else value)  # 2 and 2.0 promote differently


def _fresh_outputs(func) -> bool:
    """Whether ``func`` neither changes an input nor returns a view of one (its outputs are new tensors)."""
    schema = func._schema
    return not schema.is_mutable and all(ret.alias_info is None for ret in schema.returns)


def run_on_meta(func, args: tuple, kwargs: dict):
    """``func(*args, **kwargs)`` for operands that are plain meta tensors, its outputs' layouts computed once per
    distinct operator and operand layout (the same outputs: empty meta tensors of that shape, stride and dtype).
    Anything else (a view, an in-place operator, a real or subclassed tensor, a non-tensor output) runs as is."""
    flat, _ = tree_flatten((args, kwargs))
    tensors = [value for value in flat if isinstance(value, torch.Tensor)]
    if not tensors or not _fresh_outputs(func) or not all(
            type(t) in (torch.Tensor, nn.Parameter) and t.is_meta for t in tensors):
        return func(*args, **kwargs)
    try:
        key = (func, tuple(_operand_key(value) for value in flat))
        layouts = _OUTPUT_LAYOUTS.get(key)
    except TypeError:  # an operand that cannot be a key
        return func(*args, **kwargs)
    if layouts is not None:
        spec, outputs = layouts
        return tree_unflatten([torch.empty_strided(shape, stride, dtype=dtype, device="meta")
                               for shape, stride, dtype in outputs], spec)
    out = func(*args, **kwargs)
    outputs, spec = tree_flatten(out)
    if outputs and all(type(o) is torch.Tensor and o.is_meta and o.storage_offset() == 0 for o in outputs):
        if len(_OUTPUT_LAYOUTS) >= _MOST_LAYOUTS:
            _OUTPUT_LAYOUTS.clear()
        _OUTPUT_LAYOUTS[key] = (spec, [(tuple(o.shape), o.stride(), o.dtype) for o in outputs])
    return out
