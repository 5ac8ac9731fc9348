"""Compressors: exact removal counts, equal outputs where promised, purity, pipelines, save/load."""

import importlib.util
import json
import os

import pytest
import torch
from tiny_models import TINY_CONFIGS, build_tiny
from transformers import AutoModel, HubertForSequenceClassification

from compbench.compression.spec import load_options_file, parse_spec
from compbench.compressors import COMPRESSORS, Step, apply_pipeline
from compbench.counting.macs import count_macs
from compbench.counting.params import count_params
from compbench.counting.weights import count_nonzero, packed_linear_weight
from compbench.errors import InvalidInputError, UnknownNameError
from compbench.models import InputSpec, ModelAdapter, load_model
from compbench.models.variants import MANIFEST_FILE, save_variant
from compbench.surgery.units import head_dim, heads_in_layer

FAMILIES = sorted(TINY_CONFIGS)


def inputs_for(model, size=None):
    adapter = ModelAdapter(model)
    if size is None:
        size = 0.2 if adapter.modality == "speech" else 12
    return adapter.build_inputs(InputSpec(adapter.modality, size, batch=2))


def outputs(model, inputs):
    with torch.no_grad():
        return model.eval()(**inputs).last_hidden_state


def zero_head(model, layer, head):
    adapter = ModelAdapter(model)
    size = head_dim(adapter)
    rows = slice(head * size, (head + 1) * size)
    projections = adapter.attention_projections(layer)
    with torch.no_grad():
        for name in ("query", "key", "value"):
            projections[name].weight[rows] = 0
            projections[name].bias[rows] = 0
        projections["output"].weight[:, rows] = 0


