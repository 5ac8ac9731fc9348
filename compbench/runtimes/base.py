"""The runtime contract, its registry, and the output check every runtime passes before it is timed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from compbench.errors import CompbenchError, InvalidInputError
from compbench.registry import Registry

DEFAULT_TOLERANCE = 1e-3  # max |runtime − eager| relative to max |eager| (fp32 kernels reorder sums)
# int8 weights (int8_dynamic): each runtime's kernels quantize the activations themselves, and one value
# rounded to the next int8 step moves the output by more than fp32 reordering does (bert-base under
# torch.compile: 0.022; ort_int8 moves it 0.029 from the float export): a runtime may differ by that, not more
QUANTIZED_TOLERANCE = 0.05
ONNX_QUANTIZATION_ATTRIBUTE = "compbench_onnx_quantization"  # set by ort_int8: how ONNX Runtime quantizes it


class OutputMismatchError(CompbenchError, RuntimeError):
    """A runtime's output differs from eager PyTorch's beyond the tolerance: it gets no latency."""


@dataclass
class Prepared:
    """A model ready to run under one runtime on fixed inputs."""

    run: Callable[[], object]  # one forward on the prepared inputs (what is timed)
    output: Callable[[], torch.Tensor]  # the comparable output (logits, else last hidden state), on the CPU
    info: dict = field(default_factory=dict)  # name, version, settings, preparation seconds: for the record
    # where the runtime changes the numbers by design (it quantizes): the output before it does, which
    # must equal eager's; ``output`` is then the quantized one, whose difference is recorded, not checked
    checked_output: Callable[[], torch.Tensor] | None = None


@dataclass(frozen=True)
class Runtime:
    name: str
    description: str
    version: Callable[[], str]
    # (model, inputs, threads, device, cache_dir) -> Prepared; raises CompbenchError with one clear line
    prepare: Callable[[nn.Module, dict, int, torch.device, str | None], Prepared]
    extra: str | None = None  # the pip extra it needs, if any


RUNTIMES: Registry[Runtime] = Registry("runtime")


def register(runtime: Runtime) -> Runtime:
    return RUNTIMES.register(runtime.name, runtime)


def onnx_quantization(model: nn.Module) -> dict | None:
    """How ONNX Runtime quantizes ``model`` once exported (an ``ort_int8`` variant's settings), else None."""
    return getattr(model, ONNX_QUANTIZATION_ATTRIBUTE, None)


def refuse_onnx_quantized(runtime: str, model: nn.Module) -> None:
    """One clear error for a runtime other than ONNX Runtime asked to run an ``ort_int8`` variant."""
    if onnx_quantization(model) is not None:
        raise InvalidInputError(f"runtime {runtime}: an ort_int8 variant runs only under onnxruntime (ONNX "
                                "Runtime quantizes the exported model); int8 under PyTorch is int8_dynamic")


def first_line(err: Exception) -> str:
    """An exception's message in one line (compilers' and exporters' messages run to pages)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def comparable_output(output) -> torch.Tensor:
    """What runtimes are compared on: a classifier's logits, else the last hidden state."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    return logits if logits is not None else output.last_hidden_state


def eager_output(model: nn.Module, inputs: dict) -> torch.Tensor:
    """Eager PyTorch's comparable output for ``inputs``, on the CPU: what every runtime is checked against."""
    with torch.inference_mode():
        return comparable_output(model(**inputs)).cpu()


class ComparableOutput(nn.Module):
    """``model`` returning only its comparable output (what runtimes export and compile)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, **inputs) -> torch.Tensor:
        return comparable_output(self.model(**inputs))


def output_difference(runtime: str, reference: torch.Tensor, got: torch.Tensor) -> float:
    """The largest difference of ``got`` from eager's ``reference``, relative to the largest |reference|
    (:class:`OutputMismatchError` for another shape)."""
    reference, got = reference.detach().float().cpu(), got.detach().float().cpu()
    if reference.shape != got.shape:
        raise OutputMismatchError(f"runtime {runtime}: output shape {tuple(got.shape)} differs from eager "
                                  f"PyTorch's {tuple(reference.shape)}")
    scale = float(reference.abs().max()) or 1.0
    return float((reference - got).abs().max()) / scale


def check_outputs(runtime: str, reference: torch.Tensor, got: torch.Tensor,
                  tolerance: float = DEFAULT_TOLERANCE) -> float:
    """:func:`output_difference`, and :class:`OutputMismatchError` beyond ``tolerance``."""
    difference = output_difference(runtime, reference, got)
    if not difference <= tolerance:  # NaN fails too
        raise OutputMismatchError(f"runtime {runtime}: outputs differ from eager PyTorch's by {difference:.3g} "
                                  f"(relative to the largest output), beyond the tolerance {tolerance:g}")
    return difference
