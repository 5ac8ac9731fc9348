"""Presets of published compressed speech models: each one's parameter count against its published count (the
figure and its source beside it), and the modules transformers lacks (FitHuBERT's time reduction) counted
exactly, rebuilt on reload, refused where they do not fit."""

import copy

import pytest
import torch
from tiny_models import build_tiny
from torch import nn

from compbench.architectures.families import ModelAdapter
from compbench.cli.compress import compress_model
from compbench.counting.macs import count_macs
from compbench.counting.params import count_params
from compbench.errors import InvalidInputError
from compbench.measure import MeasureOptions, measure
from compbench.models import load_model
from compbench.surgery.time_reduction import NormThenTimeReduction, add_time_reduction


def test_fithubert_has_its_published_parameter_count():
    """Published: 22.49M (Lee et al., "FitHuBERT: Going Thinner and Deeper for Knowledge Distillation of Speech
    Self-Supervised Learning", Interspeech 2022, arXiv 2207.00555, its table of models; its abstract: 23.8 % of
    HuBERT Base). Architecture: github.com/glory20h/FitHuBERT data/conf/fithubert.yaml. The released
    model keeps, beside the encoder the preset builds, the modules its distillation trained on the time-reduced
    frames: an upsampler (ConvTranspose1d 480 -> 480, kernel and stride 2) and the last layer's projection head
    (another upsampler and a Linear 480 -> 768); they do not feed its hidden states, and the count includes them."""
    preset = count_params(load_model("fithubert").model).total
    assert preset == 21_200_096  # CNN 2,000,384; projection 247,264; positions 1,843,808; layers 16,646,400; ...
    upsampler = nn.ConvTranspose1d(480, 480, kernel_size=2, stride=2)
    head = nn.ModuleList([nn.ConvTranspose1d(480, 480, kernel_size=2, stride=2), nn.Linear(480, 768)])
    released = preset + count_params(upsampler).total + count_params(head).total
    assert released == 22_492_064
    assert abs(released - 22.49e6) / 22.49e6 < 0.01


def test_the_time_reduction_halves_the_frames_every_layer_sees_and_is_counted_exactly():
    norm = nn.LayerNorm(8)
    reduction = NormThenTimeReduction(norm, factor=2, kernel=2).eval()
    frames = torch.randn(1, 10, 8)
    assert reduction(frames).shape == (1, 5, 8)
    # the convolution: 5 output frames x 8 channels out x 8 in x kernel 2, on top of the norm's own count
    assert count_macs(reduction, {"hidden_states": frames}).total == \
        count_macs(norm, {"input": frames}).total + 5 * 8 * 8 * 2
    model = load_model("fithubert").model
    one_second = model(torch.randn(1, 16000)).last_hidden_state
    assert one_second.shape == (1, 24, 480)  # 49 CNN frames, halved


def test_a_compressed_fithubert_saves_and_reloads_with_its_time_reduction(tmp_path):
    compress_model("fithubert", "head_pruning=0.5", str(tmp_path / "variant"), weights="random")
    saved, reloaded = (measure(MeasureOptions(models=[name], seconds=[0.5], latency=False))[0]
                       for name in ("fithubert", str(tmp_path / "variant")))
    variant = load_model(str(tmp_path / "variant"))
    assert isinstance(variant.model.encoder.layer_norm, NormThenTimeReduction)
    assert variant.model.config.compbench_structure["time_reduction"] == {"factor": 2, "kernel": 2}
    assert reloaded["macs"] < saved["macs"] and reloaded["compression"][0]["name"] == "head_pruning"
    inputs = {"input_values": torch.randn(1, 8000)}
    again = load_model(str(tmp_path / "variant"))
    assert torch.equal(variant.model(**inputs).last_hidden_state, again.model(**inputs).last_hidden_state)


def test_published_weights_that_transformers_cannot_load_and_a_reduction_without_its_place_are_refused():
    with pytest.raises(InvalidInputError, match="fithubert is measured with random weights only"):
        load_model("fithubert", weights="pretrained")
    with pytest.raises(InvalidInputError, match="post-norm speech encoder"):
        add_time_reduction(ModelAdapter(build_tiny("hubert-stable")), 2, 2)  # its norm comes after the layers
    with pytest.raises(InvalidInputError, match="post-norm speech encoder"):
        add_time_reduction(ModelAdapter(build_tiny("bert")), 2, 2)


@pytest.mark.parametrize(("name", "width", "encoder", "published"), [("armhubert", 480, 22_015_552, 26.45e6),
                                                                     ("armhubert-s", 432, 18_403_552, 22.39e6)])