@pytest.mark.parametrize("family", FAMILIES)
def test_pruning_a_zeroed_head_leaves_outputs_unchanged(family):
    model = build_tiny(family)
    zero_head(model, layer=1, head=2)
    inputs = inputs_for(model)
    variant = COMPRESSORS.get("head_pruning")(model, 0.125, {"scope": "global", "normalize": False})  # 1 of 8
    assert variant.manifest[0]["removed_heads"] == [[], [2]]
    assert torch.allclose(outputs(variant.model, inputs), outputs(model, inputs), atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_pruning_zeroed_neurons_leaves_outputs_unchanged(family):
    model = build_tiny(family)
    adapter = ModelAdapter(model)
    ffn_in, ffn_out = adapter.ffn(0)
    with torch.no_grad():  # make 16 of 64 neurons of layer 0 contribute nothing
        ffn_out.weight[:, :16] = 0
    inputs = inputs_for(model)
    # 16 of the 128 neurons in both layers: a global ranking removes exactly the zeroed ones
    variant = COMPRESSORS.get("ffn_pruning")(model, 16 / 128, {"scope": "global"})
    assert variant.manifest[0]["neurons_after"] == [48, 64]
    layer0 = ModelAdapter(variant.model).ffn(0)[1]
    assert torch.equal(layer0.weight, ffn_out.weight[:, 16:])
    assert torch.allclose(outputs(variant.model, inputs), outputs(model, inputs), atol=1e-5)


@pytest.mark.parametrize("family", sorted(TINY_CONFIGS))
def test_full_rank_svd_reproduces_outputs(family):
    model = build_tiny(family)
    inputs = inputs_for(model)
    variant = COMPRESSORS.get("low_rank")(model, 0.0, {"only_if_cheaper": False})
    assert variant.manifest[0]["removed"] == variant.manifest[0]["total"] > 0
    assert torch.allclose(outputs(variant.model, inputs), outputs(model, inputs), atol=1e-4)


def test_low_rank_only_where_cheaper_and_exact_rank():
    model = build_tiny("bert")  # attention 32x32, FFN 64x32
    variant = COMPRESSORS.get("low_rank")(model, 0.75, {})
    ranks = variant.manifest[0]["ranks"]
    assert ranks["encoder.layer.0.attention.self.query"] == 8  # (1 - 0.75) * 32
    assert ranks["encoder.layer.0.intermediate.dense"] == 8
    full = COMPRESSORS.get("low_rank")(model, 0.0, {})
    assert full.manifest[0]["removed"] == 0  # two Linears at full rank cost more MACs


SPECS = [
    [Step("head_pruning", 0.5)], [Step("ffn_pruning", 0.5)], [Step("layer_drop", 0.5)], [Step("conv_pruning", 0.5)],
    [Step("low_rank", 0.5)], [Step("weight_pruning", 0.5)], [Step("weight_pruning", 0.5, {"n": 2, "m": 4})],
    [Step("bf16")], [Step("fp16")], [Step("head_pruning", 0.5), Step("low_rank", 0.6), Step("ffn_pruning", 0.3)],
]
ALL_SPECS = SPECS + [[Step("int8_dynamic")], [Step("head_pruning", 0.5), Step("int8_dynamic")]]


@pytest.mark.parametrize("steps", ALL_SPECS, ids=lambda steps: "+".join(s.name for s in steps))
def test_input_model_is_unchanged(steps):
    model = build_tiny("hubert")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    structure = [(n, type(m).__name__) for n, m in model.named_modules()]
    apply_pipeline(model, steps)
    after = model.state_dict()
    assert set(before) == set(after) and all(torch.equal(before[k], after[k]) for k in before)
    assert [(n, type(m).__name__) for n, m in model.named_modules()] == structure
    assert model.config.num_hidden_layers == 2 and not hasattr(model.config, "compbench_structure")


@pytest.mark.parametrize("steps", SPECS, ids=lambda steps: "+".join(s.name for s in steps))
def test_variant_reloads_from_disk_with_equal_outputs_and_macs(tmp_path, steps):
    model = build_tiny("hubert")
    variant = apply_pipeline(model, steps)
    save_variant(variant, tmp_path / "v", {"model": "tiny"})
    loaded = load_model(str(tmp_path / "v"))
    inputs = ModelAdapter(variant.model).build_inputs(InputSpec("speech", 0.2))
    assert torch.equal(outputs(loaded.model, inputs), outputs(variant.model, inputs))
    assert count_macs(loaded.model, inputs).total == count_macs(variant.model, inputs).total
    assert count_macs(loaded.model, inputs).effective == count_macs(variant.model, inputs).effective
    assert [s["name"] for s in loaded.compression] == [s.name for s in steps]
    assert ModelAdapter(loaded.model).floating_dtype() == ModelAdapter(variant.model).floating_dtype()


def test_pipeline_applies_in_order():
    model = build_tiny("bert")
    variant = apply_pipeline(model, [Step("head_pruning", 0.5, {"scope": "layer"}), Step("low_rank", 0.5)])
    assert [s["name"] for s in variant.manifest] == ["head_pruning", "low_rank"]
    # low_rank saw the pruned query (2 heads x 8 = 16 rows): rank (1 - 0.5) * 16
    assert variant.manifest[1]["ranks"]["encoder.layer.0.attention.self.query"] == 8
    # the other order: factorise the full 32x32 query at rank 8, then head pruning slices its `up` rows
    reverse = apply_pipeline(model, [Step("low_rank", 0.75), Step("head_pruning", 0.5, {"scope": "layer"})])
    assert reverse.manifest[0]["ranks"]["encoder.layer.0.attention.self.query"] == 8
    query = ModelAdapter(reverse.model).attention_projections(0)["query"]
    assert (query.down.weight.shape, query.up.weight.shape) == ((8, 32), (16, 8))
    assert count_macs(variant.model, inputs_for(model)).total != count_macs(reverse.model, inputs_for(model)).total


def test_weight_pruning_counts_are_exact():
    model = build_tiny("bert")
    variant = COMPRESSORS.get("weight_pruning")(model, 0.3, {"scope": "layer"})
    step = variant.manifest[0]
    for name, zeroed in step["zeroed"].items():
        weight = ModelAdapter(variant.model).base.get_submodule(name).weight
        assert zeroed == int(0.3 * weight.numel() + 0.5) == int((weight == 0).sum())
    macs = count_macs(variant.model, inputs_for(model, 10))
    assert macs.total == count_macs(model, inputs_for(model, 10)).total
    assert macs.total - macs.effective == 2 * 10 * step["removed"]  # batch 2, 10 tokens


def test_two_four_pattern():
    variant = COMPRESSORS.get("weight_pruning")(build_tiny("bert"), 0.5, {"n": 2, "m": 4})
    weight = ModelAdapter(variant.model).ffn(0)[0].weight
    assert ((weight.reshape(weight.shape[0], -1, 4) != 0).sum(dim=2) == 2).all()


def test_layer_drop_choices():
    from compbench.compressors.layer_drop import layers_to_drop

    assert layers_to_drop(12, 6, "top") == [6, 7, 8, 9, 10, 11]
    assert layers_to_drop(12, 6, "bottom") == [0, 1, 2, 3, 4, 5]
    assert layers_to_drop(12, 6, "alternate") == [1, 3, 5, 7, 9, 11]
    assert layers_to_drop(12, 3, "alternate") == [7, 9, 11]
    assert layers_to_drop(4, 3, "alternate") == [1, 2, 3]


def test_bf16_records_its_dtype():
    variant = COMPRESSORS.get("bf16")(build_tiny("bert"))
    assert variant.manifest[0]["dtype"] == "bfloat16"
    assert ModelAdapter(variant.model).floating_dtype() == torch.bfloat16


# ---- hubert-base acceptance: exact removals and MACs equal to an independent count -------

def hubert_macs(heads: list[int], inner: list[int], samples: int = 160_000) -> int:
    """MACs of hubert-base with per-layer head counts and FFN sizes, written out from the shapes."""
    frames, hidden, size = 499, 768, 64
    fixed = 24_539_032_576 + frames * 512 * hidden + 500 * hidden * 48 * 128  # CNN, projection, pos conv
    layers = sum(3 * frames * hidden * h * size + frames * h * size * hidden + 2 * frames * frames * h * size
                 + 2 * frames * hidden * i for h, i in zip(heads, inner, strict=True))
    return fixed + layers


@pytest.fixture(scope="module")
def hubert_base():
    return load_model("hubert-base").model


@pytest.mark.parametrize("step,heads,inner,removed", [
    (Step("head_pruning", 0.5), None, [3072] * 12, 72),
    (Step("ffn_pruning", 0.5), [12] * 12, [1536] * 12, 18432),
    (Step("layer_drop", 0.5), [12] * 6, [3072] * 6, 6),
])
def test_hubert_base_acceptance(tmp_path, hubert_base, step, heads, inner, removed):
    variant = apply_pipeline(hubert_base, [step])
    assert variant.manifest[0]["removed"] == removed
    adapter = ModelAdapter(variant.model)
    heads = heads or [heads_in_layer(adapter, i) for i in range(12)]
    assert sum(heads) == (72 if step.name == "head_pruning" else sum(heads)) and min(heads) >= 1
    spec = InputSpec("speech", 10)
    expected = hubert_macs(heads, inner)
    assert count_macs(variant.model, adapter.build_inputs(spec, "meta")).total == expected
    save_variant(variant, tmp_path / "v", {"model": "hubert-base"})
    reloaded = load_model(str(tmp_path / "v")).model
    assert count_macs(reloaded, ModelAdapter(reloaded).build_inputs(spec, "meta")).total == expected


# ---- bad input: one clear error, nothing written ----------------------------------------

@pytest.mark.parametrize("spec,error,message", [
    ("head_prunning=0.5", UnknownNameError, "Did you mean: head_pruning"),
    ("head_pruning=1", InvalidInputError, r"amount must be in \[0, 1\)"),
    ("head_pruning=-0.1", InvalidInputError, r"amount must be in \[0, 1\)"),
    ("head_pruning", InvalidInputError, "needs an amount"),
    ("bf16=0.5", InvalidInputError, "takes no amount"),
    ("head_pruning=abc", InvalidInputError, "is not a number"),
    ("head_pruning=0.5,,", InvalidInputError, "empty step"),
])
def test_bad_specs(spec, error, message):
    with pytest.raises(error, match=message):
        parse_spec(spec)


def test_unknown_and_mistyped_options():
    known = "known options: align, batch_size, batches, importance, normalize, scope"
    with pytest.raises(InvalidInputError, match=f"unknown option.*'sope'.*{known}"):
        parse_spec("head_pruning=0.5", {"head_pruning": {"sope": "layer"}})
    with pytest.raises(InvalidInputError, match="'scope' must be one of global, layer"):
        parse_spec("head_pruning=0.5", {"head_pruning": {"scope": "model"}})
    with pytest.raises(InvalidInputError, match="'rank' must be int"):
        parse_spec("low_rank=0.5", {"low_rank": {"rank": "8"}})


def test_rank_above_the_layer_limit():
    with pytest.raises(InvalidInputError, match="rank 65 is above the limit 32"):
        COMPRESSORS.get("low_rank")(build_tiny("bert"), 0.1, {"rank": 65})


def test_family_limits_are_clear_errors():
    wavlm = build_tiny("wavlm")
    with pytest.raises(InvalidInputError, match="first layer"):
        COMPRESSORS.get("layer_drop")(wavlm, 0.5, {"which": "bottom"})
    with pytest.raises(InvalidInputError, match="set the amount to 0.5"):
        COMPRESSORS.get("weight_pruning")(build_tiny("bert"), 0.3, {"n": 2, "m": 4})


def test_pipeline_and_options_files(tmp_path):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text("- name: head_pruning\n  amount: 0.5\n  options: {scope: layer}\n- name: bf16\n")
    steps = parse_spec(str(pipeline))
    assert [(s.name, s.amount, s.options.get("scope")) for s in steps] == [("head_pruning", 0.5, "layer"),
                                                                          ("bf16", None, None)]
    options = tmp_path / "o.json"
    options.write_text(json.dumps({"low_rank": {"energy": 0.9}}))
    assert parse_spec("low_rank=0.2", load_options_file(str(options)))[0].options["energy"] == 0.9
    bad = tmp_path / "bad.yaml"
    bad.write_text("- name: head_pruning\n  amonut: 0.5\n")
    with pytest.raises(InvalidInputError, match="step 1 must be a mapping"):
        parse_spec(str(bad))


def test_save_refuses_a_non_empty_directory_and_leaves_nothing(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    variant = apply_pipeline(build_tiny("bert"), [Step("layer_drop", 0.5)])
    with pytest.raises(InvalidInputError, match="not empty"):
        save_variant(variant, tmp_path / "taken", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    save_variant(variant, tmp_path / "fresh", {"model": "tiny"})
    assert (tmp_path / "fresh" / MANIFEST_FILE).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "taken"]  # no staging left
    umask = os.umask(0o022)
    try:
        save_variant(variant, tmp_path / "shared", {"model": "tiny"})
    finally:
        os.umask(umask)
    assert (tmp_path / "shared").stat().st_mode & 0o777 == 0o755  # as mkdir makes it, not a private staging folder
    with pytest.raises(InvalidInputError, match="the folder .*missing does not exist"):
        save_variant(variant, tmp_path / "missing" / "v", {})
    assert not (tmp_path / "missing").exists()


def test_reload_through_plain_transformers_for_unstructured_variants(tmp_path):
    variant = apply_pipeline(build_tiny("bert"), [Step("weight_pruning", 0.5), Step("layer_drop", 0.5)])
    save_variant(variant, tmp_path / "v", {})
    plain = AutoModel.from_pretrained(tmp_path / "v")
    assert plain.config.num_hidden_layers == 1
    inputs = inputs_for(variant.model)
    assert torch.equal(outputs(plain, inputs), outputs(variant.model, inputs))


@pytest.mark.parametrize("family", ["hubert", "bert", "distilbert", "wavlm"])
def test_sensitivity_ranks_a_dead_head_last_and_prunes_it(family):
    model = build_tiny(family)
    zero_head(model, layer=0, head=1)
    inputs = inputs_for(model)
    options = {"importance": "sensitivity", "batches": 2, "normalize": False}
    variant = COMPRESSORS.get("head_pruning")(model, 0.125, options)
    assert variant.manifest[0]["removed_heads"] == [[1], []]
    assert torch.allclose(outputs(variant.model, inputs), outputs(model, inputs), atol=1e-5)
    assert not any(p.grad is not None for p in model.parameters())  # no gradients left behind


def test_sensitivity_equals_a_finite_difference_of_the_loss():
    """|dL/dg| for one FFN neuron, against (L(1 + e) - L(1 - e)) / 2e on the same inputs (float64)."""
    from compbench.compression.context import NO_CONTEXT
    from compbench.importance.gates import NEURONS
    from compbench.importance.gradient import IMPORTANCE_OPTIONS, SENSITIVITY_SIZE, gate_importance

    model = build_tiny("bert").double()
    adapter = ModelAdapter(model)
    options = {name: option.default for name, option in IMPORTANCE_OPTIONS.items()}
    scores, seen = gate_importance(adapter, NEURONS, {**options, "importance": "sensitivity", "batches": 1},
                                   NO_CONTEXT)
    assert seen == {"importance_loss": "label-free", "data": {"inputs": "generated", "batches": 1, "seed": 0}}
    inputs = adapter.build_inputs(InputSpec("text", SENSITIVITY_SIZE["text"]), seed=0)

    def loss(neuron, scale):
        def hook(module, args):
            x = args[0].clone()
            x[..., neuron] *= scale
            return (x,)
        handle = adapter.ffn(1)[1].register_forward_pre_hook(hook)
        with torch.no_grad():
            hidden = model(**inputs).last_hidden_state
        handle.remove()
        return 0.5 * hidden.pow(2).sum() / hidden.shape[0]

    eps = 1e-4
    ranked = torch.argsort(scores[1], descending=True).tolist()
    for neuron in ranked[:3] + ranked[-1:]:  # the most sensitive neurons and the least
        numeric = (loss(neuron, 1 + eps) - loss(neuron, 1 - eps)) / (2 * eps)
        assert float(scores[1][neuron]) == pytest.approx(abs(float(numeric)), rel=1e-5, abs=1e-8)


def test_ffn_sensitivity_removes_dead_neurons_first():
    model = build_tiny("hubert")
    _, ffn_out = ModelAdapter(model).ffn(1)
    with torch.no_grad():
        ffn_out.weight[:, 40:] = 0  # 24 dead neurons in layer 1
    variant = COMPRESSORS.get("ffn_pruning")(model, 24 / 128, {"importance": "sensitivity", "scope": "global",
                                                                "batches": 1})
    assert variant.manifest[0]["neurons_after"] == [64, 40]


BACKENDS = ["torch.ao"] + (["torchao"] if importlib.util.find_spec("torchao") else [])


def int8_zeros(model) -> int:
    """Weights that quantized to int8 zero, whichever backend holds them."""
    zeros = 0
    for module in model.modules():
        packed = packed_linear_weight(module)
        if packed is not None:
            zeros += int((packed[0].int_repr() == 0).sum())
        elif isinstance(module, torch.nn.Linear) and type(module.weight) is not torch.nn.Parameter:
            zeros += module.weight.numel() - count_nonzero(module.weight)
    return zeros


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("family", sorted(TINY_CONFIGS))
def test_int8_dynamic_keeps_counts_and_outputs_close(family, backend):
    model = build_tiny(family)
    inputs = inputs_for(model)
    variant = COMPRESSORS.get("int8_dynamic")(model, None, {"backend": backend})
    step = variant.manifest[0]
    assert step["backend"].startswith(backend) and step["dtype"] == "qint8-dynamic"
    assert len(step["quantized"]) == sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    dense_params, int8_params = count_params(model), count_params(variant.model)
    assert int8_params.total == dense_params.total
    dense_macs, int8_macs = count_macs(model, inputs), count_macs(variant.model, inputs)
    assert int8_macs.total == dense_macs.total
    assert int8_params.nonzero == dense_params.nonzero - int8_zeros(variant.model)
    reference = outputs(model, inputs)
    error = (outputs(variant.model, inputs) - reference).abs().max() / reference.abs().max()
    assert error < 0.1


@pytest.mark.skipif(importlib.util.find_spec("torchao") is None, reason="torchao is not installed")
def test_int8_effective_macs_see_weights_that_quantized_to_zero():
    model = build_tiny("bert")
    _, ffn_out = ModelAdapter(model).ffn(0)
    with torch.no_grad():
        ffn_out.weight[:, :32] = 0  # 32 x 32 weights that stay zero in int8
    variant = COMPRESSORS.get("int8_dynamic")(model, None, {"backend": "torchao"})
    macs = count_macs(variant.model, inputs_for(model, 10))
    assert macs.total - macs.effective >= 2 * 10 * 32 * 32


def test_int8_variants_are_not_saved(tmp_path):
    variant = apply_pipeline(build_tiny("bert"), [Step("int8_dynamic")])
    with pytest.raises(InvalidInputError, match="cannot be saved"):
        save_variant(variant, tmp_path / "v", {})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("steps", [[Step("head_pruning", 0.5)], [Step("low_rank", 0.5)],
                                   [Step("head_pruning", 0.25), Step("low_rank", 0.5, {"targets": "attention"})]],
                         ids=lambda steps: "+".join(s.name for s in steps))
def test_wavlm_variants_round_trip(tmp_path, steps):
    """WavLM's gated relative position bias is per original head: the kept heads are saved."""
    model = build_tiny("wavlm")
    zero_head(model, layer=0, head=3)
    variant = apply_pipeline(model, steps)
    save_variant(variant, tmp_path / "v", {"model": "tiny-wavlm"})
    loaded = load_model(str(tmp_path / "v"))
    config = json.loads((tmp_path / "v" / "config.json").read_text())
    if steps[0].name == "head_pruning":
        assert config["compbench_structure"]["kept_heads"] == [
            [h for h in range(4) if h not in removed] for removed in variant.manifest[0]["removed_heads"]]
    inputs = inputs_for(model)
    assert torch.equal(outputs(loaded.model, inputs), outputs(variant.model, inputs))
    assert count_macs(loaded.model, inputs).total == count_macs(variant.model, inputs).total


def test_a_compressed_classifier_reloads_with_its_head(tmp_path):
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    classifier = BertForSequenceClassification(TINY_CONFIGS["bert"]()).eval()
    variant = apply_pipeline(classifier, [Step("head_pruning", 0.5), Step("ffn_pruning", 0.5)])
    save_variant(variant, tmp_path / "v", {"model": "tiny-classifier"})
    loaded = load_model(str(tmp_path / "v"))
    assert type(loaded.model).__name__ == "BertForSequenceClassification"
    ids = {"input_ids": torch.arange(3, 15).unsqueeze(0)}
    with torch.no_grad():
        assert torch.equal(loaded.model(**ids).logits, variant.model(**ids).logits)


def test_low_rank_macs_equal_a_count_of_the_factor_shapes():
    """Tiny BERT (hidden 32, FFN 64, 2 layers), batch 2 x 10 tokens, every Linear at rank 8."""
    model = build_tiny("bert")
    variant = COMPRESSORS.get("low_rank")(model, 0.75, {})
    assert len(variant.manifest[0]["ranks"]) == 12 and set(variant.manifest[0]["ranks"].values()) == {8}
    batch, tokens, hidden, inner, rank = 2, 10, 32, 64, 8
    rows = batch * tokens
    per_layer = (4 * rows * rank * (hidden + hidden)  # q, k, v, o as two factors each
                 + 2 * batch * tokens * tokens * hidden  # attention matmuls, unchanged
                 + 2 * rows * rank * (hidden + inner))  # FFN in and out as two factors each
    pooler = batch * hidden * hidden  # first token of each sequence, not factorised
    assert count_macs(variant.model, inputs_for(model, tokens)).total == 2 * per_layer + pooler


def test_layer_drop_keeps_a_weighted_layer_sum_head_working(tmp_path):
    config = TINY_CONFIGS["hubert"]()
    config.update({"num_hidden_layers": 4, "use_weighted_layer_sum": True, "num_labels": 3})
    torch.manual_seed(0)
    model = HubertForSequenceClassification(config).eval()
    with torch.no_grad():
        model.layer_weights.copy_(torch.tensor([0.3, -1.0, 2.0, 0.5, 1.5]))
    variant = apply_pipeline(model, [Step("layer_drop", 0.5)])  # which: top keeps layers 0 and 1
    assert torch.equal(variant.model.layer_weights.detach(), torch.tensor([0.3, -1.0, 2.0]))
    assert model.layer_weights.shape == (5,)
    inputs = ModelAdapter(model).build_inputs(InputSpec("speech", 0.2))
    with torch.no_grad():
        states = model(**inputs, output_hidden_states=True).hidden_states[:3]
        mixed = sum(w * s for w, s in zip(torch.softmax(torch.tensor([0.3, -1.0, 2.0]), 0), states, strict=True))
        expected = model.classifier(model.projector(mixed).mean(dim=1))
        got = variant.model(**inputs).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    save_variant(variant, tmp_path / "v", {"model": "tiny"})
    with torch.no_grad():
        assert torch.equal(load_model(str(tmp_path / "v")).model(**inputs).logits, got)
