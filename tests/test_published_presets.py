"""Presets of published compressed speech models: each one's parameter count against its published count (the
figure and its source beside it), and the modules transformers lacks (FitHuBERT's time reduction) counted
exactly, rebuilt on reload, refused where they do not fit."""

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
