"""The registered compressors, one file each, named as the compressor: pure functions
``(model, amount, options[, context]) -> Variant`` that never mutate their input.

Importing this package registers every one of them in
:data:`~compbench.compression.compressor.COMPRESSORS`; the framework they plug into is
:mod:`compbench.compression`, what they share is :mod:`compbench.surgery` and :mod:`compbench.importance`.
"""

from compbench.compression import COMPRESSORS, Compressor, Option, Step, Variant, apply_pipeline
from compbench.compressors import (  # noqa: F401  (registers each compressor)
    accuracy_driven,
    bf16,
    budget_pruning,
    conv_pruning,
    distill,
    distill_prune,
    early_exit,
    ffn_pruning,
    fp16,
    head_pruning,
    int8_dynamic,
    layer_drop,
    low_rank,
    ort_int8,
    weight_pruning,
)

__all__ = ["COMPRESSORS", "Compressor", "Option", "Step", "Variant", "apply_pipeline"]
