"""accuracy_driven (AxFormer reconstruction) and hard attention on tiny configs."""

import dataclasses

import pytest
import torch
from test_budget_pruning import classifier, inputs_of
from tiny_data import tiny_context
from tiny_models import build_tiny

from compbench.compression.context import task_loss
from compbench.compressors import COMPRESSORS
from compbench.compressors.accuracy_driven import LOSS_BATCH_SIZE, dev_loss
from compbench.counting.macs import count_macs
from compbench.errors import InvalidInputError
from compbench.models import InputSpec, ModelAdapter, load_model
from compbench.models.variants import save_variant
from compbench.surgery.hard_attention import set_hard_attention
from compbench.surgery.units import attention_module, head_dim

NEEDED_NEURON, NEEDED_HEAD = 123.0, 77.0  # marks on the units the fake task needs


def mark_needed_units(model):
    """Layer 1's FFN neuron 0 and head 3 carry marks in their biases; a copy keeps them only while
    those units are in the model."""
    adapter = ModelAdapter(model)
    size = head_dim(adapter)
    with torch.no_grad():
        adapter.ffn(1)[0].bias[0] = NEEDED_NEURON
        adapter.attention_projections(1)["query"].bias[3 * size:4 * size] = NEEDED_HEAD
    return model


def marked_metric(model) -> float:
    """A dev metric that is 1 with both marked units present, 0.5 with one, 0 with none."""
    biases = [m.bias for m in model.modules() if isinstance(m, torch.nn.Linear) and m.bias is not None]
    return 0.5 * any(bool((b == NEEDED_NEURON).any()) for b in biases) + \
        0.5 * any(bool((b == NEEDED_HEAD).any()) for b in biases)


def context_with(model, evaluate):
    return dataclasses.replace(tiny_context(ModelAdapter(model).modality), evaluate=evaluate)


@pytest.mark.parametrize("family", ["bert", "hubert", "distilbert"])
def test_the_search_removes_what_the_task_does_not_need_coarse_to_fine(family):
    model = mark_needed_units(classifier(family))
    evaluated = []

    def evaluate(candidate):
        evaluated.append(candidate)
        return marked_metric(candidate)

    variant = COMPRESSORS.get("accuracy_driven")(model, None, {"hard_attention": True, "top_k": 2, "loss_rise": None},
                                                 context_with(model, evaluate))
    step = variant.manifest[0]
    tried = [(c["stage"], c["layer"], c.get("block") or c.get("head"), c["accepted"]) for c in step["candidates"]]
    assert tried == [
        ("layer", 1, None, False), ("layer", 0, None, True),  # the last layer first
        ("block", 1, "ffn", False), ("block", 1, "attention", False),
        ("head", 1, 0, True), ("head", 1, 1, True), ("head", 1, 2, True),  # head 3 stays: it is the last
        ("hard_attention", 1, None, True),
    ]
    assert step["layers_kept"] == [1] and step["heads_kept"] == [[3]] and step["hard_attention_layers"] == [1]
    assert step["heads_after"] == [1] and step["neurons_after"] == [64]
    assert step["dev_dense"] == 1.0 and step["dev_final"] == 1.0 and step["evaluations"] == len(tried)
    assert step["epsilon"] == 0.0 and step["order"][0].startswith("layers")
    assert len(evaluated) == 1 + len(tried)  # the unpruned model, then each candidate
    assert marked_metric(variant.model) == 1.0 and marked_metric(model) == 1.0  # the input is untouched
    inputs = inputs_of(model)
    spec_inputs = {k: v for k, v in inputs.items()}
    adapter, pruned = ModelAdapter(model), ModelAdapter(variant.model)
    before, after = count_macs(model, spec_inputs, adapter.component_of), \
        count_macs(variant.model, spec_inputs, pruned.component_of)
    assert after.total < before.total and after.by_component["attention"] < before.by_component["attention"] / 4


def test_epsilon_and_the_evaluation_budget():
    model = mark_needed_units(classifier("bert"))
    loose = COMPRESSORS.get("accuracy_driven")(model, None, {"epsilon": 0.5, "loss_rise": None},
                                               context_with(model, marked_metric)).manifest[0]
    assert loose["dev_bound"] == 0.5 and loose["dev_final"] == 0.5
    # layer 1 holds both marks (0 < 0.5: kept); its FFN (one mark, 0.5) may go; its attention may not
    assert [(c["stage"], c.get("block"), c["accepted"]) for c in loose["candidates"][:4]] == [
        ("layer", None, False), ("layer", None, True), ("block", "ffn", True), ("block", "attention", False)]
    capped = COMPRESSORS.get("accuracy_driven")(model, None, {"max_evaluations": 3, "loss_rise": None},
                                                context_with(model, marked_metric)).manifest[0]
    assert capped["evaluations"] == 3 and capped["stopped_at_max_evaluations"]


def test_a_removed_block_keeps_only_its_output_bias_and_its_macs_fall_exactly():
    model = classifier("bert")
    # every candidate is accepted: the search empties the model down to one layer with no blocks
    variant = COMPRESSORS.get("accuracy_driven")(model, None, {"loss_rise": None},
                                                 context_with(model, lambda m: 1.0))
    step = variant.manifest[0]
    assert step["layers_kept"] == [0] and step["heads_after"] == [0] and step["neurons_after"] == [0]
    inputs = inputs_of(model)
    counted = count_macs(variant.model, inputs, ModelAdapter(variant.model).component_of)
    assert counted.by_component.get("attention", 0) == 0 and counted.by_component.get("ffn", 0) == 0


