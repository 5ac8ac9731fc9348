"""budget_pruning on tiny configs: unit costs from the counter, the budget, trajectory and Fisher
importance, rearrangement, mask tuning, and layers left with no heads or no neurons."""

import copy

import pytest
import torch
from tiny_data import tiny_context
from tiny_models import TINY_CONFIGS, build_tiny
from transformers import AutoModelForAudioClassification, AutoModelForSequenceClassification

from compbench.compressors import COMPRESSORS
from compbench.compressors.budget_pruning import split_budget
from compbench.counting.macs import MacCount, count_macs
from compbench.errors import InvalidInputError
from compbench.importance.gates import HEADS, NEURONS, UnitGates, remove_units
from compbench.importance.mask_tuning import rearrange, tune_masks
from compbench.importance.trajectory import _normalised_gram, trajectory_importance
from compbench.models import InputSpec, ModelAdapter, load_model
from compbench.models.variants import save_variant
from compbench.surgery.unit_costs import UnitCosts, encoder_macs, model_costs, unit_costs
from compbench.surgery.units import head_dim, heads_in_layer, keep_heads, keep_neurons

FAMILIES = sorted(TINY_CONFIGS)
SIZE = {"speech": 0.1, "text": 12}  # the tiny task data's mean input size


def classifier(family: str, seed: int = 0):
    """A tiny model with a two-label head (the tiny task's labels), random weights."""
    config = build_tiny(family).config
    config.num_labels, config.id2label, config.label2id = 2, {0: "no", 1: "yes"}, {"no": 0, "yes": 1}
    torch.manual_seed(seed)
    auto = AutoModelForSequenceClassification if ModelAdapter(build_tiny(family)).modality == "text" \
        else AutoModelForAudioClassification
    return auto.from_config(config).eval()


def inputs_of(model, batch=2):
    adapter = ModelAdapter(model)
    return adapter.build_inputs(InputSpec(adapter.modality, SIZE[adapter.modality], batch=batch))


def logits(model, inputs):
    with torch.no_grad():
        return model.eval()(**inputs).logits


@pytest.mark.parametrize("family", FAMILIES)
def test_each_units_cost_is_the_counters_difference_after_removing_it(family):
    model = build_tiny(family)
    adapter = ModelAdapter(model)
    spec = InputSpec(adapter.modality, SIZE[adapter.modality])
    costs = unit_costs(model, spec)
    inputs = adapter.build_inputs(spec)
    whole = count_macs(model, inputs, adapter.component_of)
    assert costs.macs.total == whole.total
    for layer in range(2):
        fewer_heads = copy.deepcopy(model)
        keep_heads(ModelAdapter(fewer_heads), layer, [0, 1, 3])  # head 2 removed (the costs removed the last)
        assert whole.total - count_macs(fewer_heads, inputs).total == costs.heads[layer] > 0
        fewer_neurons = copy.deepcopy(model)
        keep_neurons(ModelAdapter(fewer_neurons), layer, [n for n in range(64) if n != 5])
        assert whole.total - count_macs(fewer_neurons, inputs).total == costs.neurons[layer] > 0
    # the encoder's MACs are linear in the units: heads times their cost plus neurons times theirs
    assert encoder_macs(whole) == sum(4 * costs.heads[i] + 64 * costs.neurons[i] for i in range(2))


@pytest.mark.parametrize("family", FAMILIES)
def test_a_layer_with_no_heads_or_neurons_keeps_only_its_output_bias(family, tmp_path):
    model = build_tiny(family)
    adapter = ModelAdapter(model)
    inputs = inputs_of(model)
    costs = unit_costs(model, InputSpec(adapter.modality, SIZE[adapter.modality]))
    variant = COMPRESSORS.get("head_pruning")(model, 0.0)  # a copy to cut by hand
    cut = ModelAdapter(variant.model)
    keep_heads(cut, 0, [])
    keep_neurons(cut, 1, [])
    before = count_macs(model, adapter.build_inputs(InputSpec(adapter.modality, SIZE[adapter.modality])),
                        adapter.component_of)
    after = count_macs(variant.model, adapter.build_inputs(InputSpec(adapter.modality, SIZE[adapter.modality])),
                       cut.component_of)
    assert before.total - after.total == 4 * costs.heads[0] + 64 * costs.neurons[1]
    # what the emptied blocks add is their output bias: the same as zeroing every weight that feeds it
    zeroed = copy.deepcopy(model)
    za = ModelAdapter(zeroed)
    with torch.no_grad():
        for name in ("query", "key", "value", "output"):
            za.attention_projections(0)[name].weight.zero_()
        for name in ("query", "key", "value"):
            if za.attention_projections(0)[name].bias is not None:
                za.attention_projections(0)[name].bias.zero_()
        za.ffn(1)[1].weight.zero_()
    with torch.no_grad():
        expected = zeroed(**inputs).last_hidden_state
        got = variant.model(**inputs).last_hidden_state
    assert torch.allclose(got, expected, atol=1e-5)
    save_variant(variant, tmp_path / "v", {"model": "tiny"})
    loaded = load_model(str(tmp_path / "v"))
    assert [heads_in_layer(ModelAdapter(loaded.model), i) for i in range(2)] == [0, 4]
    with torch.no_grad():
        assert torch.equal(loaded.model(**inputs).last_hidden_state, got)


