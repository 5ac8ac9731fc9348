"""Data-driven compression: the context reaches compressors, task-loss importance, distillation."""

import copy
import dataclasses

import pytest
import torch
from tiny_data import LABELS, tiny_context
from tiny_models import TINY_CONFIGS, build_tiny
from transformers import BertForSequenceClassification, HubertForSequenceClassification

from compbench.compression.context import task_loss
from compbench.compression.pipeline import check_task_given
from compbench.compressors import COMPRESSORS, Step, apply_pipeline
from compbench.errors import InvalidInputError
from compbench.importance.gates import HEADS, UnitGates, gate_gradients
from compbench.importance.gradient import IMPORTANCE_OPTIONS, gate_importance
from compbench.models import ModelAdapter, load_model
from compbench.models.variants import save_variant
from compbench.schedule import warmup_then_linear_decay


def classifier(family: str = "bert", seed: int = 0):
    torch.manual_seed(seed)
    config = TINY_CONFIGS[family]()
    config.num_labels = len(LABELS)
    config.id2label = dict(enumerate(LABELS))
    config.label2id = {label: i for i, label in enumerate(LABELS)}
    cls = BertForSequenceClassification if family == "bert" else HubertForSequenceClassification
    return cls(config).eval()


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def importance_options(**changes):
    return {**{name: option.default for name, option in IMPORTANCE_OPTIONS.items()}, **changes}


# ---- the context reaches compressors ----------------------------------------------------------

def test_sensitivity_with_a_task_uses_the_task_loss_and_records_the_data():
    variant = apply_pipeline(classifier(), [Step("head_pruning", 0.25, {"importance": "sensitivity",
                                                                        "batches": 2, "batch_size": 4})],
                             tiny_context("text", seed=3))
    step = variant.manifest[0]
    assert step["importance_loss"] == "task"
    assert step["data"] == {"task": "tiny-task", "task_version": 1, "split": "train", "examples": 8,
                            "seed": 3, "batches": 2}
    assert step["removed"] == 2


def test_a_model_without_a_head_gets_the_label_free_loss_on_task_inputs():
    variant = COMPRESSORS.get("ffn_pruning")(build_tiny("bert"), 0.25,
                                             {"importance": "sensitivity", "batches": 1, "batch_size": 4},
                                             tiny_context("text"))
    assert variant.manifest[0]["importance_loss"] == "label-free"
    assert variant.manifest[0]["data"]["examples"] == 4


def test_fisher_without_a_task_fails_with_one_clear_error():
    with pytest.raises(InvalidInputError, match=r"head_pruning with importance: fisher needs task data: "
                                                r"pass --task T"):
        apply_pipeline(classifier(), [Step("head_pruning", 0.5, {"importance": "fisher"})])
    with pytest.raises(InvalidInputError, match="distill needs task data: pass --task T"):
        check_task_given([[Step("layer_drop", 0.5, {"which": "top"}), Step("distill", None, {})]], None)
    check_task_given([[Step("head_pruning", 0.5, {"importance": "sensitivity"})]], None)  # label-free: allowed


def test_fisher_needs_a_head_for_the_task():
    with pytest.raises(InvalidInputError, match="fisher needs the task loss, so a model fine-tuned on tiny-task"):
        COMPRESSORS.get("head_pruning")(build_tiny("bert"), 0.5, importance_options(importance="fisher"),
                                        tiny_context("text"))


def test_a_failing_data_step_fails_before_any_step_runs(monkeypatch):
    ran = []
    spy = dataclasses.replace(COMPRESSORS.get("layer_drop"), compress=lambda *a: ran.append(a))
    monkeypatch.setitem(COMPRESSORS._entries, "layer_drop", spy)
    with pytest.raises(InvalidInputError, match="distill needs task data"):
        apply_pipeline(classifier(), [Step("layer_drop", 0.5), Step("distill")])
    assert ran == []


# ---- task-loss sensitivity and Fisher against a finite difference ------------------------------

@pytest.mark.parametrize("method", ["sensitivity", "fisher"])
def test_task_loss_importance_equals_a_finite_difference_of_the_task_loss(method):
    """dL/dg for each head of layer 1 from one batch, against (L(1 + e) - L(1 - e)) / 2e (float64)."""
    model = classifier().double()
    adapter = ModelAdapter(model)
    context = tiny_context("text")
    batch = context.calibration(1, 8)[0]
    output = lambda layer: adapter.attention_projections(layer)["output"]  # noqa: E731
    scores, seen = gate_importance(adapter, HEADS, importance_options(importance=method, batches=1, batch_size=8),
                                   context)
    assert seen["importance_loss"] == "task"

    def loss(head, scale):
        def hook(module, args):
            x = args[0].clone()
            x[..., head * 8:(head + 1) * 8] *= scale
            return (x,)
        handle = output(1).register_forward_pre_hook(hook)
        with torch.no_grad():
            value = task_loss(model, batch)
        handle.remove()
        return float(value)

    eps = 1e-5
    for head in range(4):
        gradient = (loss(head, 1 + eps) - loss(head, 1 - eps)) / (2 * eps)
        expected = gradient ** 2 if method == "fisher" else abs(gradient)
        assert float(scores[1][head]) == pytest.approx(expected, rel=1e-5, abs=1e-10)


def test_fisher_sums_and_sensitivity_averages_over_minibatches():
    model = classifier().double()
    adapter = ModelAdapter(model)
    context = tiny_context("text")
    batches = context.calibration(2, 8)
    per_batch = gate_gradients(UnitGates(adapter, (HEADS,)), batches, lambda b: task_loss(model, b))[HEADS]
    fisher, _ = gate_importance(adapter, HEADS, importance_options(importance="fisher", batches=2, batch_size=8),
                                context)
    sensitivity, _ = gate_importance(adapter, HEADS,
                                     importance_options(importance="sensitivity", batches=2, batch_size=8), context)
    for layer in range(2):
        first, second = per_batch[layer][0], per_batch[layer][1]
        assert not torch.allclose(first, second)
        assert torch.allclose(fisher[layer], first ** 2 + second ** 2)
        assert torch.allclose(sensitivity[layer], (first.abs() + second.abs()) / 2)


