"""MACs and params of whole models: presets against analytic formulas, tiny families against
an independent counter (torch FlopCounterMode / 2 with eager attention)."""

import json
from pathlib import Path

import pytest
import torch
from tiny_models import TINY_CONFIGS, build_tiny
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModel

from compbench.counting.macs import count_macs
from compbench.counting.params import count_params
from compbench.models import PRESETS, InputSpec, ModelAdapter
from compbench.models.variants import has_structure
from compbench.surgery.structure import apply_structure


def conv_lengths(samples, kernels, strides):
    lengths = []
    for k, s in zip(kernels, strides, strict=True):
        samples = (samples - k) // s + 1
        lengths.append(samples)
    return lengths


def speech_macs(cfg, samples: int) -> int:
    """MACs of a wav2vec2-style encoder, written out from the architecture."""
    lengths = conv_lengths(samples, cfg.conv_kernel, cfg.conv_stride)
    frames, hidden, heads = lengths[-1], cfg.hidden_size, cfg.num_attention_heads
    c_in = [1, *cfg.conv_dim[:-1]]
    macs = sum(n * c_out * ci * k for n, c_out, ci, k in zip(lengths, cfg.conv_dim, c_in, cfg.conv_kernel, strict=True))
    structure = getattr(cfg, "compbench_structure", None) or {}
    if structure.get("feature_projection") != "none":  # ARMHuBERT: the CNN's width is the encoder's, no projection
        macs += frames * cfg.conv_dim[-1] * hidden  # feature projection
    reduction = structure.get("time_reduction")
    group = hidden // cfg.num_conv_pos_embedding_groups
    if cfg.model_type == "data2vec-audio":  # a stack of odd-kernel convs: output length = frames
        macs += cfg.num_conv_pos_embeddings * frames * hidden * group * cfg.conv_pos_kernel_size
    else:  # one even-kernel conv padded by k // 2: one extra output position, trimmed after
        pad = cfg.num_conv_pos_embeddings // 2
        out = frames + 2 * pad - cfg.num_conv_pos_embeddings + 1
        macs += out * hidden * group * cfg.num_conv_pos_embeddings
    if reduction:  # FitHuBERT: a strided conv over the frames before the first layer, every layer on fewer frames
        frames = (frames - reduction["kernel"]) // reduction["factor"] + 1
        macs += frames * hidden * hidden * reduction["kernel"]
    per_layer = (4 * frames * hidden * hidden + 2 * frames * frames * hidden
                 + 2 * frames * hidden * cfg.intermediate_size)
    if cfg.model_type == "wavlm":  # gated relative position bias: Linear(head_dim -> 8) per head and frame
        per_layer += frames * heads * (hidden // heads) * 8
    # a layer reusing the attention map before it (ARMHuBERT): no query, key or score matmul
    reused = sum(structure.get("attention_reuse") or [])
    reuse_saving = 2 * frames * hidden * hidden + frames * frames * hidden
    return macs + cfg.num_hidden_layers * per_layer - reused * reuse_saving


def text_macs(cfg, tokens: int, pooler: bool) -> int:
    hidden = getattr(cfg, "hidden_size", None) or cfg.dim
    inner = getattr(cfg, "intermediate_size", None) or cfg.hidden_dim
    layers = cfg.num_hidden_layers
    per_layer = 4 * tokens * hidden * hidden + 2 * tokens * tokens * hidden + 2 * tokens * hidden * inner
    return layers * per_layer + (hidden * hidden if pooler else 0)


def meta_model(name):
    config = PRESETS.get(name).make_config()
    with torch.device("meta"):
        model = AutoModel.from_config(config)
        if has_structure(config):  # a published compressed model's own modules (FitHuBERT's time reduction)
            apply_structure(ModelAdapter(model), config.compbench_structure)
    return model


# Published parameter counts of the HF base models (no task head).
PRESET_PARAMS = {
    "hubert-base": 94_371_712, "hubert-large": 315_438_720, "wav2vec2-base": 94_371_712,
    "wav2vec2-large": 315_438_720, "wavlm-base-plus": 94_381_936, "data2vec-audio-base": 93_164_288,
    "distilhubert": 23_491_968, "bert-base": 109_482_240, "roberta-base": 124_645_632,
    "distilbert-base": 66_362_880, "minilm-l6": 22_713_216,
    "fithubert": 21_200_096,  # the encoder; its published 22.49M with its output head: test_published_presets
    "armhubert": 22_015_552, "armhubert-s": 18_403_552,  # the encoders; published with their heads: ditto
    "starhubert": 22_308_592, "lighthubert-small": 26_879_488, "lighthubert-base": 66_897_664,
}


def test_every_preset_has_a_pinned_param_count():
    assert set(PRESET_PARAMS) == set(PRESETS.names())


@pytest.mark.parametrize("name", sorted(PRESET_PARAMS))
def test_preset_params_and_macs_are_exact(name):
    model = meta_model(name)
    adapter = ModelAdapter(model)
    params = count_params(model, adapter.component_of)
    assert params.total == PRESET_PARAMS[name]
    assert sum(params.by_component.values()) == params.total
    for size in ((10, 1.5) if adapter.modality == "speech" else (128, 37)):
        spec = InputSpec(adapter.modality, size, batch=1)
        macs = count_macs(model, adapter.build_inputs(spec, "meta"), adapter.component_of)
        if adapter.modality == "speech":
            expected = speech_macs(model.config, spec.samples)
        else:
            expected = text_macs(model.config, int(size), pooler=model.config.model_type != "distilbert")
        assert macs.total == expected
        assert macs.effective == macs.total  # meta weights: nothing is known to be zero
        assert sum(macs.by_component.values()) == macs.total


def test_the_committed_preset_counts_are_the_published_params_and_the_analytic_macs():
    """results/preset-counts.jsonl is what the docs' preset tables show: each line against independent counts."""
    path = Path(__file__).resolve().parents[1] / "results" / "preset-counts.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert sorted(r["model"] for r in records) == sorted(PRESET_PARAMS)
    for record in records:
        config = PRESETS.get(record["model"]).make_config()
        size = record["input"]
        if PRESETS.get(record["model"]).modality == "speech":
            expected = speech_macs(config, size["samples"])
        else:
            expected = text_macs(config, size["tokens"], pooler=config.model_type != "distilbert")
        assert (record["params"], record["macs"], size["batch"]) == (PRESET_PARAMS[record["model"]], expected, 1)


def test_acceptance_counts():
    hubert, bert = meta_model("hubert-base"), meta_model("bert-base")
    h, b = ModelAdapter(hubert), ModelAdapter(bert)
    assert count_macs(hubert, h.build_inputs(InputSpec("speech", 10), "meta")).total == 74_066_523_136
    assert count_macs(bert, b.build_inputs(InputSpec("text", 128), "meta")).total == 11_174_215_680


def test_hubert_base_component_breakdown():
    model = meta_model("hubert-base")
    adapter = ModelAdapter(model)
    macs = count_macs(model, adapter.build_inputs(InputSpec("speech", 10), "meta"), adapter.component_of)
    frames, hidden = 499, 768
    assert macs.by_component["feature_encoder"] == 24_539_032_576
    assert macs.by_component["attention"] == 12 * (4 * frames * hidden**2 + 2 * frames**2 * hidden)
    assert macs.by_component["ffn"] == 12 * 2 * frames * hidden * 3072
    assert macs.by_component["other"] == frames * 512 * hidden + 500 * hidden * 48 * 128


@pytest.mark.parametrize("family", sorted(TINY_CONFIGS))
def test_tiny_family_matches_flop_counter_and_is_implementation_independent(family):
    eager = build_tiny(family, "eager")
    sdpa = build_tiny(family, "sdpa")
    adapter = ModelAdapter(eager)
    size = 0.1 if adapter.modality == "speech" else 11
    inputs = adapter.build_inputs(InputSpec(adapter.modality, size, batch=2))
    flop_counter = FlopCounterMode(display=False)
    with torch.no_grad(), flop_counter:
        eager(**inputs)
    reference = flop_counter.get_total_flops() // 2
    assert count_macs(eager, inputs).total == reference
    assert count_macs(sdpa, inputs).total == reference
    with torch.inference_mode():
        assert count_macs(sdpa, inputs).total == reference


def test_counting_real_and_meta_models_agree_and_leave_model_unchanged():
    model = build_tiny("hubert")
    adapter = ModelAdapter(model)
    inputs = adapter.build_inputs(InputSpec("speech", 0.2))
    with torch.no_grad():
        before = model(**inputs).last_hidden_state
    real = count_macs(model, inputs, adapter.component_of)
    with torch.device("meta"):
        meta = AutoModel.from_config(model.config)
    assert count_macs(meta, adapter.build_inputs(InputSpec("speech", 0.2), "meta")).total == real.total
    with torch.no_grad():
        assert torch.equal(model(**inputs).last_hidden_state, before)


def test_effective_macs_drop_exactly_with_zeroed_ffn_weights():
    model = build_tiny("bert")
    adapter = ModelAdapter(model)
    tokens = 10
    ffn_in, _ = adapter.ffn(0)
    with torch.no_grad():
        ffn_in.weight[: ffn_in.weight.shape[0] // 2] = 0  # half of layer 0's first FFN matrix
    zeroed = ffn_in.weight.numel() // 2
    baseline_zeros = sum(int((p == 0).sum()) for p in [ffn_in.weight]) - zeroed
    assert baseline_zeros == 0
    macs = count_macs(model, adapter.build_inputs(InputSpec("text", tokens)), adapter.component_of)
    assert macs.total - macs.effective == tokens * zeroed
    assert macs.by_component["ffn"] - macs.effective_by_component["ffn"] == tokens * zeroed
