"""Compressors: pure functions (model, amount, options) -> Variant, registered by name."""

from compbench.compressors import casts, ffn_pruning, head_pruning, layer_drop, low_rank, weight_pruning  # noqa: F401
from compbench.compressors.base import COMPRESSORS, Compressor, Option, Step, Variant, apply_pipeline

__all__ = ["COMPRESSORS", "Compressor", "Option", "Step", "Variant", "apply_pipeline"]
