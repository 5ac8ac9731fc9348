"""Losses a compressor trains a student with: hidden-state matching to a teacher's layer, which layers it matches,
and what a student turns off while it learns."""

from __future__ import annotations

import torch
from torch.nn import functional

TRAINING_OFF = {"apply_spec_augment": False, "layerdrop": 0.0}  # in a student while it learns: its hidden states
# must line up with the teacher's, frame for frame and layer for layer


def target_layers(teacher_layers: int, count: int) -> list[int]:
    """Evenly spaced teacher hidden-state indices (1 = the first layer's output), the last one last."""
    return [round((k + 1) * teacher_layers / count) for k in range(count)]


def hidden_loss(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None,
                cosine_weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, L1, cosine) of one target: L1 plus ``cosine_weight`` * (-log sigmoid(cosine)) per frame or token
    (DistilHuBERT, DPHuBERT), averaged over the unmasked ones."""
    predicted, target = predicted.float(), target.float()
    l1 = (predicted - target).abs().mean(dim=-1)
    cosine = functional.cosine_similarity(predicted, target, dim=-1)
    if mask is None:
        mask = torch.ones_like(l1)
    mask = mask.to(l1.dtype)
    count = mask.sum().clamp_min(1)
    l1, cosine_mean = (l1 * mask).sum() / count, (cosine * mask).sum() / count
    loss = l1 - cosine_weight * ((functional.logsigmoid(cosine) * mask).sum() / count)
    return loss, l1, cosine_mean
