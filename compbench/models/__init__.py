"""Model zoo: presets, family adapter and loading."""

from compbench.models.families import COMPONENTS, SAMPLE_RATE, InputSpec, ModelAdapter
from compbench.models.loading import LoadedModel, load_model
from compbench.models.presets import PRESETS, Preset

__all__ = ["COMPONENTS", "PRESETS", "SAMPLE_RATE", "InputSpec", "LoadedModel", "ModelAdapter",
           "Preset", "load_model"]
