"""Runtimes on tiny configs of every family: outputs equal eager PyTorch's; clear errors for bad input."""

import importlib
import importlib.util

import pandas as pd
import pytest
import torch
from conftest import TINY_ONNX_GROUP
from test_budget_pruning import inputs_of
from tiny_models import TINY_CONFIGS, build_tiny
from torch import nn

from compbench.cli.main import main
from compbench.cli.output import render
from compbench.compression.spec import parse_spec
from compbench.compressors import COMPRESSORS
from compbench.errors import InvalidInputError, UnknownNameError
from compbench.measure import MeasureOptions, measure
from compbench.report.landscape import landscape_frame
from compbench.report.runtimes import runtime_comparisons
from compbench.runtimes import RUNTIMES, OutputMismatchError, check_outputs
from compbench.runtimes.onnx import export_path
from compbench.timing.wallclock import TimingPolicy

# every ONNX export of these tests reads one table of operator translations (conftest.py)
pytestmark = pytest.mark.usefixtures("one_onnx_registry")

CPU = torch.device("cpu")
needs_onnx = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("onnxruntime", "onnx", "onnxscript")),
    reason="the onnx extra is not installed (pip install 'compbench[onnx]')")


def eager_output(model, inputs):
    return RUNTIMES.get("eager").prepare(model, inputs, 1, CPU, None).output()


@needs_onnx
@TINY_ONNX_GROUP
@pytest.mark.parametrize("family", sorted(TINY_CONFIGS))
def test_onnxruntime_outputs_equal_eager_for_every_family(family, tiny_onnx_cache):
    model = build_tiny(family)
    inputs = inputs_of(model, batch=1)
    prepared = RUNTIMES.get("onnxruntime").prepare(model, inputs, 1, CPU, tiny_onnx_cache)  # exported, or found
    assert check_outputs("onnxruntime", eager_output(model, inputs), prepared.output()) <= 1e-3
    assert prepared.info["provider"] == "CPUExecutionProvider"
    assert prepared.info["graph_optimization_level"] == "ORT_ENABLE_ALL" and prepared.info["intra_op_threads"] == 1
    assert prepared.info["spinning"] is False  # a spinning pool would slow whatever runs next
    prepared.run()
    again = RUNTIMES.get("onnxruntime").prepare(model, inputs, 1, CPU, tiny_onnx_cache)
    assert again.info["export_seconds"] is None and again.info["file"] == prepared.info["file"]  # cached


@needs_onnx
def test_a_classifier_is_compared_on_its_logits_and_each_variant_is_its_own_file(tmp_path):
    from transformers import AutoModelForSequenceClassification

    config = TINY_CONFIGS["bert"]()
    config.num_labels = 3
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    inputs = inputs_of(model, batch=2)
    prepared = RUNTIMES.get("onnxruntime").prepare(model, inputs, 1, CPU, str(tmp_path))
    assert prepared.info["export_seconds"] > 0  # a new export says what it took
    assert prepared.output().shape == (2, 3)
    check_outputs("onnxruntime", eager_output(model, inputs), prepared.output())
    pruned = COMPRESSORS.get("head_pruning")(model, 0.5).model
    assert export_path(pruned, inputs, tmp_path) != export_path(model, inputs, tmp_path)
    assert export_path(model, inputs_of(model, batch=1), tmp_path) != export_path(model, inputs, tmp_path)


@pytest.mark.parametrize("family", ["bert", "hubert"])
def test_compiled_outputs_equal_eager(family):
    model = build_tiny(family)
    inputs = inputs_of(model, batch=1)
    prepared = RUNTIMES.get("compile").prepare(model, inputs, 1, CPU, None)
    assert check_outputs("compile", eager_output(model, inputs), prepared.output()) <= 1e-3
    assert prepared.info["backend"] == "inductor" and prepared.info["compile_seconds"] > 0
    assert 1 <= prepared.info["warmup_calls"] <= 30


def test_outputs_beyond_the_tolerance_or_of_another_shape_are_refused():
    reference = torch.tensor([[1.0, -2.0], [0.5, 4.0]])
    assert check_outputs("x", reference, reference + 1e-4) == pytest.approx(1e-4 / 4, rel=1e-2)
    with pytest.raises(OutputMismatchError, match="runtime x: outputs differ from eager PyTorch's by 0.025"):
        check_outputs("x", reference, reference + 0.1)
    with pytest.raises(OutputMismatchError, match="output shape"):
        check_outputs("x", reference, reference[:1])
    with pytest.raises(OutputMismatchError):
        check_outputs("x", reference, reference * float("nan"))


def test_unknown_runtimes_and_missing_extras_give_one_clear_error(monkeypatch):
    with pytest.raises(UnknownNameError, match="onnxruntime"):
        RUNTIMES.get("onnx-runtime")
    real = importlib.import_module

    def without_onnxruntime(name, *args):
        if name == "onnxruntime":
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_onnxruntime)
    model = build_tiny("bert")
    with pytest.raises(InvalidInputError, match=r"needs onnxruntime, which is not installed: pip install "
                                                r"'compbench\[onnx\]'"):
        RUNTIMES.get("onnxruntime").prepare(model, inputs_of(model), 1, CPU, None)


