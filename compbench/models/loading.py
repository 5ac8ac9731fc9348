"""Load a model by preset name, Hugging Face hub id, or local ``save_pretrained`` directory (a saved
compressed variant among them: rebuilt with its shapes, its compression steps carried along)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel

from compbench.architectures.families import FAMILIES, ModelAdapter
from compbench.architectures.presets import PRESETS
from compbench.errors import CompbenchError, InvalidInputError, ModelLoadError, UnknownNameError
from compbench.models.checkpoints import check_family, from_config, from_pretrained, load_config
from compbench.models.provenance import fine_tuned_variant, saved_label, saved_provenance
from compbench.models.variants import has_structure, load_structured, read_manifest
from compbench.runtimes.base import first_line
from compbench.surgery.structure import STRUCTURE_KEY, apply_structure

WEIGHTS = ("random", "pretrained")
ATTN_IMPLEMENTATIONS = ("sdpa", "eager")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
HUB_ID_LIMIT = 96  # the Hugging Face Hub's longest repository id (namespace/name)


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
    # for a saved compbench variant: the model its first step compressed (its manifest's source: model,
    # checkpoint, weights, model_source), the same across any number of compress-save-load rounds
    origin: dict | None = None
    # what it is, in words, where that is more than its name: --label, or a saved model's provenance
    # (``distilhubert trained here on fsdd-digits``); records carry it as ``label``
    label: str | None = None

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
    try:
        if Path(name).is_dir():
            return "local"
    except OSError as err:  # a name longer than a path may be
        raise ModelLoadError(f"model {name[:40]}... ({len(name)} characters) is not a preset, a directory or a "
                             f"hub id: {err.strerror or err}") from None
    if _HUB_ID.match(name):
        if len(name) > HUB_ID_LIMIT:
            raise ModelLoadError(f"model {name[:40]}... ({len(name)} characters) is not a preset or a directory, "
                                 f"and a hub id has at most {HUB_ID_LIMIT}")
        return "hub"
    if len(name) > HUB_ID_LIMIT:
        raise UnknownNameError("model", f"{name[:40]}... ({len(name)} characters)", PRESETS.names())
    raise UnknownNameError("model", name, PRESETS.names())


def model_config(name: str) -> PretrainedConfig:
    """The config of the preset, directory or hub id ``name`` (a hub id needs the hub or its cache)."""
    source = model_source(name)
    if source == "preset":
        return PRESETS.get(name).make_config()
    if source == "hub":
        config = load_config(name)
    elif not (Path(name) / "config.json").is_file():
        raise ModelLoadError(f"{name} is a directory but holds no config.json "
                             "(expected a directory written by save_pretrained)")
    else:
        try:
            config = AutoConfig.from_pretrained(str(Path(name).resolve()))
        except Exception as err:  # transformers' errors for a config it cannot read are of many kinds
            raise ModelLoadError(f"cannot read {Path(name) / 'config.json'}: {_first_line(err)}") from None
    check_family(config, name)
    return config


def model_modality(name: str) -> str:
    """``speech`` or ``text``, from the preset or the model's config (a hub id needs the hub or its cache)."""
    if model_source(name) == "preset":
        return PRESETS.get(name).modality
    return FAMILIES.get(model_config(name).model_type).modality


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
        if weights == "pretrained" and preset.no_pretrained:
            raise InvalidInputError(f"{name} is measured with random weights only: {preset.no_pretrained}")
        if weights == "pretrained":
            checkpoint = str(preset.local_weights() or preset.checkpoint)
    elif model_source(name) == "local":
        source, checkpoint = "local", str(Path(name).resolve())
        config = model_config(name)
    elif _HUB_ID.match(name):
        source, checkpoint = "hub", name
        config = load_config(name)
    else:
        raise UnknownNameError("model", name, PRESETS.names())

    check_family(config, name)
    torch.manual_seed(seed)
    if source != "local":
        return _built(name, source, checkpoint, config, weights, attn_implementation)
    try:
        return _built(name, source, checkpoint, config, weights, attn_implementation)
    except CompbenchError:
        raise
    except Exception as err:  # a folder damaged or edited by hand: config, weights and manifest disagree
        raise ModelLoadError(f"cannot load the model in {name}: {_first_line(err)}") from None


def _first_line(err: Exception) -> str:
    return f"{type(err).__name__}: {first_line(err)}"


def _built(name: str, source: str, checkpoint: str, config: PretrainedConfig, weights: str,
           attn_implementation: str) -> LoadedModel:
    """The model ``load_model`` loads, once its name is resolved and its config read."""
    compression = origin = label = None
    if source == "local":
        manifest = read_manifest(checkpoint)
        label = saved_label(checkpoint, manifest)
        compression = manifest["compression"] if manifest else None
        origin = (manifest or {}).get("source") or None
        if manifest is None:  # a fine-tune of a compressed variant: still the variant's steps, on its origin
            compression, origin = fine_tuned_variant(checkpoint) or (None, None)
        if has_structure(config):
            if weights == "random":
                raise InvalidInputError(f"{name} is a compressed variant whose shapes come with its "
                                        "weights; measure it with --weights pretrained")
            model = load_structured(checkpoint, config, attn_implementation)
            model.eval()
            source, weights = saved_provenance(checkpoint, manifest) or (source, weights)
            return LoadedModel(name=name, source=source, weights=weights, checkpoint=checkpoint,
                               model=model, adapter=ModelAdapter(model), compression=compression, origin=origin,
                               label=label)
    if weights == "random":
        model = from_config(config, attn_implementation)
        if has_structure(config):  # a preset of a published compressed model: the shapes its config records
            apply_structure(ModelAdapter(model), getattr(config, STRUCTURE_KEY))
    else:
        model = from_pretrained(checkpoint, attn_implementation)
        if source == "local":
            source, weights = saved_provenance(checkpoint, manifest) or (source, weights)
    model.eval()
    return LoadedModel(name=name, source=source, weights=weights, checkpoint=checkpoint,
                       model=model, adapter=ModelAdapter(model), compression=compression, origin=origin,
                       label=label)
