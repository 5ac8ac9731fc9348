"""A time-reduction layer (FitHuBERT's): a strided convolution over frames between a HuBERT encoder's input
layer norm and its first layer, so every Transformer layer runs on fewer frames (half, at FitHuBERT's factor 2).

transformers' HuBERT has no such layer. It is built into ``encoder.layer_norm`` (the norm, then the reduction:
:class:`NormThenTimeReduction`), where the post-norm encoder runs it after the convolutional positions and before
the first layer, as FitHuBERT's fairseq encoder does at ``tr_layer_index: 0``; and it is a structure part, so a
config that records it (``compbench_structure.time_reduction``: ``factor``, ``kernel``) builds it again, a preset
from its config as a saved variant on reload. Every Transformer layer then sees the reduced frames; an attention
mask of the unreduced frames does not fit them, so a model with one is measured unpadded (batches of equal-length
inputs, as measure builds them).
"""

from __future__ import annotations

import torch
from torch import nn

from compbench.architectures.families import ModelAdapter
from compbench.errors import InvalidInputError
from compbench.surgery.structure import StructurePart, register_part


class NormThenTimeReduction(nn.Module):
    """The encoder's input layer norm, then a convolution over time: ``kernel`` frames at a stride of ``factor``,
    the same width in and out, with a bias (FitHuBERT's ``tr_layer_type: conv1d``)."""

    def __init__(self, norm: nn.LayerNorm, factor: int, kernel: int):
        super().__init__()
        width = norm.normalized_shape[0]
        self.norm = norm
        self.reduce = nn.Conv1d(width, width, kernel_size=kernel, stride=factor)
        self.factor, self.kernel = factor, kernel

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:  # (batch, frames, width)
        normed = self.norm(hidden_states)
        return self.reduce(normed.transpose(1, 2)).transpose(1, 2)


def add_time_reduction(adapter: ModelAdapter, factor: int, kernel: int) -> None:
    """Build the reduction into ``adapter``'s encoder (a post-norm HuBERT-style one: the norm before the layers)."""
    if factor < 1 or kernel < 1:
        raise InvalidInputError(f"a time reduction needs factor and kernel >= 1, got {factor} and {kernel}")
    encoder = getattr(adapter.base, "encoder", None)
    if adapter.modality != "speech" or getattr(adapter.config, "do_stable_layer_norm", False) or \
            not isinstance(getattr(encoder, "layer_norm", None), nn.LayerNorm):
        raise InvalidInputError("a time reduction goes between a post-norm speech encoder's input norm and its "
                                f"first layer; {adapter.config.model_type} has none")
    encoder.layer_norm = NormThenTimeReduction(encoder.layer_norm, factor, kernel)


def time_reduction(adapter: ModelAdapter) -> NormThenTimeReduction | None:
    encoder = getattr(adapter.base, "encoder", None)
    norm = getattr(encoder, "layer_norm", None)
    return norm if isinstance(norm, NormThenTimeReduction) else None


def _describe(adapter: ModelAdapter) -> dict | None:
    reduction = time_reduction(adapter)
    return None if reduction is None else {"factor": reduction.factor, "kernel": reduction.kernel}


def _rebuild(adapter: ModelAdapter, value: dict) -> None:
    if time_reduction(adapter) is None:
        add_time_reduction(adapter, value["factor"], value["kernel"])


register_part(StructurePart("time_reduction", _describe, _rebuild))
