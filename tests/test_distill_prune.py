"""distill_prune (DPHuBERT) on tiny speech configs: the Lagrangian drives the expected MACs to the target, the
hard gates keep as many units as they expect, the removed model computes what the hard-gated one does and counts
exactly what the gates expected, before and after save and reload."""

import copy

import pytest
import torch
from test_budget_pruning import classifier, inputs_of, logits
from tiny_data import tiny_context

from compbench.compressors import COMPRESSORS
from compbench.compressors.distill_prune import GateSet, remove_closed_units
from compbench.counting.macs import count_macs
from compbench.errors import InvalidInputError
from compbench.importance.gates import CHANNELS, HEADS, NEURONS, UnitGates
from compbench.importance.hard_concrete import BETA
from compbench.models import InputSpec, ModelAdapter, load_model
from compbench.models.variants import save_variant
from compbench.surgery.conv_channels import conv_layers
from compbench.surgery.unit_costs import model_costs

SECONDS = 0.1  # the tiny task data's mean input length


def macs_of(model) -> int:
    adapter = ModelAdapter(model)
    return count_macs(model, adapter.build_inputs(InputSpec("speech", SECONDS), "meta")).total


def test_the_expected_macs_reach_the_target_and_the_removed_model_counts_what_the_hard_gates_expect(tmp_path):
    """Target 0.7 of a tiny HuBERT's MACs (its Transformer blocks are 47 % of them, so heads, neurons and blocks
    can pay): the gates' expected MACs end within 2 % of the target; the variant's MACs, counted by the counter,
    are the cost model's MACs at the hard gates' counts, after save and reload too; the input is untouched."""
    model = classifier("hubert")
    dense_macs, dense_state = macs_of(model), copy.deepcopy(model.state_dict())
    variant = COMPRESSORS.get("distill_prune")(model, None, {"target": 0.7, "steps": 500, "batch_size": 4},
                                               tiny_context("speech"))
    step = variant.manifest[0]
    macs = step["model_macs"]
    assert macs["before"] == dense_macs and macs["target"] == round(0.7 * dense_macs)
    assert abs(step["losses"]["pruning"]["expected_macs_fraction"] - 0.7) <= 0.02 * 0.7
    assert macs_of(variant.model) == macs["after"] == macs["expected_hard"]
    assert step["removed"] == round(1 - macs["after"] / dense_macs, 4) > 0
    assert step["data"]["labels_used"] is False and step["data"]["examples"] == 500 * 4
    assert list(variant.model.config.conv_dim) == step["channels_after"]
    assert macs_of(model) == dense_macs
    assert all(torch.equal(value, model.state_dict()[name]) for name, value in dense_state.items())
    save_variant(variant, tmp_path / "v", {"model": "hubert"})
    reloaded = load_model(str(tmp_path / "v")).model
    assert macs_of(reloaded) == macs["after"]
    inputs = inputs_of(variant.model)
    assert torch.allclose(logits(variant.model, inputs), logits(reloaded, inputs), atol=1e-5)


def _set(gates, log_alphas):
    with torch.no_grad():
        for gate, values in zip(gates, log_alphas, strict=True):
            gate.log_alpha.copy_(torch.as_tensor(values, dtype=torch.float32))


def _open(log_alpha: float) -> float:
    return float(torch.sigmoid(torch.tensor(0.8 * log_alpha / BETA)))


def test_hard_gates_keep_as_many_units_as_the_gates_expect_those_of_the_largest_log_alpha():
    """Layer 0's attention block is closed (no head stays whatever its heads' gates say); layer 1's is open: its
    block's probability times its heads' expected count, rounded, stay, at their values times the block's; a
    convolution whose channels are all closed keeps its most likely one; the last convolution's stay at 1."""
    model = classifier("hubert")
    gate_set = GateSet(ModelAdapter(model), torch.Generator().manual_seed(0))
    _set(gate_set.attention, [[-20.0], [20.0]])
    _set(gate_set.heads, [[5.0, 5.0, 5.0, 5.0], [9.0, -20.0, 7.0, 8.0]])
    channels = [[-20.0] * 16, [-20.0] * 15 + [-19.0], [9.0] * 8 + [-20.0] * 8]
    _set(gate_set.channels, channels)
    gate_set.eval()
    kept, kept_channels, values = gate_set.hard()
    assert kept[HEADS] == [[], [0, 2, 3]]
    assert values[HEADS][1].tolist() == pytest.approx([_open(9.0) * _open(20.0), 0.0, _open(7.0) * _open(20.0),
                                                       _open(8.0) * _open(20.0)])
    assert values[HEADS][0].tolist() == [0.0] * 4
    assert kept_channels == [[0], [15], list(range(8))]
    assert values[CHANNELS][2].tolist() == [1.0] * 8 + [0.0] * 8
    assert values[CHANNELS][0][0] == pytest.approx(_open(-20.0))
    expected_heads = gate_set.expected()[0]
    assert [len(units) for units in kept[HEADS]] == [round(float(e.detach())) for e in expected_heads]