def _costs(heads, neurons):
    return UnitCosts(heads=heads, neurons=neurons, macs=MacCount())


def test_split_search_keeps_the_best_total_importance_within_the_budget():
    scores = {HEADS: [torch.tensor([5.0, 1.0]), torch.tensor([4.0, 0.5])],
              NEURONS: [torch.tensor([3.0, 2.9, 0.1]), torch.tensor([2.8, 0.2, 0.1])]}
    costs = _costs([10, 10], [4, 4])
    # budget 28: 2 heads (20) + 2 neurons (8) = 8 + 5.9 = 13.9; 1 head + 4 neurons (26) = 5 + 8.9 = 13.9 ...
    # 0 heads + 7 neurons? only 6 neurons (24): 9.1; the best is heads [5, 4] with neurons [3, 2.9]
    kept, split = split_budget(scores, costs, 28, {HEADS: 0, NEURONS: 0})
    assert kept == {HEADS: [[0], [0]], NEURONS: [[0, 1], []]}
    assert split["heads_kept"] == 2 and split["neurons_kept"] == 2 and split["kept_cost"] == 28
    assert split["splits_tried"] == 3  # 0, 1 and 2 heads
    # a minimum per layer is kept first, whatever its score
    kept, _ = split_budget(scores, costs, 28, {HEADS: 0, NEURONS: 1})
    assert all(len(units) >= 1 for units in kept[NEURONS])
    with pytest.raises(InvalidInputError, match="min_heads_per_layer"):
        split_budget(scores, costs, 30, {HEADS: 2, NEURONS: 0})


def test_an_aligned_search_keeps_blocks_of_the_best_units_and_whole_layers_and_meets_the_budget_within_a_block():
    scores = {HEADS: [torch.tensor([5.0, 1.0, 4.0, 0.5]), torch.tensor([4.0, 0.5, 0.2, 0.1])],
              NEURONS: [torch.tensor([3.0, 2.9, 0.1, 2.0, 1.0]), torch.tensor([2.8, 0.2, 0.1, 0.3, 0.4])]}
    costs = _costs([10, 10], [4, 4])
    for budget in range(0, 121, 7):
        try:
            kept, split = split_budget(scores, costs, budget, {HEADS: 0, NEURONS: 0},
                                       align={HEADS: 2, NEURONS: 2})
        except InvalidInputError:
            continue
        assert all(len(units) in (0, 2, 4) for units in kept[HEADS])  # multiples of 2 of 4 heads
        assert all(len(units) in (0, 2, 4, 5) for units in kept[NEURONS])  # of 5 neurons: 0, 2, 4 or all
        for kind in (HEADS, NEURONS):  # each layer's best first
            for layer, units in enumerate(kept[kind]):
                order = torch.argsort(scores[kind][layer], descending=True, stable=True).tolist()
                assert sorted(units) == sorted(order[:len(units)])
        assert split["kept_cost"] <= budget < split["kept_cost"] + 2 * 10  # within one block of two heads
    kept, _ = split_budget(scores, costs, 1000, {HEADS: 0, NEURONS: 0}, align={HEADS: 2, NEURONS: 2})
    assert [len(u) for u in kept[NEURONS]] == [5, 5] and [len(u) for u in kept[HEADS]] == [4, 4]  # all fits
    kept, _ = split_budget(scores, costs, 40, {HEADS: 1, NEURONS: 0}, align={HEADS: 2, NEURONS: 2})
    assert [len(u) for u in kept[HEADS]] == [2, 2]  # a minimum of one head forces a block of two in each layer


