"""The SUPERB protocol for utterance classification: a frozen upstream, a learned weighted sum
of its layers' hidden states, mean pooling over time, and a linear head.

Mean pooling and the weighted sum are both linear, so they commute: each utterance's hidden
states are mean-pooled per layer once (``pooled_layer_features``) and the probe, the softmax
layer weights and the linear head, is trained on those. Full-batch Adam with a fixed seed:
the same inputs give the same probe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from compbench.architectures.families import floating_dtype


@torch.no_grad()
def utterance_states(model: nn.Module, wave: np.ndarray) -> list[torch.Tensor]:
    """Every hidden state of one utterance as (frames, hidden) float32 on the CPU.

    One utterance at a time: no padding, so no attention mask is needed."""
    inputs = torch.as_tensor(wave, dtype=floating_dtype(model), device=next(model.parameters()).device)[None]
    return [s[0].float().cpu() for s in model(input_values=inputs, output_hidden_states=True).hidden_states]


@torch.no_grad()
def pooled_layer_features(model: nn.Module, waveforms: list[np.ndarray]) -> torch.Tensor:
    """(utterances, layers + 1, hidden): every hidden state mean-pooled over its frames."""
    model.eval()
    return torch.stack([torch.stack([s.mean(dim=0) for s in utterance_states(model, wave)])
                        for wave in waveforms])


class WeightedSumProbe(nn.Module):
    def __init__(self, layers: int, hidden: int, classes: int):
        super().__init__()
        self.layer_logits = nn.Parameter(torch.zeros(layers))
        self.head = nn.Linear(hidden, classes)

    def layer_weights(self) -> torch.Tensor:
        return torch.softmax(self.layer_logits, dim=0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (n, layers, hidden)
        return self.head(torch.einsum("l,nlh->nh", self.layer_weights(), features))


@dataclass
class ProbeResult:
    probe: WeightedSumProbe
    mean: torch.Tensor  # feature standardisation learned on the train split
    std: torch.Tensor

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.probe((features - self.mean) / self.std).argmax(dim=1)

    def accuracy(self, features: torch.Tensor, labels: np.ndarray) -> float:
        return float((self.predict(features).numpy() == labels).mean())


def train_probe(features: torch.Tensor, labels: np.ndarray, classes: int, steps: int = 300,
                lr: float = 0.01, weight_decay: float = 1e-4, seed: int = 0) -> ProbeResult:
    """Fit layer weights and a linear head on train-split features (full batch, seeded)."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        mean, std = features.mean(dim=0), features.std(dim=0).clamp_min(1e-6)
        x, y = (features - mean) / std, torch.as_tensor(labels, dtype=torch.long)
        probe = WeightedSumProbe(features.shape[1], features.shape[2], classes)
        optimizer = torch.optim.Adam(probe.parameters(), lr=lr, weight_decay=weight_decay)
        for _ in range(steps):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(probe(x), y)
            loss.backward()
            optimizer.step()
    finally:
        torch.random.set_rng_state(generator_state)
    return ProbeResult(probe, mean, std)
