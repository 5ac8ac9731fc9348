"""early_exit on tiny configs: exact cost of an example that leaves after layer k, threshold 0 changes nothing."""

import copy

import pytest
import torch
from test_budget_pruning import inputs_of
from tiny_data import tiny_context
from tiny_models import TINY_CONFIGS
from transformers import AutoModelForAudioClassification, AutoModelForSequenceClassification

from compbench.compression.compressor import Variant
from compbench.compression.context import NO_CONTEXT, task_loss
from compbench.compressors import COMPRESSORS
from compbench.compressors.early_exit import add_early_exit
from compbench.counting.macs import count_macs
from compbench.errors import InvalidInputError
from compbench.importance.gates import HEADS, UnitGates, gate_gradients
from compbench.models import ModelAdapter, load_model
from compbench.models.variants import save_variant
from compbench.surgery.exits import EXITS_ATTRIBUTE, EarlyExitModel, row_entropy, with_exits
from compbench.surgery.layers import keep_layers

TEXT = ("bert", "distilbert", "roberta")
FAMILIES = [*TEXT, "hubert", "wav2vec2", "wavlm"]
OPTIONS = {"threshold": 0.0, "epochs": 2, "batch_size": 8, "examples": 32, "learning_rate": 1e-3}


def three_layer_classifier(family: str):
    """A tiny two-label classifier (the tiny task's labels) with three layers, random weights."""
    config = TINY_CONFIGS[family]()
    for name in ("num_hidden_layers", "n_layers"):
        if hasattr(config, name):
            setattr(config, name, 3)
    config.num_labels, config.id2label, config.label2id = 2, {0: "no", 1: "yes"}, {"no": 0, "yes": 1}
    torch.manual_seed(0)
    auto = AutoModelForSequenceClassification if family in TEXT else AutoModelForAudioClassification
    try:
        return auto.from_config(config, attn_implementation="sdpa").eval()
    except ValueError:  # WavLM has no SDPA
        return auto.from_config(config, attn_implementation="eager").eval()


def early_exit_variant(model, **options):
    context = tiny_context(ModelAdapter(model).modality)
    return add_early_exit(model, None, {**OPTIONS, **options}, context)


def force_exit_at(variant, layer: int, threshold: float = 0.5):
    """Exits before ``layer`` predict uniformly (entropy ln 2 > threshold), the exit after ``layer``
    is certain (entropy ~0); the threshold is between."""
    exits = getattr(variant, EXITS_ATTRIBUTE)
    with torch.no_grad():
        for index, head in enumerate(exits):
            head.classifier.weight.zero_()
            head.classifier.bias.copy_(torch.tensor([30.0, 0.0]) if index + 1 == layer else torch.zeros(2))
    variant.compbench_exit_threshold = threshold
    return variant


def expected_macs(model, inputs, layers_run: int, exits_run: int, exits) -> int:
    """Independently: the base model cut to ``layers_run`` layers (no pooler), plus ``exits_run`` exit heads
    on that layer's output; the model's own head when every layer runs."""
    if layers_run == len(ModelAdapter(model).layers()):
        whole = count_macs(model, inputs).total
    else:
        cut = copy.deepcopy(model)
        keep_layers(ModelAdapter(cut), list(range(layers_run)))
        base = cut.base_model
        if getattr(base, "pooler", None) is not None:
            base.pooler = None
        whole = count_macs(base, inputs).total
    hidden = model.base_model(**inputs, output_hidden_states=True).hidden_states[1]
    one_exit = count_macs(exits[0], {"hidden_states": hidden}).total
    return whole + exits_run * one_exit


@pytest.mark.parametrize("family", FAMILIES)
def test_an_example_leaving_after_layer_k_costs_the_embeddings_k_layers_and_k_exits(family):
    model = three_layer_classifier(family)
    variant, manifest = early_exit_variant(model)
    assert manifest["exits_after_layers"] == [1, 2] and len(manifest["exit_train_loss"]) == 2
    inputs = inputs_of(model, batch=1)
    exits = getattr(variant, EXITS_ATTRIBUTE)
    for layer in (1, 2):
        force_exit_at(variant, layer)
        assert count_macs(variant, inputs).total == expected_macs(model, inputs, layer, layer, exits)
        assert variant(**inputs).logits.argmax(-1).tolist() == [0] and variant.compbench_exit_layers == [layer]
    variant.compbench_exit_threshold = 0.0  # nothing leaves: the whole model and both exits ran
    assert count_macs(variant, inputs).total == expected_macs(model, inputs, 3, 2, exits)


@pytest.mark.parametrize("family", FAMILIES)
def test_threshold_zero_runs_every_layer_and_equals_the_model(family):
    model = three_layer_classifier(family)
    variant, manifest = early_exit_variant(model)
    inputs = inputs_of(model, batch=3)
    if "attention_mask" in inputs:  # the second example is padded: run alone, without its padding
        inputs["attention_mask"][1, -4:] = 0
    with torch.no_grad():
        expected = model(**inputs).logits
        got = variant(**inputs).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert variant.compbench_exit_layers == [3, 3, 3] and manifest["threshold"] == 0.0
    assert not isinstance(model, EarlyExitModel) and not hasattr(model, EXITS_ATTRIBUTE)  # the input is untouched