def test_budget_pruning_with_align_keeps_aligned_counts_and_says_so(tmp_path, monkeypatch):
    model = classifier("bert")  # 4 heads of 8, FFN of 64
    variant = COMPRESSORS.get("budget_pruning")(model, 0.4, {"importance": "fisher", "batches": 2, "batch_size": 4,
                                                             "align": 16}, tiny_context("text"))
    step = variant.manifest[0]
    assert step["align"] == {HEADS: 2, NEURONS: 16}  # a head is 8 wide: two make 16
    assert all(n % 16 == 0 for n in step["neurons_after"]) and all(h % 2 == 0 for h in step["heads_after"])
    macs = step["encoder_macs"]
    block = max(2 * max(step["unit_macs"][HEADS]), 16 * max(step["unit_macs"][NEURONS]))
    assert macs["after"] <= macs["target"] < macs["after"] + block


def test_rearrangement_uses_how_units_interact():
    # units 0 and 1 cancel each other (their gradients sum to zero in every batch); unit 2 does not
    gradients = torch.tensor([[1.0, -1.0, 0.9], [-1.0, 1.0, 0.9]])
    assert rearrange(gradients, keep=1) == [2]  # the diagonal alone would keep 0 or 1
    assert rearrange(gradients, keep=3) == [0, 1, 2]
    assert rearrange(gradients, keep=0) == []


@pytest.mark.parametrize("family", ["bert", "hubert", "wavlm", "distilbert"])
def test_fast_trajectory_equals_masking_each_unit_in_turn(family):
    model = classifier(family)
    adapter = ModelAdapter(model)
    batch = tiny_context(adapter.modality).calibration(1, 4)[0]
    gates = UnitGates(adapter)
    scores, info = trajectory_importance(gates, batch, tokens=32, kl_weight=1.0, temperature=2.0, seed=0)
    features = {}
    hooks = [adapter.ffn(i)[1].register_forward_hook(lambda m, a, out, i=i: features.__setitem__(i, out))
             for i in range(2)]
    try:
        with torch.no_grad(), gates:
            gates.reset()
            dense_logits = model(**batch.inputs).logits
            dense = dict(features)
            positions = torch.ones(batch.size, dense[0].shape[1], dtype=torch.bool).nonzero()
            sample = positions[torch.randperm(len(positions), generator=torch.Generator().manual_seed(0))[:32]]
            rows, cols = sample[:, 0], sample[:, 1]
            for kind in (HEADS, NEURONS):
                for layer in range(2):
                    for unit in (0, 3):
                        gates.reset()
                        gates.values[kind][layer][unit] = 0.0
                        masked = model(**batch.inputs).logits
                        expected = sum((_normalised_gram(features[i][None], rows, cols)
                                        - _normalised_gram(dense[i][None], rows, cols)).pow(2).mean()
                                       for i in range(layer, 2))
                        p = (dense_logits / 2).softmax(-1)
                        expected += 4 * (p * (p.log() - (masked / 2).log_softmax(-1))).sum(-1).mean()
                        assert float(scores[kind][layer][unit]) == pytest.approx(float(expected), rel=1e-3, abs=1e-9)
    finally:
        for hook in hooks:
            hook.remove()
    assert info["tokens_sampled"] == 32 < info["token_positions"] and info["kl"]


@pytest.mark.parametrize("family", ["bert", "hubert", "distilbert"])
def test_the_trajectory_importance_of_a_zeroed_head_or_neuron_is_the_lowest(family):
    model = classifier(family)
    adapter = ModelAdapter(model)
    size = head_dim(adapter)
    with torch.no_grad():
        adapter.attention_projections(1)["output"].weight[:, 2 * size:3 * size] = 0  # head 2 of layer 1 adds nothing
        adapter.ffn(0)[1].weight[:, 7] = 0  # neuron 7 of layer 0 adds nothing
    batch = tiny_context(adapter.modality).calibration(1, 4)[0]
    scores, _ = trajectory_importance(UnitGates(adapter), batch, 64, 1.0, 1.0, 0)
    heads = torch.cat(scores[HEADS])
    neurons = torch.cat(scores[NEURONS])
    # the lowest, by far (its score is float rounding: the masked copy runs in a larger batch)
    assert int(heads.argmin()) == 4 + 2 and float(heads.min()) < 0.1 * float(heads.sort().values[1])
    assert int(neurons.argmin()) == 7 and float(neurons.min()) < 0.1 * float(neurons.sort().values[1])