def fitted_to_dev(model, context, steps: int = 30):
    """The classifier after a few Adam steps on the tiny task's dev batches: a low dev loss that
    most removals raise."""
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        for batch in context.data.batches("dev", LOSS_BATCH_SIZE, context.seed):
            optimizer.zero_grad()
            task_loss(model, batch).backward()
            optimizer.step()
    return model.eval()


def test_the_dev_loss_rule_rejects_what_the_metric_alone_would_keep():
    """With a dev metric that never falls, only the dev loss of the task head decides: every
    candidate kept removed has a dev loss at or below the unpruned model's, every one refused above."""
    model = classifier("bert")
    context = context_with(model, lambda m: 1.0)
    model = fitted_to_dev(model, context)
    dev = list(context.data.batches("dev", LOSS_BATCH_SIZE, context.seed))
    variant = COMPRESSORS.get("accuracy_driven")(model, None, {}, context)
    step = variant.manifest[0]
    assert step["loss_rise"] == 0.0 and step["dev_loss_dense"] == pytest.approx(dev_loss(model, dev))
    assert step["dev_loss_ceiling"] == step["dev_loss_dense"]
    decided = [(c["dev_loss"] <= step["dev_loss_ceiling"], c["accepted"]) for c in step["candidates"]]
    assert all(below == accepted for below, accepted in decided)
    assert not decided[0][1] and not decided[1][1]  # neither layer may go: the fitted loss rises
    assert any(accepted for _, accepted in decided)  # some block's removal does not raise it
    assert dev_loss(variant.model, dev) <= step["dev_loss_dense"]
    loose = COMPRESSORS.get("accuracy_driven")(model, None, {"loss_rise": 100.0}, context).manifest[0]
    assert all(c["accepted"] for c in loose["candidates"]) and loose["layers_kept"] == [0]


def test_the_dev_loss_rule_needs_the_task_head():
    model = build_tiny("bert")  # no classification head
    with pytest.raises(InvalidInputError, match="loss_rise: null"):
        COMPRESSORS.get("accuracy_driven")(model, None, {}, context_with(model, lambda m: 1.0))
    with pytest.raises(InvalidInputError, match="loss_rise"):
        COMPRESSORS.get("accuracy_driven")(model, None, {"loss_rise": -0.1}, context_with(model, lambda m: 1.0))
    with pytest.raises(InvalidInputError, match="must be float or null"):
        COMPRESSORS.get("accuracy_driven")(model, None, {"loss_rise": "x"}, context_with(model, lambda m: 1.0))


def test_it_needs_a_task_and_hard_attention_refuses_wavlm():
    model = classifier("wavlm")
    with pytest.raises(InvalidInputError, match="pass --task"):
        COMPRESSORS.get("accuracy_driven")(model, None, {})
    with pytest.raises(InvalidInputError, match="not available for wavlm"):
        COMPRESSORS.get("accuracy_driven")(model, None, {"hard_attention": True},
                                           context_with(model, lambda m: 1.0))
    with pytest.raises(InvalidInputError, match="takes no amount"):
        COMPRESSORS.get("accuracy_driven")(model, 0.5, {})


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "hubert", "wav2vec2", "data2vec-audio"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_hard_attention_with_every_key_changes_nothing_and_counts_k_values_per_query(family, attn, tmp_path):
    model = build_tiny(family, attn)
    adapter = ModelAdapter(model)
    spec = InputSpec(adapter.modality, 0.1 if adapter.modality == "speech" else 12, batch=2)
    inputs = adapter.build_inputs(spec)
    masked = dict(inputs)
    if adapter.modality == "text":  # padding: the mask reaches the top-k function in every implementation
        masked["attention_mask"] = torch.ones_like(inputs["input_ids"])
        masked["attention_mask"][1, 9:] = 0
    with torch.no_grad():
        dense = model(**masked).last_hidden_state
    length = dense.shape[1]
    set_hard_attention(model, attention_module(adapter, 0), length)
    with torch.no_grad():
        assert torch.allclose(model(**masked).last_hidden_state, dense, atol=1e-5)
    before = count_macs(model, inputs, adapter.component_of)
    set_hard_attention(model, attention_module(adapter, 0), 2)
    with torch.no_grad():
        hard = model(**masked).last_hidden_state
    assert not torch.allclose(hard, dense, atol=1e-4)
    after = count_macs(model, inputs, adapter.component_of)
    size = head_dim(adapter)
    assert after.total == before.total and before.effective == before.total  # dense kernels: every score
    assert after.total - after.effective == 2 * 4 * length * (length - 2) * size  # batch, heads, queries, keys left
    # saved and reloaded: still hard in layer 0 only, same outputs and counts
    variant = COMPRESSORS.get("head_pruning")(model, 0.0)
    save_variant(variant, tmp_path / "v", {"model": "tiny"})
    loaded = load_model(str(tmp_path / "v"), attn_implementation=attn).model
    with torch.no_grad():
        assert torch.allclose(loaded(**masked).last_hidden_state, hard, atol=1e-6)
    assert count_macs(loaded, inputs).effective == after.effective
    set_hard_attention(model, attention_module(adapter, 0), None)
    with torch.no_grad():
        assert torch.allclose(model(**masked).last_hidden_state, dense, atol=1e-5)
