"""From scores to removals: which units go, least important first, with every layer keeping one."""

from __future__ import annotations

import torch

from compbench.compression.compressor import half_up


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
