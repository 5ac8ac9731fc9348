"""The compression framework: the compressor contract and registry, declared options, pipelines of
steps, their command-line and file specs, and the context a data-driven compressor receives.

The registered compressors are in :mod:`compbench.compressors` (importing it registers them)."""

from compbench.compression.compressor import COMPRESSORS, Compressor, Option, Variant, register
from compbench.compression.context import CompressionContext
from compbench.compression.pipeline import Step, apply_pipeline

__all__ = ["COMPRESSORS", "CompressionContext", "Compressor", "Option", "Step", "Variant", "apply_pipeline",
           "register"]
