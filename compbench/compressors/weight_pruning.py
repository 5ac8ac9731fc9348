"""weight_pruning: unstructured magnitude pruning of the Transformer layers' Linear weights.

Zeroes the smallest-magnitude weights of every attention and FFN Linear, over all of them at
once (``scope: global``) or per matrix (``scope: layer``), or in an N:M pattern (``n``, ``m``:
keep the n largest of every m consecutive weights along the input dimension; the amount must
then be 1 - n/m). Dense MACs are unchanged and ``macs_effective`` drops; dense kernels do the
same work whatever the values, so latency is measured as it is and does not improve.
"""

from __future__ import annotations

import torch
from torch import nn

from compbench.architectures.families import ModelAdapter
from compbench.compression.compressor import Compressor, Option, half_up, register
from compbench.errors import InvalidInputError


def target_weights(adapter: ModelAdapter) -> dict[str, torch.Tensor]:
    """The weight matrices of every Linear inside the layers' attention and FFN blocks."""
    weights = {}
    for i, layer in enumerate(adapter.layers()):
        for name, module in layer.named_modules():
            if isinstance(module, nn.Linear) and adapter.component_of(
                    f"{adapter.prefix}{adapter.layout.layers}.{i}.{name}") in ("attention", "ffn"):
                weights[f"{adapter.layout.layers}.{i}.{name}"] = module.weight
    return weights


def _n_m_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    out_features, in_features = weight.shape
    groups = weight.detach().abs().reshape(out_features, in_features // m, m)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(2, groups.topk(n, dim=2).indices, True)
    return keep.reshape(out_features, in_features)


def _smallest_mask(magnitudes: torch.Tensor, count: int) -> torch.Tensor:
    """False for exactly ``count`` smallest entries (ties at the threshold broken by position)."""
    flat = magnitudes.flatten()
    if count == 0:
        return torch.ones_like(flat, dtype=torch.bool).reshape(magnitudes.shape)
    threshold = torch.kthvalue(flat, count).values
    keep = flat > threshold
    ties = torch.nonzero(flat == threshold).flatten()
    surplus = count - int((flat < threshold).sum())
    keep[ties[surplus:]] = True  # remove only as many tied entries as needed
    return keep.reshape(magnitudes.shape)


def prune_weights(model, amount: float, options: dict):
    adapter = ModelAdapter(model)
    weights = target_weights(adapter)
    n, m = options["n"], options["m"]
    masks: dict[str, torch.Tensor] = {}
    if (n is None) != (m is None):
        raise InvalidInputError("weight_pruning: give both n and m for an N:M pattern, or neither")
    if n is not None:
        if not 0 < n < m:
            raise InvalidInputError(f"weight_pruning: an N:M pattern needs 0 < n < m, got {n}:{m}")
        if abs(amount - (1 - n / m)) > 1e-9:
            raise InvalidInputError(f"weight_pruning: a {n}:{m} pattern removes {1 - n / m:g} of the weights; "
                                    f"set the amount to {1 - n / m:g}, not {amount:g}")
        for name, weight in weights.items():
            if weight.shape[1] % m:
                raise InvalidInputError(f"weight_pruning: {name} has {weight.shape[1]} inputs, not a multiple of {m}")
            masks[name] = _n_m_mask(weight, n, m)
    elif options["scope"] == "layer":
        masks = {name: _smallest_mask(w.detach().abs(), half_up(amount * w.numel())) for name, w in weights.items()}
    else:
        flat = torch.cat([w.detach().abs().flatten() for w in weights.values()])
        keep = _smallest_mask(flat, half_up(amount * flat.numel()))
        offset = 0
        for name, weight in weights.items():
            masks[name] = keep[offset:offset + weight.numel()].reshape(weight.shape)
            offset += weight.numel()
    per_matrix = {}
    with torch.no_grad():
        for name, weight in weights.items():
            weight.mul_(masks[name].to(weight.dtype))
            per_matrix[name] = int((~masks[name]).sum())
    total = sum(w.numel() for w in weights.values())
    return model, {"zeroed": per_matrix, "removed": sum(per_matrix.values()), "total": total,
                   "unit": "Linear weights zeroed"}


register(Compressor(
    name="weight_pruning", compress=prune_weights,
    description="zero the smallest-magnitude Linear weights (amount: fraction of weights); MACs stay, "
                "macs_effective drops",
    options={
        "scope": Option(str, "global", "one threshold for all matrices, or the same fraction per matrix",
                        choices=("global", "layer")),
        "n": Option(int, None, "N of an N:M pattern (keep n of every m)"),
        "m": Option(int, None, "M of an N:M pattern"),
    }))
