"""A structural copy of a module on the ``meta`` device: same shapes, no weight memory."""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn


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
