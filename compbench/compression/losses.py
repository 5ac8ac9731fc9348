"""Losses a compressor trains a student with: hidden-state matching to a teacher's layer."""

from __future__ import annotations

import torch
from torch.nn import functional


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