@pytest.mark.parametrize("family", ["bert", "hubert", "wavlm"])
def test_mask_tuning_with_nothing_removed_changes_nothing(family):
    model = classifier(family)
    context = tiny_context(ModelAdapter(model).modality)
    variant = COMPRESSORS.get("budget_pruning")(model, 0.0, {"mask_tuning": True, "importance": "magnitude"},
                                                context)
    step = variant.manifest[0]
    assert step["heads_after"] == [4, 4] and step["neurons_after"] == [64, 64]
    assert [r["status"] for r in step["mask_tuning"]] == ["tuned"] * 4
    for record in step["mask_tuning"]:
        assert record["scale_min"] == pytest.approx(1.0, abs=1e-4) == record["scale_max"]
    inputs = inputs_of(model)
    assert torch.allclose(logits(variant.model, inputs), logits(model, inputs), atol=1e-5)


@pytest.mark.parametrize("family", ["bert", "hubert", "wavlm"])
def test_tuned_gates_fold_into_the_projections_exactly(family):
    model = classifier(family)
    adapter = ModelAdapter(model)
    batches = tiny_context(adapter.modality).calibration(2, 4)
    gates = UnitGates(adapter)
    kept = {HEADS: [[0, 2], [1, 2, 3]], NEURONS: [list(range(0, 64, 2)), list(range(40))]}
    records = tune_masks(gates, kept, batches)
    assert all(r["status"] == "tuned" and r["tuned_residual"] <= r["plain_residual"] for r in records)
    inputs = inputs_of(model)
    with torch.no_grad(), gates:
        gated = model(**inputs).logits
    remove_units(gates, kept, fold_gates=True)
    assert [heads_in_layer(adapter, i) for i in range(2)] == [2, 3]
    assert torch.allclose(logits(model, inputs), gated, atol=1e-5)


@pytest.mark.parametrize("family,importance", [("bert", "trajectory"), ("hubert", "trajectory"),
                                               ("wavlm", "fisher"), ("distilbert", "magnitude"),
                                               ("data2vec-audio", "fisher"), ("roberta", "trajectory")])
@pytest.mark.parametrize("amount", [0.2, 0.5])
def test_the_budget_is_met_within_one_units_cost(family, importance, amount):
    model = classifier(family)
    adapter = ModelAdapter(model)
    variant = COMPRESSORS.get("budget_pruning")(model, amount, {"importance": importance, "batches": 2,
                                                                "batch_size": 4}, tiny_context(adapter.modality))
    step = variant.manifest[0]
    macs = step["encoder_macs"]
    largest_unit = max(step["unit_macs"][HEADS] + step["unit_macs"][NEURONS])
    assert macs["after"] <= macs["target"] < macs["after"] + largest_unit
    assert macs["after"] == step["split"]["kept_cost"]  # the counter agrees with the linear cost model
    spec = InputSpec(adapter.modality, SIZE[adapter.modality])
    counted = count_macs(variant.model, ModelAdapter(variant.model).build_inputs(spec),
                         ModelAdapter(variant.model).component_of)
    assert encoder_macs(counted) == macs["after"] and counted.total == step["model_macs"]["after"]
    assert step["macs_at"] == spec.describe()
    assert sum(step["heads_after"]) == step["split"]["heads_kept"]
    assert sum(step["neurons_after"]) == step["split"]["neurons_kept"]
    assert [heads_in_layer(ModelAdapter(variant.model), i) for i in range(2)] == step["heads_after"]
    assert [heads_in_layer(adapter, i) for i in range(2)] == [4, 4]  # the input model is untouched
    with torch.no_grad():
        variant.model(**inputs_of(variant.model))


def test_fisher_is_the_squared_mask_gradient_summed_over_minibatches():
    model = classifier("bert")
    context = tiny_context("text")
    variant = COMPRESSORS.get("budget_pruning")(model, 0.3, {"importance": "fisher", "batches": 3, "batch_size": 4},
                                                context)
    summary = variant.manifest[0]["importance_summary"][HEADS]
    adapter = ModelAdapter(copy.deepcopy(model))
    size = head_dim(adapter)
    expected = torch.zeros(2, 4)
    for batch in context.calibration(3, 4):
        gates = [torch.ones(4, requires_grad=True) for _ in range(2)]
        hooks = [adapter.attention_projections(i)["output"].register_forward_pre_hook(
            lambda m, a, g=g: (a[0] * g.repeat_interleave(size),)) for i, g in enumerate(gates)]
        loss = adapter.model(**batch.inputs, labels=batch.labels).loss
        grads = torch.autograd.grad(loss, gates)
        for hook in hooks:
            hook.remove()
        expected += torch.stack(grads).pow(2)
    assert summary["max"] == pytest.approx(float(expected.max()), rel=1e-4)
    assert summary["per_layer_mean"] == pytest.approx(expected.mean(1).tolist(), rel=1e-4)


