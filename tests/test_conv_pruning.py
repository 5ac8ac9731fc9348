"""conv_pruning: output channels of the CNN feature encoder removed with everything that reads them, the share
of the feature encoder's MACs asked for at every input length, saved and reloaded with exact MACs on every
speech family."""

import pytest
import torch
from tiny_models import build_tiny

from compbench.compression import Step, apply_pipeline
from compbench.compressors import COMPRESSORS
from compbench.counting.macs import count_macs
from compbench.errors import InvalidInputError
from compbench.models import InputSpec, ModelAdapter, load_model
from compbench.models.variants import save_variant

SPEECH_FAMILIES = ["hubert", "hubert-stable", "wav2vec2", "wavlm", "data2vec-audio"]


def feature_encoder_macs(model, seconds: float) -> int:
    adapter = ModelAdapter(model)
    counted = count_macs(model, adapter.build_inputs(InputSpec("speech", seconds), "meta"), adapter.component_of)
    return counted.by_component["feature_encoder"]


def written_out_conv_macs(channels: list[int], kernels, strides, samples: int) -> int:
    """The convolutions' MACs from their shapes alone: frames x output channels x input channels x kernel."""
    total, inputs = 0, 1
    for width, kernel, stride in zip(channels, kernels, strides, strict=True):
        samples = (samples - kernel) // stride + 1
        total += samples * width * inputs * kernel
        inputs = width
    return total


@pytest.mark.parametrize("family", SPEECH_FAMILIES)
def test_half_the_feature_encoders_macs_go_at_every_length_and_the_saved_variant_reloads_exactly(family, tmp_path):
    model = build_tiny(family)
    variant = apply_pipeline(model, [Step("conv_pruning", 0.5)])
    step = variant.manifest[0]
    assert step["channels_before"] == [16, 16, 16] and min(step["channels_after"]) >= 1
    assert list(variant.model.config.conv_dim) == step["channels_after"] != list(model.config.conv_dim)
    for seconds in (0.25, 1.0, 10.0):
        removed = 1 - feature_encoder_macs(variant.model, seconds) / feature_encoder_macs(model, seconds)
        assert abs(removed - 0.5) <= 0.05, (seconds, removed)  # 16 channels a layer: steps of a few percent
        assert abs(removed - step["conv_macs_removed"]) <= 0.002  # the same share at every length
    save_variant(variant, tmp_path / "v", {"model": family})
    loaded = load_model(str(tmp_path / "v"))
    inputs = ModelAdapter(variant.model).build_inputs(InputSpec("speech", 0.3))
    with torch.no_grad():
        assert torch.equal(loaded.model(**inputs).last_hidden_state, variant.model(**inputs).last_hidden_state)
    spec_inputs = ModelAdapter(loaded.model).build_inputs(InputSpec("speech", 1.0), "meta")
    assert count_macs(loaded.model, spec_inputs).total == count_macs(variant.model, spec_inputs).total
    assert [s["name"] for s in loaded.compression] == ["conv_pruning"]


def test_hubert_base_at_10_s_loses_half_its_feature_encoder_macs_exactly_as_its_shapes_say(tmp_path):
    model = load_model("hubert-base").model
    config = model.config
    variant = apply_pipeline(model, [Step("conv_pruning", 0.5)])
    kept = variant.manifest[0]["channels_after"]
    spec = InputSpec("speech", 10)
    written = written_out_conv_macs(kept, config.conv_kernel, config.conv_stride, 160_000)
    dense = written_out_conv_macs([512] * 7, config.conv_kernel, config.conv_stride, 160_000)
    assert dense == 24_539_032_576 and abs(1 - written / dense - 0.5) <= 0.01
    dense_total = count_macs(model, ModelAdapter(model).build_inputs(spec, "meta")).total
    # the rest of the model loses only the projection's input columns: 499 frames x removed channels x 768
    expected = dense_total - (dense - written) - 499 * (512 - kept[-1]) * 768
    assert count_macs(variant.model, ModelAdapter(variant.model).build_inputs(spec, "meta")).total == expected
    save_variant(variant, tmp_path / "v", {"model": "hubert-base"})
    reloaded = load_model(str(tmp_path / "v")).model
    assert count_macs(reloaded, ModelAdapter(reloaded).build_inputs(spec, "meta")).total == expected
    assert reloaded.feature_extractor.conv_layers[0].layer_norm.num_groups == kept[0]  # one group per channel


