"""Parameter counts: total, nonzero, and by component."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from compbench.counting.weights import count_nonzero, packed_linear_weight


@dataclass
class ParamCount:
    total: int = 0
    nonzero: int | None = None  # None on the meta device, where values are unknown
    by_component: dict[str, int] = field(default_factory=dict)
    nonzero_by_component: dict[str, int] | None = None


def count_params(model: nn.Module, component_of: Callable[[str], str] | None = None) -> ParamCount:
    """Count each distinct parameter once (tied weights once), attributing it to a component."""
    component_of = component_of or (lambda name: "other")
    by_component: dict[str, int] = defaultdict(int)
    nonzero_by_component: dict[str, int] = defaultdict(int)
    known_values = True
    for name, param in model.named_parameters():
        module_name = name.rpartition(".")[0]
        component = component_of(module_name)
        by_component[component] += param.numel()
        if param.is_meta:
            known_values = False
        else:
            nonzero_by_component[component] += count_nonzero(param)
    for module_name, module in model.named_modules():  # int8 weights packed inside quantized Linears
        packed = packed_linear_weight(module)
        if packed is None:
            continue
        weight, bias = packed
        component = component_of(module_name)
        by_component[component] += weight.numel() + (bias.numel() if bias is not None else 0)
        nonzero_by_component[component] += count_nonzero(weight) + (count_nonzero(bias) if bias is not None else 0)
    total = sum(by_component.values())
    if not known_values:
        return ParamCount(total, None, dict(by_component), None)
    return ParamCount(total, sum(nonzero_by_component.values()), dict(by_component),
                      dict(nonzero_by_component))