def test_bad_input_is_one_clear_error():
    model = build_tiny("bert")  # no classifier head
    context = tiny_context("text")
    prune = COMPRESSORS.get("budget_pruning")
    with pytest.raises(InvalidInputError, match="pass --task"):
        prune(model, 0.3, {})
    with pytest.raises(InvalidInputError, match="fisher needs the task loss"):
        prune(model, 0.3, {"importance": "fisher"}, context)
    with pytest.raises(InvalidInputError, match="rearrange: true needs the task loss"):
        prune(model, 0.3, {"rearrange": True}, context)
    with pytest.raises(InvalidInputError, match="must be one of"):
        prune(model, 0.3, {"importance": "optin"}, context)
    with pytest.raises(InvalidInputError, match="tokens must be >= 1"):
        prune(model, 0.3, {"tokens": 0}, context)
    with pytest.raises(InvalidInputError, match="cannot keep min_heads_per_layer"):
        prune(model, 0.9, {"min_heads_per_layer": 4, "importance": "magnitude"}, context)


def prunable_macs(model, seconds: float = SIZE["speech"]) -> int:
    """MACs of the feature encoder, attention and FFN blocks: what ``scope: all`` budgets."""
    adapter = ModelAdapter(model)
    counted = count_macs(model, adapter.build_inputs(InputSpec("speech", seconds), "meta"), adapter.component_of)
    return sum(counted.by_component.get(c, 0) for c in ("feature_encoder", "attention", "ffn"))


@pytest.mark.parametrize("family,importance,amount", [("hubert", "fisher", 0.8), ("wavlm", "fisher", 0.3),
                                                      ("data2vec-audio", "magnitude", 0.5),
                                                      ("hubert-stable", "fisher", 0.8)])
def test_scope_all_budgets_channels_heads_and_neurons_over_the_whole_model(family, importance, amount, tmp_path):
    """The kept MACs of the convolutions, attention and FFN blocks meet the budget within one unit's cost, as
    the counter counts the variant, before and after save and reload; the input is intact. (The tiny models'
    convolutions are 30 % of those MACs: at 0.8 they must lose channels; at 0.3 heads and neurons may pay.)"""
    model = classifier(family)
    dense_prunable, dense_channels = prunable_macs(model), list(model.config.conv_dim)
    variant = COMPRESSORS.get("budget_pruning")(model, amount, {"importance": importance, "scope": "all",
                                                                "batches": 2, "batch_size": 4},
                                                tiny_context("speech"))
    step = variant.manifest[0]
    macs = step["prunable_macs"]
    assert macs["before"] == dense_prunable and macs["target"] == round((1 - amount) * dense_prunable)
    largest_unit = max(step["unit_macs"][HEADS] + step["unit_macs"][NEURONS])
    assert macs["after"] <= macs["target"] < macs["after"] + largest_unit
    assert prunable_macs(variant.model) == macs["after"] == step["split"]["kept_cost"]
    assert step["channels_before"] == dense_channels and list(variant.model.config.conv_dim) == step["channels_after"]
    assert min(step["channels_after"]) >= 1
    if macs["target"] < step["conv_macs"]["before"]:  # the convolutions alone cost more than the budget: they lose
        assert sum(step["channels_after"]) < sum(dense_channels) and step["conv_macs"]["after"] < macs["target"]
    assert [len(r) for r in step["removed_channels"]] == [a - b for a, b in zip(dense_channels,
                                                                                 step["channels_after"], strict=True)]
    assert step["removed"] == round(1 - macs["after"] / macs["before"], 4)
    if importance == "magnitude":  # every kind loses about the amount of its MACs
        conv = step["conv_macs"]
        assert abs(1 - conv["after"] / conv["before"] - amount) < 0.1
    assert list(model.config.conv_dim) == dense_channels and prunable_macs(model) == dense_prunable  # untouched
    save_variant(variant, tmp_path / "v", {"model": family})
    reloaded = load_model(str(tmp_path / "v")).model
    assert prunable_macs(reloaded) == macs["after"]
    inputs = inputs_of(variant.model)
    assert torch.allclose(logits(variant.model, inputs), logits(reloaded, inputs), atol=1e-5)