def test_exits_are_trained_on_the_task_and_a_high_threshold_leaves_at_the_first():
    model = three_layer_classifier("bert")
    variant, manifest = early_exit_variant(model, epochs=20)
    assert all(loss < 0.69 for loss in manifest["exit_train_loss"])  # below chance (ln 2)
    assert manifest["data"]["split"] == "train" and manifest["data"]["examples"] == 32
    variant.compbench_exit_threshold = 10.0  # above any entropy of two labels: everything leaves at exit 1
    variant(**inputs_of(model, batch=2))
    assert variant.compbench_exit_layers == [1, 1]


def test_entropy_and_bad_input():
    assert row_entropy([0.0, 0.0]) == pytest.approx(0.693147, abs=1e-6)
    for logits in ([1.0, 2.0, 3.0], [-5.0, 100.0, 3.0], [30.0, 0.0]):
        log_p = torch.log_softmax(torch.tensor(logits, dtype=torch.float64), dim=-1)
        assert row_entropy(logits) == pytest.approx(float(-(log_p.exp() * log_p).sum()), rel=1e-9, abs=1e-12)
    model = three_layer_classifier("bert")
    with pytest.raises(InvalidInputError, match="pass --task"):
        add_early_exit(model, None, OPTIONS, NO_CONTEXT)
    headless = copy.deepcopy(model)
    headless.config.id2label = {0: "a", 1: "b"}
    with pytest.raises(InvalidInputError, match="fine-tuned on tiny-task"):
        early_exit_variant(headless)
    with pytest.raises(InvalidInputError, match="threshold must be >= 0"):
        early_exit_variant(model, threshold=-1.0)
    with pytest.raises(InvalidInputError, match="learning_rate must be > 0"):
        early_exit_variant(model, learning_rate=0.0)
    with pytest.raises(InvalidInputError, match="already has exits"):
        early_exit_variant(early_exit_variant(model)[0])
    exits = getattr(early_exit_variant(model)[0], EXITS_ATTRIBUTE)
    again = with_exits(with_exits(copy.deepcopy(model), exits, 0.1), exits, 0.2)
    assert type(again).__mro__[1] is EarlyExitModel and again.compbench_exit_threshold == 0.2


@pytest.mark.parametrize("family", ["bert", "hubert"])
def test_exits_save_and_reload_with_the_variant(family, tmp_path):
    model = three_layer_classifier(family)
    variant, manifest = early_exit_variant(model, threshold=10.0)  # every example leaves at the first exit
    inputs = inputs_of(model, batch=2)
    with torch.no_grad():
        expected = variant(**inputs).logits
    step = {"name": "early_exit", "amount": None, "options": OPTIONS, **manifest}  # as the registry records a step
    save_variant(Variant(variant, [step]), tmp_path / "v", {"model": "tiny"})
    loaded = load_model(str(tmp_path / "v")).model
    assert isinstance(loaded, EarlyExitModel) and loaded.compbench_exit_threshold == 10.0
    saved, reloaded = getattr(variant, EXITS_ATTRIBUTE).state_dict(), getattr(loaded, EXITS_ATTRIBUTE).state_dict()
    assert saved.keys() == reloaded.keys() and all(torch.equal(saved[k], reloaded[k]) for k in saved)
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, expected)
    assert loaded.compbench_exit_layers == [1, 1]
    one = {k: v[:1] for k, v in inputs.items()}
    assert count_macs(loaded, one).total == count_macs(variant, one).total


def test_exits_trained_once_serve_every_threshold_of_the_same_model():
    model = three_layer_classifier("bert")
    context = tiny_context("text")
    first = COMPRESSORS.get("early_exit")(model, None, {**OPTIONS, "epochs": 3, "threshold": 0.1}, context)
    second = COMPRESSORS.get("early_exit")(model, None, {**OPTIONS, "epochs": 3, "threshold": 0.6}, context)
    assert not first.manifest[0]["exits_reused"] and second.manifest[0]["exits_reused"]
    assert first.manifest[0]["exit_train_loss"] == second.manifest[0]["exit_train_loss"]
    for a, b in zip(getattr(first.model, EXITS_ATTRIBUTE).parameters(),
                    getattr(second.model, EXITS_ATTRIBUTE).parameters(), strict=True):
        assert torch.equal(a, b) and a is not b  # each variant owns its copy
    assert (first.model.compbench_exit_threshold, second.model.compbench_exit_threshold) == (0.1, 0.6)
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.classifier.bias.add_(1.0)  # another model: trained anew
    third = COMPRESSORS.get("early_exit")(changed, None, {**OPTIONS, "epochs": 3}, context)
    assert not third.manifest[0]["exits_reused"]
    retrained = COMPRESSORS.get("early_exit")(model, None, {**OPTIONS, "epochs": 4}, context)
    assert not retrained.manifest[0]["exits_reused"]  # other training options: trained anew


