"""Gradient sensitivity of heads and FFN neurons (Michel et al. 2019, "Are Sixteen Heads
Really Better than One?"): put a gate of ones on each unit's output and take the mean
absolute gradient of a loss with respect to it over a few batches.

Until tasks supply labels, the loss is label-free: half the squared norm of the last hidden
state, on inputs built by the family adapter (random waveforms or token ids of a short size).
That ranks units by how much the representation depends on them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from compbench.compressors.base import Option
from compbench.errors import InvalidInputError
from compbench.models.families import InputSpec, ModelAdapter

SENSITIVITY_SIZE = {"speech": 1.0, "text": 64}  # seconds / tokens per batch

# the options every importance-ranked compressor (heads, neurons) takes
IMPORTANCE_OPTIONS = {
    "importance": Option(str, "magnitude", "weight magnitude (data-free) or gradient sensitivity",
                         choices=("magnitude", "sensitivity")),
    "batches": Option(int, 4, "batches of generated inputs for sensitivity"),
}


def gate_sensitivity(adapter: ModelAdapter, gated: Callable[[int], nn.Module], units: list[int],
                     unit_size: int, batches: int, seed: int = 0) -> list[torch.Tensor]:
    """Mean |dL/dgate| per unit for each layer; ``gated(layer)`` is the module whose input
    (last dimension ``units[layer] * unit_size``) carries the units' outputs."""
    if batches < 1:
        raise InvalidInputError(f"sensitivity needs batches >= 1, got {batches}")
    model = adapter.model
    gates = [torch.ones(n, requires_grad=True) for n in units]
    handles = []
    for layer, gate in enumerate(gates):
        def scale(module, args, gate=gate):
            x = args[0]
            return (x * gate.to(x.dtype).repeat_interleave(unit_size),) + tuple(args[1:])
        handles.append(gated(layer).register_forward_pre_hook(scale))
    totals = [torch.zeros(n) for n in units]
    training = {m: m.training for m in model.modules()}
    model.eval()
    try:
        for batch in range(batches):
            spec = InputSpec(adapter.modality, SENSITIVITY_SIZE[adapter.modality])
            inputs = adapter.build_inputs(spec, next(model.parameters()).device, seed=seed + batch)
            with torch.enable_grad():
                hidden = model(**inputs).last_hidden_state
                loss = 0.5 * hidden.float().pow(2).sum() / hidden.shape[0]
                grads = torch.autograd.grad(loss, gates)
            for total, grad in zip(totals, grads, strict=True):
                total += grad.abs()
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in training.items():
            module.training = flag
    return [total / batches for total in totals]
