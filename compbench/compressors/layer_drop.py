"""layer_drop: remove whole Transformer layers (which: top, bottom or alternate)."""

from __future__ import annotations

from compbench.architectures.families import ModelAdapter
from compbench.compression.compressor import Compressor, Option, half_up, register
from compbench.surgery.layers import keep_layers


def layers_to_drop(count: int, remove: int, which: str) -> list[int]:
    if which == "top":
        return list(range(count - remove, count))
    if which == "bottom":
        return list(range(remove))
    odd_first = [i for i in reversed(range(count)) if i % 2 == 1]  # alternate, from the top
    even_next = [i for i in reversed(range(1, count)) if i % 2 == 0]
    return sorted((odd_first + even_next)[:remove])


def drop_layers(model, amount: float, options: dict):
    adapter = ModelAdapter(model)
    layers = adapter.layers()
    remove = min(half_up(amount * len(layers)), len(layers) - 1)
    dropped = layers_to_drop(len(layers), remove, options["which"])
    kept = keep_layers(adapter, [i for i in range(len(layers)) if i not in dropped])
    return model, {"layers_before": len(layers), "layers_after": kept, "dropped_layers": dropped,
                   "removed": len(dropped), "total": len(layers), "unit": "layers removed"}


register(Compressor(
    name="layer_drop", compress=drop_layers,
    description="remove whole Transformer layers (amount: fraction of layers)",
    options={"which": Option(str, "top", "which layers go first", choices=("top", "bottom", "alternate"))}))
