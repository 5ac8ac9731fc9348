"""Runtimes on tiny configs of every family: outputs equal eager PyTorch's; clear errors for bad input."""

import importlib
import importlib.util

import pytest
import torch
from test_budget_pruning import inputs_of
from tiny_models import TINY_CONFIGS, build_tiny
from torch import nn

from compbench.compressors import COMPRESSORS
from compbench.errors import InvalidInputError, UnknownNameError
from compbench.runtimes import RUNTIMES, OutputMismatchError, check_outputs
from compbench.runtimes.onnx import export_path

CPU = torch.device("cpu")
needs_onnx = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("onnxruntime", "onnx", "onnxscript")),
    reason="the onnx extra is not installed (pip install 'compbench[onnx]')")


def eager_output(model, inputs):
    return RUNTIMES.get("eager").prepare(model, inputs, 1, CPU, None).output()


@needs_onnx
@pytest.mark.parametrize("family", sorted(TINY_CONFIGS))
def test_onnxruntime_outputs_equal_eager_for_every_family(family, tmp_path):
    model = build_tiny(family)
    inputs = inputs_of(model, batch=1)
    prepared = RUNTIMES.get("onnxruntime").prepare(model, inputs, 1, CPU, str(tmp_path))
    assert check_outputs("onnxruntime", eager_output(model, inputs), prepared.output()) <= 1e-3
    assert prepared.info["provider"] == "CPUExecutionProvider" and prepared.info["export_seconds"] > 0
    assert prepared.info["graph_optimization_level"] == "ORT_ENABLE_ALL" and prepared.info["intra_op_threads"] == 1
    prepared.run()
    again = RUNTIMES.get("onnxruntime").prepare(model, inputs, 1, CPU, str(tmp_path))
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