def test_armhubert_has_its_published_parameter_count(name, width, encoder, published):
    """Published: ARMHuBERT-960h 26.45M and ARMHuBERT-S-960h 22.39M (github.com/sungnyun/ARMHuBERT README, the
    checkpoints of Jang, Kim et al., "Recycle-and-Distill", Interspeech 2023, arXiv 2305.11685). Architecture: its
    conf/armhubert/armhubert-960.yaml and armhubert-s-960.yaml. The count includes the 12 layer-wise projection
    heads the students are distilled through (``layerwise_proj: True``, a Linear from the width to HuBERT's 768
    each); the encoder the preset builds is the rest, its mask embedding included."""
    assert count_params(load_model(name).model).total == encoder
    heads = nn.ModuleList([nn.Linear(width, 768) for _ in range(12)])
    assert abs(encoder + count_params(heads).total - published) / published < 0.01
    assert round((encoder + count_params(heads).total) / 1e4) == round(published / 1e4)  # to the published digits


def test_starhubert_has_its_published_parameter_count():
    """Published: STaRHuBERT 22.3M (github.com/sungnyun/ARMHuBERT README, the checkpoints of Jang, Kim and Kim, "STaR:
    Distilling Speech Temporal Relation for Lightweight Speech Self-Supervised Learning Models", ICASSP 2024, arXiv
    2312.09040). The authors' configuration is on Google Drive; the architecture is that of the reimplementation
    github.com/Qingzheng-Wang/STaRHuBERT conf/starhubert/starhubert.yaml (432 wide, 8 heads, FFN 976), which has no
    distillation heads left and no mask embedding."""
    params = count_params(load_model("starhubert").model).total
    assert params == 22_308_592
    assert abs(params - 22.3e6) / 22.3e6 < 0.01 and round(params / 1e5) == 223  # to the published digits