# ---- distillation -------------------------------------------------------------------------------

def test_distill_lowers_its_loss_and_never_changes_the_teacher():
    teacher = classifier()
    before = state(teacher)
    steps = [Step("layer_drop", 0.5, {"which": "alternate"}),
             Step("distill", None, {"steps": 30, "batch_size": 8, "lr": 1e-3, "warmup": 0.0})]
    variant = apply_pipeline(teacher, steps, tiny_context("text", examples=64))
    distilled = variant.manifest[1]
    assert distilled["loss_weights"] == {"hidden": 1.0, "kl": 1.0, "ce": 1.0}
    assert distilled["final_losses"]["total"] < distilled["first_losses"]["total"]
    assert distilled["steps"] == 30 and distilled["data"]["examples"] == 30 * 8
    assert distilled["targets"] == [{"student_layer": 1, "teacher_layer": 2}]
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    assert not teacher.training and all(p.grad is None for p in teacher.parameters())
    assert not any("heads" in name for name, _ in variant.model.named_parameters())  # no training-only parts
    assert type(variant.model) is BertForSequenceClassification and variant.model.config.num_hidden_layers == 1


def test_a_distilled_student_round_trips_through_save_and_load(tmp_path):
    teacher = classifier()
    variant = apply_pipeline(teacher, [Step("head_pruning", 0.5), Step("distill", None, {"steps": 3, "batch_size": 4})],
                             tiny_context("text"))
    save_variant(variant, tmp_path / "v", {"model": "tiny"})
    loaded = load_model(str(tmp_path / "v"))
    ids = {"input_ids": torch.arange(3, 15).unsqueeze(0)}
    with torch.no_grad():
        assert torch.equal(loaded.model(**ids).logits, variant.model(**ids).logits)
    assert loaded.compression[1]["name"] == "distill"


def test_distilhubert_recipe_keeps_the_first_layers_without_a_head_and_learns_from_audio(tmp_path):
    config = TINY_CONFIGS["hubert"]()
    config.num_hidden_layers = 4
    torch.manual_seed(0)
    teacher = HubertForSequenceClassification(config).eval()
    before = state(teacher)
    variant = apply_pipeline(teacher, [Step("distill", None, {"recipe": "distilhubert", "student_layers": 2,
                                                              "steps": 20, "batch_size": 4, "lr": 1e-3})],
                             tiny_context("speech", examples=16))
    step = variant.manifest[0]
    assert step["loss_weights"] == {"hidden": 1.0, "kl": 0.0, "ce": 0.0}
    assert [t["teacher_layer"] for t in step["targets"]] == [1, 3, 4]  # round(4/3), round(8/3), 4
    assert {t["student_layer"] for t in step["targets"]} == {2}
    assert step["dropped_layers"] == [2, 3] and step["removed"] == 2 and step["total"] == 4
    assert type(variant.model).__name__ == "HubertModel" and len(ModelAdapter(variant.model).layers()) == 2
    assert step["final_losses"]["hidden"] < step["first_losses"]["hidden"]
    assert [t["teacher_layer"] for t in step["dev_fidelity"]["targets"]] == [1, 3, 4]
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    save_variant(variant, tmp_path / "student", {"model": "tiny-hubert"})
    loaded = load_model(str(tmp_path / "student"))
    waves = {"input_values": torch.randn(1, 2000, generator=torch.Generator().manual_seed(1))}
    with torch.no_grad():
        assert torch.equal(loaded.model(**waves).last_hidden_state, variant.model(**waves).last_hidden_state)
    # the student is the teacher's first layers, trained: same shapes, new values
    student_layer = variant.model.encoder.layers[0].attention.q_proj.weight
    assert student_layer.shape == teacher.hubert.encoder.layers[0].attention.q_proj.weight.shape
    assert variant.model.config.apply_spec_augment == teacher.config.apply_spec_augment


def test_distill_options_are_checked():
    with pytest.raises(InvalidInputError, match="recipe distilhubert is for speech models"):
        apply_pipeline(classifier(), [Step("distill", None, {"recipe": "distilhubert"})], tiny_context("text"))
    with pytest.raises(InvalidInputError, match="kl needs the student and the teacher"):
        apply_pipeline(build_tiny("bert"), [Step("distill", None, {"kl": 1.0, "steps": 1})], tiny_context("text"))
    with pytest.raises(InvalidInputError, match="distill takes no amount"):
        apply_pipeline(classifier(), [Step("distill", 0.5)], tiny_context("text"))
    with pytest.raises(InvalidInputError, match="put int8_dynamic, bf16 or fp16 after distill"):
        apply_pipeline(classifier(), [Step("bf16"), Step("distill")], tiny_context("text"))
    model = copy.deepcopy(classifier())
    with pytest.raises(InvalidInputError, match="every loss weight is 0"):
        apply_pipeline(model, [Step("distill", None, {"hidden": 0.0, "kl": 0.0, "ce": 0.0})], tiny_context("text"))


def test_fine_tuning_and_distillation_warm_up_then_decay_linearly():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = warmup_then_linear_decay(optimizer, 0.25, 8)  # 2 warm-up steps, then 6 down to 0
    rates = []
    for _ in range(8):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates == pytest.approx([0.5, 1.0, 1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])
    assert optimizer.param_groups[0]["lr"] == 0.0
