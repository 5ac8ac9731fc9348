"""Teacher fidelity without labels: how close a variant's hidden states stay to its dense model's.

Per layer: linear CKA (Kornblith et al. 2019; invariant to rotations and isotropic scaling of
the features) and the mean cosine similarity of matching frames or tokens. Layers are matched
through the compression manifest, so a model with dropped layers is compared with the dense
layers it kept.
"""

from __future__ import annotations

import torch


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two feature matrices with the same rows (examples): (n, d1), (n, d2)."""
    x = x.double() - x.double().mean(dim=0, keepdim=True)
    y = y.double() - y.double().mean(dim=0, keepdim=True)
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    norms = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    return float(cross / norms) if norms > 0 else 0.0


def mean_cosine(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(x.double(), y.double(), dim=1).mean())


def kept_layers(num_layers: int, manifest: list[dict] | None) -> list[int]:
    """Indices of the dense model's layers that a variant still has, in order."""
    kept = list(range(num_layers))
    for step in manifest or []:
        if step.get("dropped_layers"):  # layer_drop, or a distill recipe that keeps the first layers
            kept = [layer for i, layer in enumerate(kept) if i not in step["dropped_layers"]]
    return kept


def layer_fidelity(dense_states: list[torch.Tensor], variant_states: list[torch.Tensor],
                   manifest: list[dict] | None = None) -> list[dict]:
    """CKA and cosine per variant hidden state against the dense one it descends from.

    ``*_states`` are ``hidden_states`` as transformers returns them (index 0 is the input to the
    first layer), each flattened to (examples x frames, hidden)."""
    kept = kept_layers(len(dense_states) - 1, manifest)
    if len(variant_states) != len(kept) + 1:
        raise ValueError(f"variant has {len(variant_states) - 1} layers, the manifest implies {len(kept)}")
    pairs = [(0, 0)] + [(j + 1, layer + 1) for j, layer in enumerate(kept)]
    return [{"variant_layer": v, "dense_layer": d, "cka": linear_cka(dense_states[d], variant_states[v]),
             "cosine": mean_cosine(dense_states[d], variant_states[v])} for v, d in pairs]
