"""The learning-rate schedule of every trainer in compbench (fine-tuning, distillation)."""

from __future__ import annotations

import torch


def warmup_then_linear_decay(optimizer: torch.optim.Optimizer, warmup_fraction: float,
                             total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_fraction`` of the steps (at least one), then linear decay to 0."""
    warmup = max(1, int(warmup_fraction * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / max(1, total_steps - warmup))))
