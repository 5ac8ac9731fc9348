"""Compressors: pure functions (model, amount, options[, context]) -> Variant, registered by name."""

from compbench.compressors import (  # noqa: F401  (registers each compressor)
    accuracy_driven,
    budget_pruning,
    casts,
    distill,
    early_exit,
    ffn_pruning,
    head_pruning,
    int8_dynamic,
    layer_drop,
    low_rank,
    ort_int8,
    weight_pruning,
)
from compbench.compressors.base import COMPRESSORS, Compressor, Option, Step, Variant, apply_pipeline

__all__ = ["COMPRESSORS", "Compressor", "Option", "Step", "Variant", "apply_pipeline"]
