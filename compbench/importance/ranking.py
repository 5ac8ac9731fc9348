"""From scores to removals: which units go, least important first, with every layer keeping one; and, with an
alignment, every layer keeping a multiple of it (kernels run fastest at such widths), the total as near the amount
as the multiples allow."""

from __future__ import annotations

import math

import torch

from compbench.compression.compressor import Option, allowed_counts, half_up, nearest_allowed
from compbench.timing.shapes import preferred_alignment

ALIGN_OPTION = Option((int, str, type(None)), None,
                      "keep each layer's count at a multiple of this (or all of it), rounded to the nearest multiple "
                      "so the amount is met as closely as the multiples allow; auto: the multiple this machine's "
                      "kernels run fastest at (a short benchmark, once per machine, device, dtype and threads, "
                      "cached); null: no alignment", minimum=1, words=("auto",))


def resolve_align(align: int | str | None, unit_width: int, dtype: torch.dtype = torch.float32
                  ) -> tuple[int | None, dict]:
    """``align`` as a count of units, and what the manifest says of it: a number stays as it is; ``auto`` becomes
    the fewest units (each ``unit_width`` wide in the products: a head's size, 1 for a neuron, a rank or a
    channel) whose width is a multiple of the alignment this machine's kernels prefer
    (:func:`~compbench.timing.shapes.preferred_alignment`), with what that benchmark measured."""
    if align != "auto":
        return align, {}
    measured = preferred_alignment(dtype=dtype)
    return units_for(measured.elements, unit_width), {"align_option": "auto", "align_measured": measured.describe()}


def units_for(elements: int, unit_width: int) -> int:
    """The fewest units, each ``unit_width`` elements wide, whose width is a multiple of ``elements``."""
    return elements // math.gcd(elements, unit_width)


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


def nearest_multiple(value: int, align: int, limit: int) -> int:
    """The multiple of ``align`` nearest ``value`` (halves up), at least ``align`` and at most ``limit`` (``limit``
    itself where no multiple fits): a low-rank factorisation's rank, aligned."""
    if limit < align:
        return limit
    return min(max(align, half_up(value / align) * align), limit // align * align)


def aligned_kept(counts: list[int], kept: list[int], align: int) -> list[int]:
    """Per layer, a count of :func:`~compbench.compression.compressor.allowed_counts` near ``kept``, together as
    near ``sum(kept)`` as they can be: each layer starts at its nearest allowed count
    (:func:`~compbench.compression.compressor.nearest_allowed`), then the layer whose move shrinks the total's
    distance most moves to its other neighbour, while that helps."""
    target = sum(kept)
    choices = []
    for units, want in zip(counts, kept, strict=True):
        allowed = allowed_counts(units, align)
        below = max((a for a in allowed if a <= want), default=allowed[0])
        above = min((a for a in allowed if a >= want), default=allowed[-1])
        choices.append((below, above))
    chosen = [nearest_allowed(want, align, units) for units, want in zip(counts, kept, strict=True)]
    while True:
        gap = sum(chosen) - target
        best = None
        for layer, (below, above) in enumerate(choices):
            other = below if chosen[layer] == above else above
            new_gap = gap - chosen[layer] + other
            if abs(new_gap) < abs(gap) and (best is None or abs(new_gap) < abs(best[1])):
                best = (layer, new_gap, other)
        if best is None:
            return chosen
        chosen[best[0]] = best[2]


def aligned_removals(importance: list[torch.Tensor], removed: list[list[int]], align: int | str | None,
                     unit_width: int = 1, dtype: torch.dtype = torch.float32) -> tuple[list[list[int]], dict]:
    """``removed`` (per layer, from :func:`units_to_remove`) with each layer's kept count rounded by
    :func:`aligned_kept`, the least important units going first; and what the manifest records (the counts kept
    before and after rounding, and for ``auto`` what :func:`resolve_align` measured). Without ``align``,
    ``removed`` as it is."""
    align, measured = resolve_align(align, unit_width, dtype)
    if align is None:
        return removed, {}
    counts = [len(scores) for scores in importance]
    kept = [n - len(units) for n, units in zip(counts, removed, strict=True)]
    rounded = aligned_kept(counts, kept, align)
    aligned = [sorted(torch.argsort(scores)[:n - k].tolist()) for scores, n, k in zip(importance, counts, rounded,
                                                                                      strict=True)]
    return aligned, {"align": align, **measured, "kept_before_align": kept, "kept_after_align": rounded}
