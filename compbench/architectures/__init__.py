"""What compbench knows of each model family: one adapter over every family's layout (layers, q/k/v/o
projections, FFN, input builder, components) and the architecture-exact presets."""

from compbench.architectures.families import COMPONENTS, FAMILIES, SAMPLE_RATE, InputSpec, ModelAdapter
from compbench.architectures.presets import PRESETS, Preset

__all__ = ["COMPONENTS", "FAMILIES", "PRESETS", "SAMPLE_RATE", "InputSpec", "ModelAdapter", "Preset"]