def test_gate_gradients_of_an_early_exit_model_are_zero_after_the_exit_and_strict_without_one():
    model = three_layer_classifier("bert")
    variant = force_exit_at(early_exit_variant(model)[0], 1)  # every example leaves after layer 1
    with torch.no_grad():  # ... with logits that still depend on layer 1's output
        getattr(variant, EXITS_ATTRIBUTE)[0].classifier.weight.normal_(0, 0.01)
    batches = tiny_context("text").calibration(2, 4)
    gradients = gate_gradients(UnitGates(ModelAdapter(variant), (HEADS,)), batches,
                               lambda batch: task_loss(variant, batch))[HEADS]
    assert torch.count_nonzero(gradients[0]) > 0  # layer 1 ran
    assert all(torch.count_nonzero(g) == 0 for g in gradients[1:])  # layers 2 and 3 never ran
    dense = gate_gradients(UnitGates(ModelAdapter(model), (HEADS,)), batches, lambda batch: task_loss(model, batch))
    assert all(torch.count_nonzero(g) > 0 for g in dense[HEADS])
    with pytest.raises(RuntimeError, match="not have been used"):  # a static model: every gate must be reached
        gate_gradients(UnitGates(ModelAdapter(model), (HEADS,)), batches,
                       lambda batch: model.bert.embeddings(batch.inputs["input_ids"]).sum())


@pytest.mark.parametrize("family", TEXT)
def test_a_batch_runs_together_and_each_example_leaves_where_it_would_alone(family):
    """Batched: the examples whose exit is confident leave, the rest go on with fewer rows (a padded one too,
    its attention mask sliced alike); an example that goes on gets the logits it gets alone, and the batch
    costs exactly the MACs of each example's rows up to where it left."""
    model = three_layer_classifier(family)
    variant, _ = early_exit_variant(model)
    inputs = inputs_of(model, batch=4)
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    inputs["attention_mask"][2, -3:] = 0  # the third example is padded
    exits = getattr(variant, EXITS_ATTRIBUTE)
    with torch.no_grad():  # exit 1 is uncertain (uniform) unless boosted; exit 2 certain, its logits its input's
        exits[0].classifier.weight.zero_()
        exits[0].classifier.bias.zero_()
        exits[1].classifier.bias.copy_(torch.tensor([30.0, 0.0]))
    first, leave_rows = exits[0].classifier, [0, 3]
    unboosted = first.forward

    def boosted(pooled):  # rows 0 and 3 of the whole batch are certain after layer 1
        logits = unboosted(pooled)
        logits[leave_rows, 0] += 30.0
        return logits

    variant.compbench_exit_threshold, variant.compbench_exit_batched = 0.5, True
    first.forward = boosted
    with torch.no_grad():
        together = variant(**inputs).logits
        counted = count_macs(variant, inputs).total
    assert variant.compbench_exit_layers == [1, 2, 2, 1]
    first.forward = unboosted
    variant.compbench_exit_batched = False
    for row in (1, 2):  # alone (without its padding), it leaves after layer 2 with the same logits
        keep = inputs["attention_mask"][row].bool()
        alone = {k: v[row:row + 1, keep] for k, v in inputs.items()}
        with torch.no_grad():
            torch.testing.assert_close(variant(**alone).logits, together[row:row + 1], rtol=1e-4, atol=1e-4)
        assert variant.compbench_exit_layers == [2]
    unmasked = {k: v for k, v in inputs.items() if k != "attention_mask"}  # a mask's values move no MAC
    leaving = expected_macs(model, {k: v[leave_rows] for k, v in unmasked.items()}, 1, 1, exits)
    going_on = expected_macs(model, {k: v[[1, 2]] for k, v in unmasked.items()}, 2, 2, exits)
    assert counted == leaving + going_on  # layer 1 and exit 1 for four rows; layer 2 and exit 2 for two


def test_a_batch_whose_every_example_leaves_stops_and_threshold_zero_equals_the_model():
    model = three_layer_classifier("bert")
    variant, _ = early_exit_variant(model)
    inputs = inputs_of(model, batch=3)
    variant.compbench_exit_batched = True
    with torch.no_grad():
        expected = model(**inputs).logits
        torch.testing.assert_close(variant(**inputs).logits, expected, rtol=1e-4, atol=1e-5)
        assert variant.compbench_exit_layers == [3, 3, 3]  # threshold 0: nobody leaves, nothing is sliced
        force_exit_at(variant, 1)
        assert variant(**inputs).logits.argmax(-1).tolist() == [0, 0, 0]
    assert variant.compbench_exit_layers == [1, 1, 1]
