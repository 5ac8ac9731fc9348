"""Saving a compressed variant with ``save_pretrained`` and loading it back with its shapes.

The variant's shapes go into its config (the structure record, :mod:`compbench.surgery.structure`), its
compression steps into ``compbench_manifest.json`` beside the weights. Loading builds the architecture
from the config, rebuilds the recorded structure, then loads the weights strictly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import PretrainedConfig, PreTrainedModel

from compbench.architectures.families import ModelAdapter
from compbench.atomic import atomic_directory, refuse_non_empty
from compbench.compression.compressor import Variant
from compbench.counting.weights import has_quantized_weights
from compbench.errors import InvalidInputError, ModelLoadError
from compbench.models.checkpoints import auto_class, with_attention_fallback
from compbench.runtimes.base import onnx_quantization

# importing compbench.surgery (as this does) registers every structure part that apply_structure rebuilds
from compbench.surgery.structure import STRUCTURE_KEY, apply_structure, record_structure

MANIFEST_FILE = "compbench_manifest.json"
# what a checkpoint keeps beside its weights for its inputs and outputs: a text model's tokenizer, a speech
# recogniser's CTC vocabulary; a variant saved from it keeps them, so it is measured on a task as its source was
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "vocab.txt",
                   "merges.txt", "added_tokens.json", "sentencepiece.bpe.model", "spiece.model")


def save_variant(variant: Variant, out_dir: str | Path, source: dict, checkpoint: str | None = None) -> Path:
    """Write the variant's weights, config (with its shapes) and manifest to ``out_dir``, and the tokenizer (or
    CTC vocabulary) files of the ``checkpoint`` folder it was loaded from.

    Refuses an existing non-empty directory; writes into a temporary directory beside it and
    renames it into place, so a failure leaves nothing behind.
    """
    if has_quantized_weights(variant.model):
        raise InvalidInputError("int8_dynamic variants cannot be saved with save_pretrained (quantized "
                                "weights); measure them in-process: compbench measure --compress ...")
    if onnx_quantization(variant.model) is not None:
        raise InvalidInputError("ort_int8 variants are quantized by ONNX Runtime when measured, not saved: "
                                "save the pipeline before ort_int8 and measure with --compress ort_int8 "
                                "--runtime onnxruntime")
    refuse_non_empty(Path(out_dir))
    record_structure(ModelAdapter(variant.model))

    def write(staging: Path) -> None:
        variant.model.save_pretrained(staging)
        folder = Path(checkpoint) if checkpoint else None
        for name in TOKENIZER_FILES if folder is not None and folder.is_dir() else ():
            if (folder / name).is_file():
                shutil.copyfile(folder / name, staging / name)
        manifest = {"source": source, "compression": variant.manifest}
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

    return atomic_directory(out_dir, write)


def read_manifest(directory: str | Path) -> dict | None:
    """The manifest ``compbench compress`` wrote beside a variant (None where there is none), checked: a
    ``source`` mapping and a ``compression`` list of steps, each a mapping with a ``name``."""
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ModelLoadError(f"{path} is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise ModelLoadError(f"{path} is not valid JSON: {err.msg}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("source", {}), dict):
        raise ModelLoadError(f"{path}: a manifest holds a mapping with a 'source' mapping and a 'compression' list")
    steps = manifest.get("compression")
    if not isinstance(steps, list) or not all(_is_step(step) for step in steps):
        raise ModelLoadError(f"{path}: 'compression' must list the steps, each a mapping with a 'name', an "
                             f"'amount' (a number or null) and 'options' (a mapping)")
    return manifest


def _is_step(step) -> bool:
    amount = step.get("amount", False) if isinstance(step, dict) else False
    return (isinstance(step, dict) and isinstance(step.get("name"), str) and isinstance(step.get("options"), dict)
            and (amount is None or isinstance(amount, int | float) and not isinstance(amount, bool)))


def _state_dict(directory: Path) -> dict[str, torch.Tensor]:
    single = directory / "model.safetensors"
    if single.is_file():
        return load_file(str(single))
    index = directory / "model.safetensors.index.json"
    if not index.is_file():
        raise ModelLoadError(f"{directory} holds no model.safetensors (or sharded index)")
    try:
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ModelLoadError(f"{index} is not a safetensors index: {err}") from None
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        state.update(load_file(str(directory / shard)))
    return state


def has_structure(config: PretrainedConfig) -> bool:
    return getattr(config, STRUCTURE_KEY, None) is not None


def load_structured(directory: str | Path, config: PretrainedConfig, attn_implementation: str) -> PreTrainedModel:
    """Build the architecture, reshape it to the saved structure, then load the weights strictly."""
    auto = auto_class(config)  # a saved classifier keeps its head
    model = with_attention_fallback(lambda impl: auto.from_config(config, attn_implementation=impl),
                                    attn_implementation)
    apply_structure(ModelAdapter(model), getattr(config, STRUCTURE_KEY))
    dtype = getattr(config, "dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if isinstance(dtype, torch.dtype):
        model.to(dtype)
    missing, unexpected = model.load_state_dict(_state_dict(Path(directory)), strict=False)
    if missing or unexpected:
        raise ModelLoadError(f"{directory}: weights do not match the saved structure "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model
