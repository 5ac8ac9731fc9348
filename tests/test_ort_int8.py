"""ort_int8: ONNX Runtime's dynamic int8 quantization of the exported model, measured only under onnxruntime;
which runtimes a variant runs under; the model served by ONNX Runtime for quality."""

import importlib.util
from pathlib import Path

import pytest
import torch
from conftest import TINY_ONNX_GROUP
from test_budget_pruning import inputs_of
from tiny_models import TINY_CONFIGS, build_tiny

from compbench import environment
from compbench.cli.main import main
from compbench.compression.spec import parse_spec
from compbench.compressors import COMPRESSORS
from compbench.environment import int8_products_saturate
from compbench.errors import InvalidInputError
from compbench.measure import MeasureOptions, measure, tolerance_for
from compbench.models import load_model
from compbench.models.variants import save_variant
from compbench.quality.classify import speech_accuracy
from compbench.quality.evaluate import prepare_task
from compbench.runtimes import RUNTIMES, check_outputs
from compbench.runtimes import onnx as onnx_runtime
from compbench.runtimes.base import (
    DEFAULT_TOLERANCE,
    QUANTIZED_TOLERANCE,
    eager_output,
    onnx_quantization,
    output_difference,
)
from compbench.runtimes.onnx import served_by_onnxruntime
from compbench.tasks import find_task
from compbench.timing.wallclock import TimingPolicy

# every ONNX export of these tests reads one table of operator translations (conftest.py)
pytestmark = pytest.mark.usefixtures("one_onnx_registry")

CPU = torch.device("cpu")
QUICK_TIMING = TimingPolicy(budget_s=0.05, min_runs=3, warmup_s=0.0)
needs_onnx = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("onnxruntime", "onnx", "onnxscript")),
    reason="the onnx extra is not installed (pip install 'compbench[onnx]')")


def test_the_variant_is_the_float_model_marked_and_its_input_is_untouched():
    model = build_tiny("bert")
    variant = COMPRESSORS.get("ort_int8")(model, None, {"per_channel": True})
    assert onnx_quantization(model) is None
    assert onnx_quantization(variant.model) == {"weight_type": "QInt8", "per_channel": True, "reduce_range": "auto",
                                             "convolutions": False}
    for (name, weight), (_, original) in zip(variant.model.state_dict().items(), model.state_dict().items(),
                                             strict=True):
        assert torch.equal(weight, original), name
    step = variant.manifest[0]
    linears = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert step["quantized"] == linears and step["total"] == len(linears) and step["dtype"] == "qint8-dynamic"


def test_ort_int8_runs_only_under_onnxruntime_and_must_be_the_last_step(tmp_path):
    model = build_tiny("bert")
    variant = COMPRESSORS.get("ort_int8")(model).model
    for runtime in ("eager", "compile"):
        with pytest.raises(InvalidInputError, match=f"runtime {runtime}: an ort_int8 variant runs only under "
                                                    "onnxruntime"):
            RUNTIMES.get(runtime).prepare(variant, inputs_of(variant), 1, CPU, None)
    with pytest.raises(InvalidInputError, match="head_pruning comes after ort_int8.*must be the last step"):
        COMPRESSORS.get("head_pruning")(variant, 0.5)
    with pytest.raises(InvalidInputError, match="ort_int8 quantizes float32 weights"):
        COMPRESSORS.get("ort_int8")(COMPRESSORS.get("fp16")(model).model)
    with pytest.raises(InvalidInputError, match="apply ort_int8 before the quantization step"):
        COMPRESSORS.get("ort_int8")(COMPRESSORS.get("int8_dynamic")(model, None, {"backend": "torch.ao"}).model)
    with pytest.raises(InvalidInputError, match="ort_int8 variants are quantized by ONNX Runtime when measured"):
        save_variant(COMPRESSORS.get("ort_int8")(model), tmp_path / "out", {})
    assert not (tmp_path / "out").exists()