def test_the_channels_that_go_are_the_ones_of_least_magnitude_and_every_layer_keeps_one():
    model = build_tiny("hubert-stable")
    with torch.no_grad():
        model.feature_extractor.conv_layers[0].conv.weight[[3, 7]] *= 1e-3  # two weak filters in the first layer
    step = COMPRESSORS.get("conv_pruning")(model, 0.15).manifest[0]
    assert step["channels_after"] == [14, 14, 14] and step["removed_channels"][0] == [3, 7]
    nearly_all = COMPRESSORS.get("conv_pruning")(model, 0.99).manifest[0]
    assert nearly_all["channels_after"] == [1, 1, 1]


def test_a_text_model_has_no_convolutions_to_prune():
    with pytest.raises(InvalidInputError, match="conv_pruning removes channels of a speech model's CNN feature "
                                                "encoder; bert is a text model"):
        COMPRESSORS.get("conv_pruning")(build_tiny("bert"), 0.5)


# ---- gradient importance of channels: a gate on what reads each convolution's output ----------

def speech_classifier():
    from test_context import classifier

    return classifier("hubert").double()


def float64_context():
    """tiny_data's speech task with float64 waveforms, for a float64 model."""
    from tiny_data import RandomTaskData

    from compbench.compression.context import Batch, CompressionContext

    class Float64Data(RandomTaskData):
        def batches(self, split, batch_size, seed):
            for batch in super().batches(split, batch_size, seed):
                yield Batch({"input_values": batch.inputs["input_values"].double()}, batch.labels)

    return CompressionContext(data=Float64Data("speech"), seed=0)


@pytest.mark.parametrize("method", ["sensitivity", "fisher"])
def test_channel_importance_equals_a_finite_difference_of_the_task_loss(method):
    """dL/dg for each channel of the first and the last convolution from one batch, against
    (L(1 + e) - L(1 - e)) / 2e (float64), the channel scaled where the convolution layer hands it on."""
    from test_context import importance_options

    from compbench.compression.context import task_loss
    from compbench.importance.gates import CHANNELS
    from compbench.importance.gradient import gate_importance

    model = speech_classifier()
    adapter = ModelAdapter(model)
    context = float64_context()
    batch = context.calibration(1, 8)[0]
    scores, seen = gate_importance(adapter, CHANNELS, importance_options(importance=method, batches=1, batch_size=8),
                                   context)
    assert seen["importance_loss"] == "task" and [len(s) for s in scores] == [16, 16, 16]

    def loss(layer, channel, scale):
        def hook(module, args, output):
            output = output.clone()
            output[:, channel] *= scale
            return output
        handle = model.hubert.feature_extractor.conv_layers[layer].register_forward_hook(hook)
        with torch.no_grad():
            value = task_loss(model, batch)
        handle.remove()
        return float(value)

    eps = 1e-5
    for layer in (0, 2):
        for channel in range(0, 16, 5):
            gradient = (loss(layer, channel, 1 + eps) - loss(layer, channel, 1 - eps)) / (2 * eps)
            expected = gradient ** 2 if method == "fisher" else abs(gradient)
            assert float(scores[layer][channel]) == pytest.approx(expected, rel=1e-5, abs=1e-10)


def test_fisher_removes_the_channels_of_least_fisher_information_and_says_what_it_saw():
    from test_context import importance_options

    from compbench.importance.gates import CHANNELS
    from compbench.importance.gradient import gate_importance

    model = speech_classifier()
    options = {"importance": "fisher", "batches": 2, "batch_size": 4}
    variant = apply_pipeline(model, [Step("conv_pruning", 0.5, options)], float64_context())
    step = variant.manifest[0]
    assert step["importance_loss"] == "task" and step["data"]["task"] == "tiny-task"
    scores, _ = gate_importance(ModelAdapter(model), CHANNELS, importance_options(**options), float64_context())
    for layer, removed in enumerate(step["removed_channels"]):
        kept = step["channels_after"][layer]
        assert removed == sorted(sorted(range(16), key=lambda c: (float(scores[layer][c]), c))[:16 - kept])
    with pytest.raises(InvalidInputError, match="conv_pruning with importance: fisher needs task data: pass --task T"):
        COMPRESSORS.get("conv_pruning")(model, 0.5, {"importance": "fisher"})