class RunningMaximum(nn.Module):
    """``torch.cummax`` has no ONNX function."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, input_values):
        return torch.cummax(self.linear(input_values), dim=1)[0]


@needs_onnx
def test_a_model_that_cannot_be_exported_gives_one_error_and_leaves_no_file(tmp_path):
    with pytest.raises(InvalidInputError, match="cannot be exported to ONNX: no ONNX function for the operator "
                                                "aten.cummax.default"):
        RUNTIMES.get("onnxruntime").prepare(RunningMaximum(), {"input_values": torch.randn(1, 4)}, 1, CPU,
                                            str(tmp_path))
    assert not list((tmp_path / "onnx").glob("*"))


@needs_onnx
def test_measure_times_each_runtime_beside_its_own_dense_model(tmp_path):
    build_tiny("bert").save_pretrained(tmp_path / "tiny")
    options = MeasureOptions(models=[str(tmp_path / "tiny")], tokens=[16], threads=1, memory=False,
                             runtimes=["eager", "onnxruntime"], compress=[parse_spec("head_pruning=0.5")],
                             timing=TimingPolicy(budget_s=0.1, min_runs=3, warmup_s=0.0))
    records = measure(options)
    assert [(r["runtime"]["name"], r["compression"] is None) for r in records] == [
        ("eager", True), ("eager", False), ("onnxruntime", True), ("onnxruntime", False)]
    eager_dense, eager_pruned, ort_dense, ort_pruned = records
    assert ort_pruned["baseline_latency_ms"]["samples"] == ort_dense["latency_ms"]["samples"]  # its own dense
    assert eager_pruned["baseline_latency_ms"]["samples"] == eager_dense["latency_ms"]["samples"]
    assert ort_pruned["macs"] == eager_pruned["macs"] and ort_pruned["params"] == eager_pruned["params"]
    assert ort_pruned["runtime"]["output_difference"] <= ort_pruned["runtime"]["tolerance"]
    assert ort_dense["runtime"]["version"] and eager_dense["runtime"]["output_difference"] == 0.0
    assert len({len(r["latency_ms"]["samples"]) for r in records}) == 1  # one interleaved run: the same rounds
    groups = landscape_frame(records)["group"]
    assert groups[0] == groups[1] != groups[2] == groups[3] and "onnxruntime" in groups[2]
    assert "runtime" in render(records, "table")
    [comparison] = runtime_comparisons(landscape_frame(records))
    assert comparison.runtimes == ["eager", "onnxruntime"] and list(comparison.table["variant"]) == [
        "dense", "head_pruning=0.5"]
    assert comparison.dense_fastest == min((eager_dense, ort_dense),
                                           key=lambda r: r["latency_ms"]["median"])["runtime"]["name"]
    assert comparison.table["eager ms [95% CI]"][1].startswith(f"{eager_pruned['latency_ms']['median']:.2f} [")


def comparison_rows(*rows):
    """A landscape frame's columns that runtime_comparisons reads: (runtime, variant, median, low, high, run)."""
    return pd.DataFrame([{"model": "bert-base", "input": "128 tokens", "machine": "m", "per_example": False,
                          "run_id": run, "runtime": runtime, "variant": variant, "is_dense": variant == "dense",
                          "latency_ms": median, "latency_ci_low": low, "latency_ci_high": high}
                         for runtime, variant, median, low, high, run in rows])


def test_a_runtime_is_called_fastest_only_where_its_interval_clears_the_next():
    frame = comparison_rows(("eager", "dense", 100.0, 95.0, 105.0, "a"),
                            ("onnxruntime", "dense", 80.0, 78.0, 82.0, "a"), ("eager", "v", 60.0, 55.0, 65.0, "a"),
                            ("onnxruntime", "v", 58.0, 50.0, 62.0, "a"),
                            ("eager", "dense", 90.0, 89.0, 91.0, "b"))  # run b: one runtime, nothing to compare
    [comparison] = runtime_comparisons(frame)
    assert comparison.dense_fastest == "onnxruntime"
    assert list(comparison.table["fastest runtime"]) == ["onnxruntime", "onnxruntime (≈ eager: intervals overlap)"]
    assert list(comparison.table["onnxruntime ms [95% CI]"]) == ["80.00 [78.00, 82.00]", "58.00 [50.00, 62.00]"]
    assert comparison.summary == (
        "bert-base · 128 tokens: the dense model is fastest under onnxruntime (80.0 ms; eager 100.0 ms); the fastest "
        "of all is v under onnxruntime (58.0 ms, 1.72× as fast as the dense model under eager), not separated from v "
        "under eager")


def test_bad_runtimes_in_measure_give_one_error(capsys):
    assert main(["measure", "--model", "minilm-l6", "--tokens", "8", "--runtime", "onnx-runtime"]) == 2
    assert "onnxruntime" in capsys.readouterr().err
    assert main(["measure", "--model", "minilm-l6", "--tokens", "8", "--runtime", "compile", "--no-latency"]) == 2
    assert "matters only for latency" in capsys.readouterr().err


def test_the_exporters_own_log_lines_and_warnings_are_not_shown_and_the_loggers_are_restored(caplog, recwarn):
    """torch's exporter logs each torchvision operator it skips, onnxscript each constant it could not fold:
    not the user's to read while measuring (an export that fails raises, with one line)."""
    import logging
    import warnings

    from compbench.runtimes.onnx import quiet_exporter

    registration, folding = (logging.getLogger(name) for name in
                             ("torch.onnx._internal.exporter._registration", "onnxscript.optimizer._constant_folding"))
    before = logging.getLogger("torch.onnx").level
    with caplog.at_level(logging.WARNING):
        with quiet_exporter():
            registration.warning("torchvision is not installed. Skipping torchvision::nms")
            folding.warning("Evaluation failed: cannot reshape array of size 1 into shape (1,8)")
            warnings.warn("isinstance(treespec, LeafSpec) is deprecated", FutureWarning, stacklevel=1)
        assert caplog.records == [] and len(recwarn) == 0
        registration.warning("after the export")
    assert [r.getMessage() for r in caplog.records] == ["after the export"]
    assert logging.getLogger("torch.onnx").level == before