@needs_onnx
@TINY_ONNX_GROUP
@pytest.mark.parametrize("family", sorted(TINY_CONFIGS))
def test_the_export_is_checked_then_quantized_for_every_family(family, tiny_onnx_cache):
    import onnx

    model = build_tiny(family)
    inputs = inputs_of(model, batch=1)
    variant = COMPRESSORS.get("ort_int8")(model).model
    prepared = RUNTIMES.get("onnxruntime").prepare(variant, inputs, 1, CPU, tiny_onnx_cache)
    reference = eager_output(model, inputs)
    assert check_outputs("onnxruntime", reference, prepared.checked_output()) <= 1e-3  # the float export
    quantized = prepared.output()
    # int8 moved it, a little: 0.0003 (text) to 0.014 (speech) on a CPU without VNNI, with 7-bit weights
    assert 1e-4 < output_difference("onnxruntime", reference, quantized) < QUANTIZED_TOLERANCE
    quantization = prepared.info["quantization"]
    assert quantization["weight_type"] == "QInt8" and quantization["preprocessed"] is True
    assert quantization["reduce_range"] is int8_products_saturate()  # auto, settled for this CPU
    operators = {node.op_type for node in onnx.load(quantization["file"]).graph.node}
    assert operators & {"MatMulInteger", "DynamicQuantizeMatMul"}  # the MatMuls now take int8 weights
    assert "ConvInteger" not in operators and quantization["operators"] == ["MatMul"]  # as int8_dynamic: Linears
    assert quantization["file"] != prepared.info["file"] and quantization["quantize_seconds"] > 0
    again = RUNTIMES.get("onnxruntime").prepare(variant, inputs, 1, CPU, tiny_onnx_cache)
    assert again.info["quantization"]["quantize_seconds"] is None  # cached beside the export
    assert torch.equal(again.output(), quantized)
    dense = RUNTIMES.get("onnxruntime").prepare(model, inputs, 1, CPU, tiny_onnx_cache)
    assert dense.info["file"] == prepared.info["file"] and dense.info["export_seconds"] is None  # same weights


@pytest.mark.parametrize(("asked", "weight_type", "saturates", "settled"), [
    ("auto", "QInt8", True, True), ("auto", "QInt8", False, False), ("auto", "QUInt8", True, False),
    (False, "QInt8", True, False), (True, "QUInt8", False, True)])
def test_reduce_range_auto_is_on_only_for_signed_weights_where_int8_products_saturate(asked, weight_type, saturates,
                                                                                      settled, monkeypatch):
    monkeypatch.setattr(onnx_runtime, "int8_products_saturate", lambda: saturates)
    options = COMPRESSORS.get("ort_int8").check_options({"weight_type": weight_type, "reduce_range": asked})
    assert onnx_runtime.settled_quantization(options) == {**options, "reduce_range": settled}
    assert options["reduce_range"] == asked  # the variant's own settings stay as asked
    folder = Path("/cache/model.onnx")
    assert (onnx_runtime.quantized_path(folder, {**options, "reduce_range": True})
            != onnx_runtime.quantized_path(folder, {**options, "reduce_range": False}))
    with pytest.raises(InvalidInputError, match="option 'reduce_range' must be one of auto, True, False"):
        COMPRESSORS.get("ort_int8").check_options({"reduce_range": "on"})


@pytest.mark.parametrize(("machine", "flags", "saturates"), [
    ("x86_64", "fpu avx2 fma", True), ("x86_64", "avx2 avx512f avx512_vnni", False), ("x86_64", "avx_vnni", False),
    ("x86_64", None, True), ("aarch64", "fp asimd", False), ("arm64", None, False)])
def test_int8_products_saturate_on_x86_cpus_without_vnni(machine, flags, saturates, monkeypatch):
    monkeypatch.setattr(environment.platform, "machine", lambda: machine)
    monkeypatch.setattr(environment, "cpu_flags", lambda: None if flags is None else frozenset(flags.split()))
    assert environment.int8_products_saturate() is saturates


@needs_onnx
@TINY_ONNX_GROUP
def test_convolutions_are_quantized_only_when_asked(tiny_onnx_cache):
    import onnx

    model = build_tiny("hubert")
    variant = COMPRESSORS.get("ort_int8")(model, None, {"convolutions": True})
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv1d)]
    assert variant.manifest[0]["total"] == len(layers) > len([m for m in layers if isinstance(m, torch.nn.Linear)])
    # the float export is the one test_the_export_is_checked_then_quantized_for_every_family made (same weights)
    prepared = RUNTIMES.get("onnxruntime").prepare(variant.model, inputs_of(model, batch=1), 1, CPU, tiny_onnx_cache)
    assert prepared.info["quantization"]["operators"] == ["MatMul", "Conv"]
    assert "ConvInteger" in {node.op_type for node in onnx.load(prepared.info["quantization"]["file"]).graph.node}


@needs_onnx
def test_a_served_model_answers_any_batch_and_length_as_eager_does(tmp_path):
    from transformers import AutoModelForSequenceClassification

    config = TINY_CONFIGS["bert"]()
    config.num_labels = 2
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    served = served_by_onnxruntime(model, 1, str(tmp_path))
    assert type(served) is type(model) and served.config is model.config
    for batch, length in ((3, 7), (1, 12), (2, 5)):
        inputs = {"input_ids": torch.randint(5, 90, (batch, length)), "attention_mask": torch.ones(batch, length,
                                                                                                  dtype=torch.long)}
        inputs["attention_mask"][0, length - 2:] = 0  # padded, as a tokenizer pads a batch
        with torch.no_grad():
            expected = model(**inputs, output_hidden_states=True)
        got = served(**inputs, output_hidden_states=True)
        assert check_outputs("onnxruntime", expected.logits, got.logits) <= 1e-3
        assert len(got.hidden_states) == config.num_hidden_layers + 1
        for want, have in zip(expected.hidden_states, got.hidden_states, strict=True):
            assert check_outputs("onnxruntime", want, have) <= 1e-3
    assert len(list((tmp_path / "onnx").glob("*dynamic*.onnx"))) == 1  # one export for every shape


