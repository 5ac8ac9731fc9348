"""One view of every supported architecture: layers, attention projections, FFN, inputs.

Speech models follow the wav2vec 2.0 layout (CNN feature encoder, feature projection,
positional convolution, Transformer layers) and take 16 kHz waveforms; text models follow
the BERT layout (embeddings, Transformer layers) and take token ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from compbench.environment import memory_bytes
from compbench.errors import InvalidInputError, UnknownNameError
from compbench.registry import Registry

SAMPLE_RATE = 16_000

COMPONENTS = ("feature_encoder", "embeddings", "attention", "ffn", "other", "head")


@dataclass(frozen=True)
class FamilyLayout:
    """Where the parts of one architecture family live, as dotted module paths."""

    modality: str  # "speech" or "text"
    layers: str  # the ModuleList of Transformer layers, relative to the base model
    query: str  # the rest are relative to one layer
    key: str
    value: str
    attention_output: str
    ffn_in: str
    ffn_out: str
    attention_block: str
    ffn_blocks: tuple[str, ...]
    front_end: str  # "feature_extractor" (speech CNN) or "embeddings" (text)


SPEECH_LAYOUT = FamilyLayout(
    modality="speech", layers="encoder.layers",
    query="attention.q_proj", key="attention.k_proj", value="attention.v_proj",
    attention_output="attention.out_proj",
    ffn_in="feed_forward.intermediate_dense", ffn_out="feed_forward.output_dense",
    attention_block="attention", ffn_blocks=("feed_forward",), front_end="feature_extractor",
)
BERT_LAYOUT = FamilyLayout(
    modality="text", layers="encoder.layer",
    query="attention.self.query", key="attention.self.key", value="attention.self.value",
    attention_output="attention.output.dense",
    ffn_in="intermediate.dense", ffn_out="output.dense",
    attention_block="attention", ffn_blocks=("intermediate", "output"), front_end="embeddings",
)
DISTILBERT_LAYOUT = FamilyLayout(
    modality="text", layers="transformer.layer",
    query="attention.q_lin", key="attention.k_lin", value="attention.v_lin",
    attention_output="attention.out_lin",
    ffn_in="ffn.lin1", ffn_out="ffn.lin2",
    attention_block="attention", ffn_blocks=("ffn",), front_end="embeddings",
)

FAMILIES: Registry[FamilyLayout] = Registry("model family")
for _model_type in ("hubert", "wav2vec2", "wavlm", "data2vec-audio"):
    FAMILIES.register(_model_type, SPEECH_LAYOUT)
for _model_type in ("bert", "roberta"):
    FAMILIES.register(_model_type, BERT_LAYOUT)
FAMILIES.register("distilbert", DISTILBERT_LAYOUT)


@dataclass(frozen=True)
class InputSpec:
    """The size of one model input: seconds of 16 kHz audio or a number of tokens."""

    modality: str
    size: float  # seconds (speech) or tokens (text)
    batch: int = 1

    @property
    def samples(self) -> int:
        return round(self.size * SAMPLE_RATE)

    def describe(self) -> dict:
        if self.modality == "speech":
            return {"kind": "audio", "seconds": self.size, "samples": self.samples,
                    "sample_rate": SAMPLE_RATE, "batch": self.batch}
        return {"kind": "text", "tokens": int(self.size), "batch": self.batch}

    def label(self) -> str:
        unit = f"{self.size:g}s" if self.modality == "speech" else f"{int(self.size)}tok"
        return unit if self.batch == 1 else f"{unit}x{self.batch}"


class ModelAdapter:
    """Uniform access to a speech or text model (or a task model wrapping one)."""

    def __init__(self, model: nn.Module):
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        if model_type is None:
            raise InvalidInputError(f"{type(model).__name__} has no Hugging Face config; cannot adapt it")
        try:
            self.layout = FAMILIES.get(model_type)
        except UnknownNameError as err:
            raise InvalidInputError(
                f"model type {model_type!r} is not supported; supported: {', '.join(FAMILIES.names())}"
            ) from err
        self.model = model
        self.config = model.config
        base = getattr(model, "base_model", model)
        self.base = base
        self.prefix = "" if base is model else f"{model.base_model_prefix}."

    @property
    def modality(self) -> str:
        return self.layout.modality

    def layers(self) -> list[nn.Module]:
        return list(self.base.get_submodule(self.layout.layers))

    def attention_projections(self, layer: int) -> dict[str, nn.Module]:
        block = self.layers()[layer]
        lay = self.layout
        try:
            return {name: block.get_submodule(path) for name, path in
                    (("query", lay.query), ("key", lay.key), ("value", lay.value),
                     ("output", lay.attention_output))}
        except AttributeError:  # a layer that reuses the previous layer's attention map (ARMHuBERT)
            raise InvalidInputError(f"layer {layer} reuses the previous layer's attention map: it has no queries or "
                                    "keys, and its heads are the map's; what removes or scores heads cannot work "
                                    "on it") from None

    def ffn(self, layer: int) -> tuple[nn.Module, nn.Module]:
        block = self.layers()[layer]
        return block.get_submodule(self.layout.ffn_in), block.get_submodule(self.layout.ffn_out)

    def component_of(self, module_name: str) -> str:
        """Which component a (fully qualified) module name belongs to."""
        if self.prefix and not module_name.startswith(self.prefix):
            return "head" if module_name else "other"
        name = module_name[len(self.prefix):]
        lay = self.layout
        if name == lay.front_end or name.startswith(lay.front_end + "."):
            return "feature_encoder" if lay.modality == "speech" else "embeddings"
        layers_prefix = lay.layers + "."
        if name.startswith(layers_prefix):
            _, _, in_layer = name[len(layers_prefix):].partition(".")
            head = in_layer.split(".", 1)[0]
            if head == lay.attention_block:
                return "attention"
            if head in lay.ffn_blocks:
                return "ffn"
        return "other"

    # ---- inputs -------------------------------------------------------------------------
    def max_tokens(self) -> int:
        return max_tokens(self.config)

    def check_input(self, spec: InputSpec) -> None:
        check_input(self.config, self.modality, spec)

    def floating_dtype(self) -> torch.dtype:
        """The dtype of the model's floating-point weights (audio inputs are built in it)."""
        return floating_dtype(self.model)

    def build_inputs(self, spec: InputSpec, device: str | torch.device = "cpu",
                     seed: int = 0) -> dict[str, torch.Tensor]:
        """Model inputs of the given size: unpadded, so no attention mask is needed."""
        self.check_input(spec)
        device = torch.device(device)
        generator = torch.Generator().manual_seed(seed)
        if self.modality == "speech":
            shape, dtype = (spec.batch, spec.samples), self.floating_dtype()
            if device.type == "meta":
                return {"input_values": torch.empty(shape, device=device, dtype=dtype)}
            return {"input_values": torch.randn(shape, generator=generator).to(device=device, dtype=dtype)}
        shape = (spec.batch, int(spec.size))
        if device.type == "meta":
            return {"input_ids": torch.empty(shape, dtype=torch.long, device=device)}
        low = max(getattr(self.config, "pad_token_id", 0) or 0, 2) + 1  # ids above special tokens
        ids = torch.randint(low, self.config.vocab_size, shape, generator=generator)
        return {"input_ids": ids.to(device)}


