"""Kwon et al. 2022 ("A Fast Post-Training Pruning Framework for Transformers"): mask rearrangement
with the block-diagonal Fisher, and layer-wise least-squares mask tuning.

- :func:`rearrange`: within one layer, keep as many heads (or neurons) as the search chose, but
  choose which by the layer's block of the empirical Fisher, ``sum_b (sum_{u pruned} g_bu)^2``
  over per-minibatch mask gradients ``g``, greedily (the diagonal ignores how units interact).
- :func:`tune_masks`: layer by layer, attention then FFN, the kept units' gates are set by least
  squares so that the pruned sublayer's output (before its bias) matches the unpruned sublayer's
  output on the same input, the pruned model's own input at that layer (earlier layers already
  tuned). The solve uses the normal equations from ``S = X^T X`` (gate inputs over the calibration
  tokens, padding excluded) and ``M = W^T W`` (the output projection), in float64. A sublayer keeps
  its plain 0/1 mask when the system is not positive definite, a scale comes out non-finite or
  above ``MAX_SCALE`` in magnitude, or the fit is no better than the plain mask; each case is
  recorded. Kwon et al. match the original model's outputs on the original model's inputs; with
  the residual connection in between, compbench matches sublayers on the same input instead, which
  needs no family-specific view of the residual stream.
"""

from __future__ import annotations

import torch

from compbench.compression.context import Batch
from compbench.eval_mode import evaluating
from compbench.importance.gates import HEADS, KINDS, StopForward, UnitGates, valid_positions
from compbench.surgery.linear import effective_weight

MAX_SCALE = 10.0


def rearrange(gradients: torch.Tensor, keep: int) -> list[int]:
    """The ``keep`` units (of ``gradients.shape[1]``) whose removed complement has the least
    block-Fisher loss ``sum_b (sum_{u removed} g_bu)^2``, by Kwon et al.'s greedy swap."""
    units = gradients.shape[1]
    removing = units - keep
    if removing <= 0 or keep <= 0:
        return list(range(units)) if removing <= 0 else []
    order = gradients.pow(2).sum(0).argsort().tolist()  # least diagonal Fisher first
    removed = order[:removing]
    for candidate in order[removing:]:
        removed.append(candidate)
        vectors = gradients[:, removed]
        without_each = vectors.sum(1, keepdim=True) - vectors  # (batches, removing + 1)
        removed.pop(int(without_each.pow(2).sum(0).argmin()))
    gone = set(removed)
    return [u for u in range(units) if u not in gone]


def _gate_input_moments(gates: UnitGates, kind: str, layer: int, batches: list[Batch]) -> torch.Tensor:
    """``S = X^T X`` over the real tokens of every batch, X the gate's input (float64)."""
    adapter = gates.adapter
    gates.capture, gates.stop_after_capture = (kind, layer), True
    moments = None
    try:
        for batch in batches:
            gates.captured.clear()
            try:
                adapter.model(**batch.inputs)
            except StopForward:
                pass
            x = gates.captured[0]
            rows = x[valid_positions(adapter, batch, x.shape[1]).to(x.device)].double().cpu()
            moments = rows.T @ rows if moments is None else moments + rows.T @ rows
    finally:
        gates.capture, gates.stop_after_capture = None, False
        gates.captured.clear()
    return moments


def _block_sum(matrix: torch.Tensor, size: int) -> torch.Tensor:
    units = matrix.shape[0] // size
    return matrix.reshape(units, size, units, size).sum(dim=(1, 3))


def _fit(moments: torch.Tensor, weight: torch.Tensor, kept: list[int], size: int) -> tuple[torch.Tensor | None, dict]:
    """Least-squares scales of the kept units, or None and why not."""
    products = weight.T @ weight  # M = W^T W
    gram = _block_sum(moments * products, size)  # G[u, v] = <contribution u, contribution v>
    energy = torch.diagonal(moments @ products)
    target = energy.reshape(-1, size).sum(1)  # r[u] = <contribution u, the unpruned output>
    total = energy.sum()  # the unpruned output's squared norm
    index = torch.as_tensor(kept, dtype=torch.long)
    g, r = gram[index][:, index], target[index]
    plain = torch.ones(len(kept), dtype=torch.float64)

    def residual(scale):
        return float(scale @ g @ scale - 2 * scale @ r + total)

    if not kept:
        return None, {"plain_residual": 1.0, "status": "nothing kept"}
    record = {"plain_residual": residual(plain) / max(float(total), 1e-300)}
    factor, info = torch.linalg.cholesky_ex(g)
    if int(info) != 0:
        return None, {**record, "status": "not positive definite"}
    scale = torch.cholesky_solve(r[:, None], factor)[:, 0]
    if not torch.isfinite(scale).all():
        return None, {**record, "status": "non-finite scale"}
    if float(scale.abs().max()) > MAX_SCALE:
        return None, {**record, "status": f"a scale above {MAX_SCALE:g}"}
    tuned = residual(scale) / max(float(total), 1e-300)
    if tuned > record["plain_residual"] + 1e-9:  # (relative residuals; rounding when nothing was removed)
        return None, {**record, "status": "no better than the plain mask"}
    return scale, {**record, "status": "tuned", "tuned_residual": tuned,
                   "scale_min": float(scale.min()), "scale_max": float(scale.max())}


def tune_masks(gates: UnitGates, kept: dict[str, list[list[int]]], batches: list[Batch]) -> list[dict]:
    """Set the gates of kept units by layer-wise least squares (pruned units' gates are 0); one
    record per layer and kind. The residuals are relative to the unpruned sublayer's output energy."""
    records = []
    with torch.no_grad(), evaluating(gates.adapter.model), gates:
        for kind in KINDS:
            for layer, units in enumerate(kept[kind]):
                gate = torch.zeros(gates.units(kind)[layer])
                gate[units] = 1.0
                gates.values[kind][layer] = gate
        for layer in range(len(kept[HEADS])):
            for kind in KINDS:
                units = kept[kind][layer]
                moments = _gate_input_moments(gates, kind, layer, batches)
                weight = effective_weight(gates.module(kind, layer)).double().cpu()
                scale, record = _fit(moments, weight, units, gates.unit_size[kind])
                if scale is not None:
                    gates.values[kind][layer][units] = scale.float()
                records.append({"layer": layer, "kind": kind, "kept": len(units), **record})
    return records
