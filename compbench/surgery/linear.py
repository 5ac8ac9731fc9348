"""Linear layers cut down and factorised: the slices that removing heads and neurons takes, and the
rank-``r`` factorisation that low rank puts in a Linear's place."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import nn


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