def _lighthubert_released_count(width: int, supernet_width: int) -> int:
    """A LightHuBERT subnet's parameters as its released code counts them (github.com/mechanicalsea/lighthubert
    lighthubert/lighthubert.py ``calc_sampled_param_num``): every parameter outside the encoder and the projection
    at its full size (the CNN with its layer norms, the norm before the projection, and the mask embedding at the
    supernet's width), the projection, the 12 layers and the encoder's norm at the subnet's width, the position
    convolution's weight (not its weight-norm magnitude) and bias at the subnet's width, no prediction head."""
    cnn = 512 * 10 + 4 * 512 * 512 * 3 + 2 * 512 * 512 * 2 + 7 * 2 * 512  # no conv bias; a layer norm per block
    outside = cnn + 2 * 512 + supernet_width
    projection = 512 * width + width
    attention = 4 * (width * width + width)
    ffn = 2 * width * 4 * width + 4 * width + width
    layers = 12 * (attention + ffn + 2 * 2 * width)
    positions = width * (width // 16) * 128 + width
    return outside + projection + layers + positions + 2 * width


@pytest.mark.parametrize(("name", "width", "supernet_width", "released"), [
    ("lighthubert-small", 384, 512, 26_879_488), ("lighthubert-base", 640, 768, 66_897_664)])
def test_lighthubert_subnets_have_the_count_their_released_code_gives(name, width, supernet_width, released):
    """LightHuBERT (Wang et al., Interspeech 2022, arXiv 2203.15610) publishes its small and base subnets in its code
    (lighthubert.py ``LightHuBERTSupernetConfig.subnet``: 384 and 640 wide, 6 and 10 heads, FFN x4, 12 layers) and
    counts them with ``calc_sampled_param_num``; the paper's own table could not be read offline, so the published
    figure checked here is that code's count, term by term. It differs from transformers' count only in where 128
    parameters sit (the code counts the mask embedding at the supernet's width and not the position convolution's
    weight-norm magnitude); the totals are equal."""
    assert _lighthubert_released_count(width, supernet_width) == released
    params = count_params(load_model(name).model).total
    assert params == released


def test_lighthubert_weights_are_refused_with_the_reason():
    with pytest.raises(InvalidInputError, match="LightHuBERT's released weights"):
        load_model("lighthubert-small", weights="pretrained")


def _zero_queries_and_keys(model, layers):
    for layer in layers:
        attention = model.encoder.layers[layer].attention
        for projection in (attention.q_proj, attention.k_proj):
            nn.init.zeros_(projection.weight)
            nn.init.zeros_(projection.bias)


def test_a_layer_reusing_an_attention_map_reads_the_one_before_it():
    """Layers whose queries and keys are zero attend uniformly; a reusing layer then gives what it gives with its
    own uniform map. With the first layer's map not uniform, the reusing layer's output follows that map."""
    from compbench.surgery.attention_reuse import add_attention_reuse

    plain = build_tiny("hubert", attn_implementation="eager")
    _zero_queries_and_keys(plain, [0, 1])
    reusing, own_map = copy.deepcopy(plain), copy.deepcopy(plain)  # copies before any forward (weight norm)
    add_attention_reuse(ModelAdapter(reusing), [False, True])
    first_layer_attends = copy.deepcopy(reusing)
    for model in (first_layer_attends, own_map):  # layer 0 attends, not uniformly; layer 1 of own_map uniformly
        torch.manual_seed(1)
        nn.init.normal_(model.encoder.layers[0].attention.q_proj.weight, std=2.0)
        nn.init.normal_(model.encoder.layers[0].attention.k_proj.weight, std=2.0)
    inputs = torch.randn(1, 4000)
    assert torch.allclose(plain(inputs).last_hidden_state, reusing(inputs).last_hidden_state, atol=1e-6)
    assert not hasattr(reusing.encoder.layers[1].attention, "q_proj")
    changed, uniform = first_layer_attends(inputs).last_hidden_state, own_map(inputs).last_hidden_state
    assert not torch.allclose(changed, uniform, atol=1e-4)  # the reusing layer read layer 0's map


def test_a_layer_whose_map_a_kept_layer_reuses_is_never_removed(tmp_path):
    """Keeping a reusing layer but not the layer whose map it reads is refused, for every compressor that removes
    layers (they all keep layers through keep_layers); removing both, or the reuser alone, works and runs."""
    from compbench.surgery.layers import keep_layers

    armhubert = load_model("armhubert-s", weights="random").model  # layers 1, 3, ... reuse 0, 2, ...
    for kept, reuser in (([0, 1, 3], 3), ([1, 2], 1), ([0, 2, 3, 5], 5)):
        with pytest.raises(InvalidInputError, match=f"layer {reuser} reuses the attention map of layer {reuser - 1}"):
            keep_layers(ModelAdapter(copy.deepcopy(armhubert)), kept)
    for kept in ([0, 1, 2], [2, 3, 4], [0, 2, 4, 6]):
        model = copy.deepcopy(armhubert)
        assert keep_layers(ModelAdapter(model), kept) == len(kept)
        assert model(input_values=torch.randn(1, 4000)).last_hidden_state.shape[-1] == 432
    # layer_drop from the bottom: 3 layers (0, 1, 2) would leave layer 3 reading layer 2's map; 6 layers is whole pairs
    bottom = tmp_path / "bottom.yaml"
    for amount, out in ((0.25, "bottom3"), (0.5, "bottom6")):
        bottom.write_text(f"- {{name: layer_drop, amount: {amount}, options: {{which: bottom}}}}\n")
        if amount == 0.25:
            with pytest.raises(InvalidInputError, match="^layer_drop: layer 3 reuses the attention map of layer 2, "
                                                        "which would be removed"):  # the step that failed, named
                compress_model("armhubert-s", str(bottom), str(tmp_path / out), weights="random")
            assert not (tmp_path / out).exists()
        else:
            compress_model("armhubert-s", str(bottom), str(tmp_path / out), weights="random")
    structure = load_model(str(tmp_path / "bottom6")).model.config.compbench_structure
    assert structure["attention_reuse"] == [False, True] * 3
    wavlm = build_tiny("wavlm")
    with pytest.raises(InvalidInputError, match="WavLM's first layer holds the relative position bias"):
        keep_layers(ModelAdapter(wavlm), [1])


def test_a_compressed_armhubert_reloads_with_its_reuse_and_what_needs_queries_or_its_projection_is_refused(
        tmp_path):
    compress_model("armhubert-s", "ffn_pruning=0.5", str(tmp_path / "variant"), weights="random")
    variant = load_model(str(tmp_path / "variant"))
    structure = variant.model.config.compbench_structure
    assert structure["attention_reuse"] == [False, True] * 6 and structure["feature_projection"] == "none"
    assert count_params(variant.model).total < 18_403_552
    inputs = torch.randn(1, 8000)
    again = load_model(str(tmp_path / "variant"))
    assert torch.equal(variant.model(input_values=inputs).last_hidden_state,
                       again.model(input_values=inputs).last_hidden_state)
    dense, low_rank, dropped = measure(MeasureOptions(models=["armhubert-s"], seconds=[0.5], latency=False,
                                                      compress=["low_rank=0.5", "layer_drop=0.5"]))
    assert low_rank["macs"] < dense["macs"] and dropped["macs"] < dense["macs"]  # only the Linears a layer has
    with pytest.raises(InvalidInputError, match="^head_pruning: layer 1 reuses the previous layer's attention map"):
        compress_model("armhubert-s", "head_pruning=0.5", str(tmp_path / "heads"), weights="random")
    with pytest.raises(InvalidInputError, match="no feature projection"):
        compress_model("armhubert-s", "conv_pruning=0.5", str(tmp_path / "channels"), weights="random")
    assert not (tmp_path / "heads").exists() and not (tmp_path / "channels").exists()
