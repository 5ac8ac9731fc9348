"""Hard-concrete gates (Louizos, Welling & Kingma 2018, "Learning Sparse Neural Networks through L0
Regularization"), as DPHuBERT puts them on a speech model's units.

Each gate has a learned ``log_alpha``. In training a gate is sampled: ``u ~ U(0, 1)``,
``s = sigmoid((log u - log(1 - u) + log_alpha) / beta)``, stretched to ``(gamma, zeta)`` and clipped
to [0, 1], so it is exactly 0 or 1 with non-zero probability and differentiable in between. The
probability that a gate is not zero, ``sigmoid(log_alpha - beta * log(-gamma / zeta))``, gives the
expected number of units kept. Outside training the gates are deterministic: as many stay as are expected
to (rounded), those of the largest ``log_alpha``, and the others are 0 (as DPHuBERT's code does, so the
units removed match the expected count the training drove to its target).
"""

from __future__ import annotations

import math

import torch
from torch import nn

BETA, GAMMA, ZETA = 2 / 3, -0.1, 1.1  # Louizos et al.'s temperature and stretch
EPSILON = 1e-6  # keeps the uniform sample off 0 and 1


class HardConcrete(nn.Module):
    """``units`` hard-concrete gates, started at ``keep`` probability of not being zero."""

    def __init__(self, units: int, keep: float = 0.95, generator: torch.Generator | None = None):
        super().__init__()
        if not 0 < keep < 1:
            raise ValueError("keep must be strictly between 0 and 1")
        start = math.log(keep / (1 - keep)) + BETA * math.log(-GAMMA / ZETA)  # P(not zero) = keep
        self.log_alpha = nn.Parameter(torch.full((units,), start))
        self.generator = generator

    def probability_kept(self) -> torch.Tensor:
        """Each gate's probability of not being zero (differentiable in ``log_alpha``)."""
        return torch.sigmoid(self.log_alpha - BETA * math.log(-GAMMA / ZETA))

    def expected_kept(self) -> torch.Tensor:
        return self.probability_kept().sum()

    def largest(self, count: int) -> list[int]:
        """The ``count`` gates of the largest ``log_alpha`` (ties to the lower index), in index order."""
        scores = self.log_alpha.detach().tolist()
        return sorted(sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:count])

    def open_values(self) -> torch.Tensor:
        """What each gate is worth outside training when it stays: ``sigmoid(0.8 * log_alpha / beta)``."""
        return torch.sigmoid(0.8 * self.log_alpha / BETA)

    def deterministic(self) -> torch.Tensor:
        """The gates outside training, as DPHuBERT makes them: the expected number of gates that are not zero,
        rounded, stay (those of the largest ``log_alpha``; ties to the lower index) at their
        :meth:`open_values`; the others are 0."""
        mask = torch.zeros_like(self.log_alpha)
        mask[self.largest(int(round(float(self.expected_kept().detach()))))] = 1.0
        return self.open_values() * mask

    def forward(self) -> torch.Tensor:
        if not self.training:
            return self.deterministic()
        u = torch.rand(self.log_alpha.shape, generator=self.generator).clamp(EPSILON, 1 - EPSILON)
        s = torch.sigmoid((u.log() - (1 - u).log() + self.log_alpha) / BETA)
        return (s * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)