@needs_onnx
def test_measure_times_ort_int8_under_onnxruntime_only_and_int8_dynamic_under_eager(tmp_path):
    build_tiny("bert").save_pretrained(tmp_path / "tiny")
    options = MeasureOptions(models=[str(tmp_path / "tiny")], tokens=[16], threads=1, memory=False,
                             runtimes=["eager", "onnxruntime"], timing=QUICK_TIMING,
                             compress=[parse_spec("int8_dynamic"), parse_spec("ort_int8")])
    records = measure(options)
    assert [(r["runtime"]["name"], (r["compression"] or [{"name": "dense"}])[0]["name"]) for r in records] == [
        ("eager", "dense"), ("eager", "int8_dynamic"), ("onnxruntime", "dense"), ("onnxruntime", "ort_int8")]
    eager_dense, torch_int8, ort_dense, ort_int8 = records
    assert torch_int8["warnings"][0] == ("not measured under onnxruntime: int8_dynamic variants run only under "
                                         "eager or compile")
    assert ort_int8["warnings"][0] == "not measured under eager: ort_int8 variants run only under onnxruntime"
    assert not any("not measured" in warning for warning in eager_dense["warnings"] + ort_dense["warnings"])
    assert ort_int8["baseline_latency_ms"]["samples"] == ort_dense["latency_ms"]["samples"]
    assert ort_int8["macs"] == ort_dense["macs"] and ort_int8["dtype"] == "qint8-dynamic"
    runtime = ort_int8["runtime"]
    assert runtime["output_difference"] <= runtime["tolerance"] and runtime["quantized_output_difference"] > 1e-5
    assert runtime["quantization"]["method"] == "onnxruntime.quantization.quantize_dynamic"
    assert "quantized_output_difference" not in ort_dense["runtime"]


def test_ort_int8_without_onnxruntime_gives_one_error(capsys):
    with pytest.raises(InvalidInputError, match="ort_int8 variants run only under the runtime onnxruntime, not "
                                                "eager, compile: add that runtime"):
        measure(MeasureOptions(models=["minilm-l6"], tokens=[8], runtimes=["eager", "compile"],
                               compress=[parse_spec("ort_int8")]))
    assert main(["measure", "--model", "minilm-l6", "--tokens", "8", "--compress", "ort_int8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("compbench: error: ort_int8 variants run only under the runtime onnxruntime")


@needs_onnx
def test_the_quality_of_ort_int8_is_evaluated_through_onnx_runtime(fine_tuned):
    model_dir, task_file, data_root = fine_tuned
    options = MeasureOptions(models=[model_dir], seconds=[0.25], task=task_file, data_root=data_root, memory=False,
                             latency=False, threads=1, compress=[parse_spec("ort_int8")])
    dense, variant = measure(options)  # not timed: no runtime is needed to evaluate it, its int8 lives in ORT
    assert "runtime" not in dense["quality"] and variant["quality"]["runtime"] == "onnxruntime"
    assert "latency_ms" not in variant and variant["warnings"] == [] and variant["compression"][0]["name"] == "ort_int8"
    loaded = load_model(model_dir)
    data = prepare_task(find_task(task_file), "speech", loaded.checkpoint, data_root)
    served = served_by_onnxruntime(COMPRESSORS.get("ort_int8")(loaded.model).model, 1)
    assert variant["quality"]["value"] == speech_accuracy(served, data.evaluation)
    assert 0.9 < variant["fidelity"]["output_cosine"] < 1.0  # int8 in ONNX Runtime, not the float model
    with pytest.raises(InvalidInputError, match="--per-example times eager PyTorch"):
        measure(MeasureOptions(**{**options.__dict__, "per_example": True}))


def test_int8_weights_get_the_looser_tolerance_and_ort_int8_the_float_one():
    model = build_tiny("bert")
    assert tolerance_for(model) == DEFAULT_TOLERANCE == 1e-3
    int8 = COMPRESSORS.get("int8_dynamic")(model, None, {"backend": "torch.ao"}).model
    assert tolerance_for(int8) == QUANTIZED_TOLERANCE == 0.05
    # ort_int8's float export is what is checked: the float tolerance
    assert tolerance_for(COMPRESSORS.get("ort_int8")(model).model) == DEFAULT_TOLERANCE