def floating_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of a model's floating-point weights (float32 when it has none)."""
    for param in model.parameters():
        if param.is_floating_point():
            return param.dtype
    return torch.float32


def classifier_labels(model: nn.Module) -> list[str] | None:
    """The label names of a sequence-classification model's head, or None for a model without one."""
    if not type(model).__name__.endswith("ForSequenceClassification"):
        return None
    return [str(v) for v in (getattr(model.config, "id2label", None) or {}).values()]


def head_outputs(model: nn.Module) -> list[str] | None:
    """What a task head's outputs name: a classifier's labels, a CTC head's tokens (in id order, as
    ``compbench finetune`` writes them into its config); None for a model without either."""
    size = ctc_vocabulary_size(model)
    if size is None:
        return classifier_labels(model)
    tokens = [str(v) for v in (getattr(model.config, "id2label", None) or {}).values()]
    return tokens if len(tokens) == size else None


def ctc_vocabulary_size(model: nn.Module) -> int | None:
    """The output size of a speech model's CTC head (``*ForCTC``: one logit per token and frame), or None for a
    model without one."""
    if not type(model).__name__.endswith("ForCTC"):
        return None
    return int(model.config.vocab_size)


def max_tokens(config) -> int:
    """The longest text input a model of this config takes: its position embeddings."""
    limit = config.max_position_embeddings
    if config.model_type == "roberta":  # positions start after the padding index
        limit -= config.pad_token_id + 1
    return limit


def frames(config, samples: int) -> int:
    """Frames the CNN feature encoder emits for ``samples`` of audio."""
    for kernel, stride in zip(config.conv_kernel, config.conv_stride, strict=True):
        samples = max((samples - kernel) // stride + 1, 0)
    return samples


def largest_activation_bytes(config, spec: InputSpec) -> int:
    """A lower bound on the memory a speech model of this config needs at this input: its first convolution's
    float32 output (conv_dim[0] channels at the waveform's rate over the first stride), which every attention
    implementation makes whole; attention scores are not counted, as SDPA's CPU kernels never hold them whole."""
    return spec.batch * config.conv_dim[0] * (spec.samples // config.conv_stride[0]) * 4


def check_input(config, modality: str, spec: InputSpec) -> None:
    """Refuse an input size a model of this config cannot take, or that cannot fit in this machine's memory,
    before anything is built (:class:`InvalidInputError` naming the flag and the limit)."""
    flag = "--seconds" if modality == "speech" else "--tokens"
    if spec.batch < 1:
        raise InvalidInputError(f"batch must be >= 1, got {spec.batch}")
    if not math.isfinite(spec.size):
        raise InvalidInputError(f"{flag} {spec.size:g}: give a finite number")
    if modality == "speech":
        receptive_field = _receptive_field(config)
        if spec.size <= 0 or spec.samples < receptive_field:
            raise InvalidInputError(
                f"--seconds {spec.size:g} is too short: the feature encoder needs at least "
                f"{receptive_field} samples ({receptive_field / SAMPLE_RATE:g} s) of 16 kHz audio")
        needed, available = largest_activation_bytes(config, spec), memory_bytes()
        if available and needed > available:
            raise InvalidInputError(
                f"--seconds {spec.size:g}{f' x batch {spec.batch}' if spec.batch > 1 else ''} is too long for "
                f"{config.model_type}: its first convolution's output alone would take {needed / 2**30:,.1f} GiB, more "
                f"than this machine's {available / 2**30:,.1f} GiB of memory")
    elif spec.size != int(spec.size) or not 1 <= spec.size <= max_tokens(config):
        raise InvalidInputError(
            f"--tokens {spec.size:g} is out of range for {config.model_type}: "
            f"use a whole number from 1 to {max_tokens(config)}")


def _receptive_field(config) -> int:
    """Samples the CNN feature encoder needs to emit one frame."""
    field = 1
    for kernel, stride in reversed(list(zip(config.conv_kernel, config.conv_stride, strict=True))):
        field = (field - 1) * stride + kernel
    return field
