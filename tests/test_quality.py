"""Teacher fidelity (CKA, cosine) and the SUPERB-style probe."""

import numpy as np
import pytest
import torch
from tiny_models import build_tiny

from compbench.compressors import Step, apply_pipeline
from compbench.quality.fidelity import kept_layers, layer_fidelity, linear_cka, mean_cosine
from compbench.quality.probe import pooled_layer_features, train_probe


def test_cka_is_one_for_rotated_and_scaled_copies_and_low_for_unrelated_features():
    torch.manual_seed(0)
    x = torch.randn(500, 16)
    rotation, _ = torch.linalg.qr(torch.randn(16, 16))
    assert linear_cka(x, 3.0 * x @ rotation) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(x, x + 5.0) == pytest.approx(1.0, abs=1e-9)  # centred
    assert linear_cka(x, torch.randn(500, 16)) < 0.1
    assert linear_cka(x, x[:, :8]) == pytest.approx(linear_cka(x[:, :8], x), abs=1e-12)  # symmetric


def test_cosine():
    x = torch.randn(50, 8)
    assert mean_cosine(x, 2 * x) == pytest.approx(1.0)
    assert mean_cosine(x, -x) == pytest.approx(-1.0)


def test_kept_layers_follow_the_manifest():
    manifest = [{"name": "head_pruning"}, {"name": "layer_drop", "dropped_layers": [1, 3]},
                {"name": "layer_drop", "dropped_layers": [0]}]
    assert kept_layers(6, manifest) == [2, 4, 5]


def hidden(model, inputs):
    with torch.no_grad():
        states = model(**inputs, output_hidden_states=True).hidden_states
    return [s.reshape(-1, s.shape[-1]) for s in states]


def test_fidelity_of_a_variant_against_its_dense_model():
    model = build_tiny("hubert")
    inputs = {"input_values": torch.randn(3, 4000, generator=torch.Generator().manual_seed(1))}
    dense = hidden(model, inputs)
    same = layer_fidelity(dense, dense)
    assert [round(f["cka"], 9) for f in same] == [1.0] * 3 and all(f["cosine"] > 0.999999 for f in same)
    pruned = apply_pipeline(model, [Step("head_pruning", 0.5)])
    fidelity = layer_fidelity(dense, hidden(pruned.model, inputs), pruned.manifest)
    assert fidelity[0]["cka"] == pytest.approx(1.0, abs=1e-9)  # before any attention layer
    # random tiny weights: the residual stream dominates, so the drop is small but real
    assert fidelity[-1]["cka"] < 1 - 1e-7 and fidelity[-1]["cosine"] < 1 - 1e-7
    dropped = apply_pipeline(model, [Step("layer_drop", 0.5, {"which": "bottom"})])
    pairs = [(f["variant_layer"], f["dense_layer"]) for f in
             layer_fidelity(dense, hidden(dropped.model, inputs), dropped.manifest)]
    assert pairs == [(0, 0), (1, 2)]


def test_probe_finds_the_informative_layer_and_separates_the_classes():
    generator = torch.Generator().manual_seed(0)
    labels = np.arange(300) % 3
    features = torch.randn(300, 4, 10, generator=generator)
    features[:, 2, :3] += 4.0 * torch.nn.functional.one_hot(torch.as_tensor(labels), 3)  # only layer 2 knows
    result = train_probe(features, labels, classes=3)
    assert result.accuracy(features, labels) == 1.0
    assert int(result.probe.layer_weights().argmax()) == 2
    again = train_probe(features, labels, classes=3)
    assert torch.equal(again.probe.head.weight, result.probe.head.weight)  # seeded, deterministic


def test_pooled_features_shape_and_pooling():
    model = build_tiny("hubert")
    waves = [np.random.default_rng(0).standard_normal(n).astype(np.float32) for n in (3200, 4800)]
    pooled = pooled_layer_features(model, waves)
    assert pooled.shape == (2, 3, 32)
    with torch.no_grad():
        states = model(input_values=torch.as_tensor(waves[1])[None], output_hidden_states=True).hidden_states
    assert torch.allclose(pooled[1, 2], states[2][0].mean(dim=0))
