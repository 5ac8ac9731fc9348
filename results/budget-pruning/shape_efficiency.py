"""How fast minilm-l6's FFN and attention blocks run per MAC at the widths budget_pruning leaves.

Where the gap between measured and MAC-predicted speedup comes from: one interleaved loop on the
current machine (2 threads), the input budget_pruning's rt-polarity results use (batch 8, 27
tokens), every block timed the same number of times in turn, medians. Weights are random
(efficiency does not depend on their values). Run from the repository root:

    python results/budget-pruning/shape_efficiency.py > results/budget-pruning/shape-efficiency.txt
"""

import copy
import time

import torch

from compbench.models import ModelAdapter, load_model
from compbench.surgery.units import keep_heads, keep_neurons

BATCH, TOKENS, ROUNDS, CALLS = 8, 27, 30, 10
FFN_WIDTHS = (1536, 1444, 1440, 1342, 1344, 1017, 1024, 431, 432, 166, 160, 16)  # 1444...16: fisher at 0.4
HEADS = (12, 9, 6, 3, 1, 0)


def block_variants() -> dict[str, tuple[torch.nn.Module, int]]:
    """``{label: (module, MACs per call)}`` for layer 0's FFN at each width and attention at each head count."""
    model = load_model("minilm-l6", "random").model
    hidden = model.config.hidden_size
    head_size = hidden // model.config.num_attention_heads
    rows = BATCH * TOKENS
    blocks = {}
    for width in FFN_WIDTHS:
        adapter = ModelAdapter(copy.deepcopy(model))
        keep_neurons(adapter, 0, list(range(width)))
        up, down = adapter.ffn(0)
        layer = adapter.layers()[0]
        blocks[f"ffn {width} neurons"] = (torch.nn.Sequential(up, layer.intermediate.intermediate_act_fn, down),
                                          2 * rows * hidden * width)
    for heads in HEADS:
        adapter = ModelAdapter(copy.deepcopy(model))
        keep_heads(adapter, 0, list(range(heads)))
        projections = 4 * rows * hidden * head_size * heads
        scores = 2 * BATCH * heads * TOKENS * TOKENS * head_size
        blocks[f"attention {heads} heads"] = (adapter.layers()[0].attention, projections + scores)
    return blocks


def main() -> None:
    torch.set_num_threads(2)
    blocks = block_variants()
    x = torch.randn(BATCH, TOKENS, ModelAdapter(load_model("minilm-l6", "random").model).config.hidden_size)
    times = {label: [] for label in blocks}
    with torch.inference_mode():
        for module, _ in blocks.values():
            for _ in range(CALLS):
                module(x)
        for _ in range(ROUNDS):
            for label, (module, _) in blocks.items():
                start = time.perf_counter()
                for _ in range(CALLS):
                    module(x)
                times[label].append((time.perf_counter() - start) / CALLS)
    print(f"# batch {BATCH}, {TOKENS} tokens, 2 threads; median of {ROUNDS} rounds of {CALLS} calls")
    for label, (_, macs) in blocks.items():
        median = sorted(times[label])[ROUNDS // 2]
        rate = f"{macs / median / 1e9:6.1f} GMAC/s" if macs else "      -"
        print(f"{label:22s} {median * 1e6:8.0f} us {macs / 1e6:8.1f} MMAC {rate}")


if __name__ == "__main__":
    main()
