"""Models by name: presets, hub ids, ``save_pretrained`` directories and saved compressed variants,
loaded with where they came from; variants saved with their structure and manifest.

The adapter and the presets are :mod:`compbench.architectures`'s, handed on here for convenience."""

from compbench.architectures import COMPONENTS, PRESETS, SAMPLE_RATE, InputSpec, ModelAdapter, Preset
from compbench.models.loading import LoadedModel, load_model

__all__ = ["COMPONENTS", "PRESETS", "SAMPLE_RATE", "InputSpec", "LoadedModel", "ModelAdapter",
           "Preset", "load_model"]