@pytest.mark.parametrize("family", ["hubert", "wavlm", "data2vec-audio"])
def test_the_removed_model_computes_what_the_hard_gated_model_computes(family):
    """Gates at chosen log_alphas (a closed FFN block, heads, neurons and channels half closed): the model with
    every closed unit removed and the kept values folded in gives the logits of the dense model gated with the
    hard values, and the counter counts what the cost model gives for the units it keeps. (Channels that a
    LayerNorm normalises together stay open here: the last convolution's, read by the feature projection's
    LayerNorm, and every convolution's of a ``feat_extract_norm: layer`` model; removing one of those is not the
    same as gating it to 0, for DPHuBERT as here.)"""
    model = classifier(family)
    adapter = ModelAdapter(model)
    gate_set = GateSet(adapter, torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    for gates in (gate_set.channels, gate_set.heads, gate_set.neurons):
        _set(gates, [torch.randn(len(g.log_alpha), generator=generator) * 4 for g in gates])
    _set(gate_set.ffn, [[-20.0], [20.0]])
    layer_norms = hasattr(conv_layers(adapter)[0], "layer_norm") and hasattr(conv_layers(adapter)[1], "layer_norm")
    normalised_together = gate_set.channels if layer_norms else gate_set.channels[-1:]
    _set(normalised_together, [[20.0] * len(g.log_alpha) for g in normalised_together])
    gate_set.eval()
    _, _, values = gate_set.hard()
    inputs = inputs_of(model)
    gated = UnitGates(ModelAdapter(copy.deepcopy(model)), (HEADS, NEURONS, CHANNELS))
    gated.values = values
    with gated:
        expected_logits = logits(gated.adapter.model, inputs)
    costs = model_costs(model, InputSpec("speech", SECONDS))
    heads, neurons, removed = remove_closed_units(UnitGates(adapter, (HEADS, NEURONS, CHANNELS)), gate_set)
    assert neurons[0] == 0 and neurons[1] > 0
    channels = [width - len(gone) for width, gone in zip(costs.channels, removed, strict=True)]
    assert channels == list(model.config.conv_dim) and min(channels) >= 1
    assert (sum(channels) == sum(costs.channels)) == layer_norms
    assert macs_of(model) == costs.macs(heads, neurons, channels)
    assert torch.allclose(logits(model, inputs), expected_logits, atol=1e-5)


def test_the_final_distillation_trains_the_removed_model_without_changing_its_shapes():
    """``final_distill_steps`` more steps after removal: recorded with its losses and seconds, the weights move, the
    MACs stay those of the hard gates."""
    model = classifier("wavlm")
    options = {"target": 0.8, "steps": 5, "batch_size": 4}
    without = COMPRESSORS.get("distill_prune")(model, None, options, tiny_context("speech"))
    variant = COMPRESSORS.get("distill_prune")(model, None, {**options, "final_distill_steps": 4},
                                               tiny_context("speech"))
    step = variant.manifest[0]
    assert step["losses"]["final_distillation"]["steps"] == 4 and "final_distillation" in step["seconds"]
    assert without.manifest[0]["losses"]["final_distillation"] is None
    assert step["data"]["steps"] == 9 and step["data"]["examples"] == 9 * 4
    assert macs_of(variant.model) == step["model_macs"]["after"] == step["model_macs"]["expected_hard"]
    assert step["heads_after"] == without.manifest[0]["heads_after"]  # the same gates: the same seed, steps
    tuned, plain = variant.model.state_dict(), without.model.state_dict()
    assert tuned.keys() == plain.keys() and any(not torch.equal(tuned[k], plain[k]) for k in tuned)


def test_bad_input_is_one_clear_error():
    prune = COMPRESSORS.get("distill_prune")
    speech = classifier("hubert")
    with pytest.raises(InvalidInputError, match="bert is a text model"):
        prune(classifier("bert"), None, {}, tiny_context("text"))
    with pytest.raises(InvalidInputError, match=r"target .* must be in \(0, 1\)"):
        prune(speech, None, {"target": 1.0}, tiny_context("speech"))
    with pytest.raises(InvalidInputError, match="distill_layers must be hidden-state indices 0..2"):
        prune(speech, None, {"distill_layers": [3]}, tiny_context("speech"))
    with pytest.raises(InvalidInputError, match="steps must be >= 1"):
        prune(speech, None, {"steps": 0}, tiny_context("speech"))
    with pytest.raises(InvalidInputError, match="distill_prune takes no amount"):
        prune(speech, 0.5, {}, tiny_context("speech"))
    with pytest.raises(InvalidInputError, match="needs task data|--task"):
        prune(speech, None, {})