def test_the_whole_model_search_keeps_channels_that_score_high_and_drops_those_that_score_nothing():
    """The same heads and neurons, the same budget: channels scored far above every head and neuron are all
    kept (heads and neurons pay for the budget), channels scored zero lose as many as the budget allows."""
    from compbench.compressors.budget_pruning import split_whole_budget

    model = classifier("hubert")
    adapter = ModelAdapter(model)
    spec = InputSpec("speech", SIZE["speech"])
    costs = unit_costs(model, spec)
    scores = {HEADS: [torch.rand(4) for _ in range(2)], NEURONS: [torch.rand(64) for _ in range(2)]}
    widths = list(model.config.conv_dim)
    conv = costs.macs.by_component["feature_encoder"]
    budget = 0.6 * (encoder_macs(costs.macs) + conv)
    minimum = {HEADS: 0, NEURONS: 0}
    _, kept_all, split = split_whole_budget(scores, [torch.full((w,), 1e6) for w in widths], costs, adapter.config,
                                            spec.samples, budget, minimum)
    assert kept_all == widths and split["conv_kept_cost"] == conv and split["kept_cost"] <= budget
    _, kept_few, split = split_whole_budget(scores, [torch.zeros(w) for w in widths], costs, adapter.config,
                                            spec.samples, budget, minimum)
    assert kept_few == [1, 1, 1] and split["kept_cost"] <= budget  # one channel each: the least the search keeps
    assert split["channel_fractions_tried"] > 2


def test_scope_all_is_refused_where_it_cannot_apply():
    prune = COMPRESSORS.get("budget_pruning")
    with pytest.raises(InvalidInputError, match="scope: all adds a speech model's convolution channels.*bert is a "
                                                "text model"):
        prune(classifier("bert"), 0.3, {"scope": "all", "importance": "fisher"}, tiny_context("text"))
    with pytest.raises(InvalidInputError, match="the trajectory scores heads and neurons only"):
        prune(classifier("hubert"), 0.3, {"scope": "all"}, tiny_context("speech"))
    with pytest.raises(InvalidInputError, match="must be one of"):
        prune(classifier("hubert"), 0.3, {"scope": "everything"}, tiny_context("speech"))


@pytest.mark.parametrize("family", ["hubert", "wavlm", "data2vec-audio", "hubert-stable", "wav2vec2"])
def test_the_model_cost_at_any_units_kept_is_the_counters_count_of_the_model_with_only_those(family):
    """Random heads, neurons and channels kept (a layer may keep no heads or no neurons): the cost model's
    MACs equal the counter's count of the model with the others removed, and at fractional counts it is
    differentiable."""
    from compbench.surgery.conv_channels import keep_conv_channels

    model = build_tiny(family)
    spec = InputSpec("speech", 0.137)
    costs = model_costs(model, spec)
    generator = torch.Generator().manual_seed(3)
    for _ in range(3):
        heads = [int(torch.randint(0, 5, (), generator=generator)) for _ in range(2)]
        neurons = [int(torch.randint(0, 65, (), generator=generator)) for _ in range(2)]
        channels = [int(torch.randint(1, 17, (), generator=generator)) for _ in range(3)]
        smaller = copy.deepcopy(model)
        adapter = ModelAdapter(smaller)
        for layer in range(2):
            keep_heads(adapter, layer, range(heads[layer]))
            keep_neurons(adapter, layer, range(neurons[layer]))
        for layer, kept in enumerate(channels):
            keep_conv_channels(adapter, layer, range(kept))
        counted = count_macs(smaller, adapter.build_inputs(spec, "meta")).total
        assert costs.macs(heads, neurons, channels) == counted
    assert costs.macs([4, 4], [64, 64], [16, 16, 16]) == count_macs(model, ModelAdapter(model).build_inputs(
        spec, "meta")).total
    expected = torch.tensor([8.5, 3.25, 12.0], requires_grad=True)
    costs.macs([expected[1], 4], [expected[0], 64], [16, expected[2], 16]).backward()
    assert expected.grad[0] == costs.units.neurons[0] and expected.grad[1] == costs.units.heads[0]
    assert expected.grad[2] > 0
