"""low_rank: truncated SVD of the layers' Linear weights, ``W ≈ (U√S)(√S Vᵀ)``.

The kept rank of a Linear with ``min(in, out) = k`` singular values is the smallest of
``round((1 - amount) * k)``, the rank that keeps ``energy`` of the squared singular values,
and an explicit ``rank``; with ``align: N``, then the nearest multiple of N (the manifest keeps the ranks
before rounding). A Linear is replaced by two only where that lowers its MACs
(``rank * (in + out) < in * out``) unless ``only_if_cheaper`` is false; with ``only_if_cheaper: measured``,
only where the two thin products run faster than the one they replace on this machine (timed once per shape,
machine, device, dtype and threads at ``measured_rows`` rows, and cached: :mod:`compbench.timing.shapes`), the
times in the manifest. At full rank the factorisation reproduces the original outputs to float tolerance.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch
from torch import nn

from compbench.architectures.families import ModelAdapter
from compbench.compression.compressor import Compressor, Option, half_up, register
from compbench.errors import InvalidInputError
from compbench.importance.ranking import ALIGN_OPTION, nearest_multiple, resolve_align
from compbench.surgery.linear import LowRankLinear
from compbench.surgery.units import make_attention_modular
from compbench.timing.shapes import factorisation_timing

TARGETS = {"attention": ("query", "key", "value", "attention_output"), "ffn": ("ffn_in", "ffn_out")}


def _targets(adapter: ModelAdapter, which: str) -> dict[str, nn.Module]:
    groups = ("attention", "ffn") if which == "all" else (which,)
    found = {}
    for i, layer in enumerate(adapter.layers()):
        for group in groups:
            for field in TARGETS[group]:
                path = getattr(adapter.layout, field)
                try:
                    found[f"{adapter.layout.layers}.{i}.{path}"] = layer.get_submodule(path)
                except AttributeError:  # a layer that reuses an attention map (ARMHuBERT) has no query or key
                    continue
    return found


# factorisations of one weight at several ranks (a sweep's amounts of one model) share its SVD: kept for the process,
# keyed by the weight's values, the least recently used dropped first beyond about this many elements (fp32)
SVD_CACHE_ELEMENTS = 128 * 2**20
_SVDS: OrderedDict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = OrderedDict()


def _svd(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``torch.linalg.svd(weight)`` (thin), computed once per weight's values in this process."""
    weight = weight.detach().float().contiguous()
    key = f"{tuple(weight.shape)}:{weight.device}:" + hashlib.sha1(weight.cpu().numpy().tobytes()).hexdigest()
    if key in _SVDS:
        _SVDS.move_to_end(key)
        return _SVDS[key]
    factors = torch.linalg.svd(weight, full_matrices=False)
    _SVDS[key] = factors
    while len(_SVDS) > 1 and sum(t.numel() for f in _SVDS.values() for t in f) > SVD_CACHE_ELEMENTS:
        _SVDS.popitem(last=False)
    return factors


def factorize(linear: nn.Linear, rank: int) -> LowRankLinear:
    u, s, vh = _svd(linear.weight)
    root = s[:rank].sqrt()
    low = LowRankLinear(linear.in_features, rank, linear.out_features, linear.bias is not None).to(
        device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        low.down.weight.copy_(root[:, None] * vh[:rank])
        low.up.weight.copy_(u[:, :rank] * root[None, :])
        if linear.bias is not None:
            low.up.bias.copy_(linear.bias.detach())
    return low


def _rank_for(linear: nn.Linear, amount: float, options: dict, name: str) -> int:
    full = min(linear.in_features, linear.out_features)
    if options["rank"] is not None and options["rank"] > full:
        raise InvalidInputError(f"low_rank: rank {options['rank']} is above the limit {full} of {name} "
                                f"({linear.out_features}x{linear.in_features})")
    rank = max(1, half_up((1 - amount) * full))
    if options["rank"] is not None:
        rank = min(rank, options["rank"])
    if options["energy"] < 1.0:
        s = _svd(linear.weight)[1]
        share = torch.cumsum(s.pow(2), 0) / s.pow(2).sum()
        rank = min(rank, int(torch.searchsorted(share, torch.tensor(options["energy"]))) + 1)
    return rank


def low_rank(model, amount: float, options: dict):
    adapter = ModelAdapter(model)
    if options["rank"] is not None and options["rank"] < 1:
        raise InvalidInputError(f"low_rank: rank must be >= 1, got {options['rank']}")
    if not 0 < options["energy"] <= 1:
        raise InvalidInputError(f"low_rank: energy must be in (0, 1], got {options['energy']:g}")
    factorized, kept, unaligned, timed = {}, [], {}, {}
    dtype = adapter.floating_dtype()
    align, measured = resolve_align(options["align"], 1, dtype)
    targets = _targets(adapter, options["targets"])
    for name, linear in targets.items():
        if not isinstance(linear, nn.Linear):
            raise InvalidInputError(f"low_rank: {name} is a {type(linear).__name__}, not a Linear")
    if "attention" in (("attention", "ffn") if options["targets"] == "all" else (options["targets"],)):
        for layer in range(len(adapter.layers())):
            make_attention_modular(adapter, layer)
    for name, linear in targets.items():
        rank = _rank_for(linear, amount, options, name)
        if align is not None:
            unaligned[name] = rank
            rank = nearest_multiple(rank, align, min(linear.in_features, linear.out_features))
        if options["only_if_cheaper"] == "measured":
            timing = factorisation_timing(linear.in_features, linear.out_features, rank, dtype=dtype,
                                          rows=options["measured_rows"])
            timed[name] = {"dense_ms": round(timing.dense_s * 1e3, 4),
                           "factorised_ms": round(timing.factorised_s * 1e3, 4)}
            if not timing.faster:
                kept.append(name)
                continue
        elif options["only_if_cheaper"] and rank * (linear.in_features + linear.out_features) >= \
                linear.in_features * linear.out_features:
            kept.append(name)
            continue
        adapter.base.set_submodule(name, factorize(linear, rank))
        factorized[name] = rank
    extra = {"align": align, **measured, "ranks_before_align": unaligned} if align is not None else {}
    if timed:  # each Linear's product and its factorisation's, on this machine
        extra.update(timed=timed, measured_rows=options["measured_rows"])
    return model, {"ranks": factorized, "unchanged": kept, "removed": len(factorized), "total": len(targets),
                   "unit": "Linears factorised", **extra}


register(Compressor(
    name="low_rank", compress=low_rank,
    description="truncated SVD of attention/FFN Linears (amount: fraction of each matrix's rank removed)",
    options={
        "targets": Option(str, "all", "which Linears", choices=("all", "attention", "ffn")),
        "energy": Option(float, 1.0, "also cap the rank at the share of squared singular values kept"),
        "rank": Option(int, None, "also cap the rank at this number"),
        "only_if_cheaper": Option((bool, str), True, "replace a Linear only where two are fewer MACs (true), where "
                                  "two run faster on this machine (measured: timed once per shape, cached), or "
                                  "always (false)", words=("measured",)),
        "measured_rows": Option(int, 256, "rows (tokens or frames of a batch) the products are timed at for "
                                "only_if_cheaper: measured", minimum=1),
        "align": ALIGN_OPTION,
    }))
