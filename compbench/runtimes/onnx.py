"""ONNX Runtime: the model exported with torch's ONNX exporter, run by an InferenceSession.

Export (``torch.onnx.export(dynamo=True)``) writes one file per model and input shape, kept in
``<cache>/onnx/`` under a hash of the model's state, class, input shapes and the torch version, so a
variant is exported once. The session runs the CPU execution provider with ``intra_op_num_threads``
set to the measurement's threads (the CUDA provider for ``--device cuda``) and every graph
optimisation on (``ORT_ENABLE_ALL``, recorded). Needs ``pip install 'compbench[onnx]'``.

An ``ort_int8`` variant is the float model marked with how ONNX Runtime quantizes it: its export is
checked against eager PyTorch first, then quantized with ``onnxruntime.quantization`` (the
recommended pre-processing, then ``quantize_dynamic``; the file cached beside the export) and the
quantized session is what runs. :func:`served_by_onnxruntime` answers such a model's forward with
ONNX Runtime on inputs of any shape (an export with dynamic batch and length), for its quality.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import logging
import os
import re
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from compbench.cache import cache_dir, model_fingerprint
from compbench.environment import int8_products_saturate
from compbench.errors import InvalidInputError
from compbench.runtimes.base import (
    ComparableOutput,
    Prepared,
    Runtime,
    check_outputs,
    comparable_output,
    first_line,
    onnx_quantization,
    register,
)

INSTALL = "pip install 'compbench[onnx]'"
OPTIMIZATION_LEVEL = "ORT_ENABLE_ALL"


def _module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        raise InvalidInputError(f"runtime onnxruntime needs {name}, which is not installed: {INSTALL}") from None


def onnxruntime_version() -> str:
    return _module("onnxruntime").__version__


def export_path(model: nn.Module, inputs: dict, folder: Path) -> Path:
    """Where ``model`` exported for inputs of these shapes is kept."""
    shapes = sorted((name, tuple(value.shape), str(value.dtype)) for name, value in inputs.items())
    key = hashlib.sha256(repr((model_fingerprint(model), shapes, torch.__version__)).encode()).hexdigest()[:24]
    return folder / f"{type(model).__name__}-{key}.onnx"


_NO_FUNCTION = re.compile(r"No ONNX function found for <OpOverload\(op='([^']+)', overload='([^']+)'\)>")
_NODE_TARGET = re.compile(r"target=torch\.ops\.([\w.]+)")


def export_problem(err: Exception) -> str:
    """The exporter's reason in one line, naming the operator where it says which one failed."""
    text = "\n".join(str(e) for e in (err, err.__cause__) if e is not None)
    found = _NO_FUNCTION.search(text)
    if found:
        return f"no ONNX function for the operator {found.group(1)}.{found.group(2)}"
    found = _NODE_TARGET.search(text)
    if found:
        return f"the operator {found.group(1)} failed to convert"
    return first_line(err)


# what torch's exporter and onnxscript's optimizer log while they work (torchvision operators skipped, a constant
# they could not fold): notes for their developers, not for someone measuring a model; an export that fails
# raises, and says why in one line
EXPORTER_LOGGERS = ("torch.onnx", "torch.export", "onnxscript", "onnx_ir")


@contextmanager
def quiet_exporter():
    """The exporter's own log lines and warnings off for the block; the loggers' levels restored after."""
    loggers = [logging.getLogger(name) for name in EXPORTER_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def export(model: nn.Module, inputs: dict, path: Path) -> float:
    """Export ``model``'s comparable output for ``inputs`` to ``path`` (atomically); the seconds it took."""
    _module("onnxscript")  # the dynamo exporter's dependencies, with one clear error
    _module("onnx")
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    cpu_inputs = {name: value.cpu() for name, value in inputs.items()}
    try:
        with quiet_exporter():
            program = torch.onnx.export(ComparableOutput(model).cpu().eval(), (), kwargs=cpu_inputs, dynamo=True,
                                        optimize=True, verbose=False)
            program.save(str(partial))
    except Exception as err:
        partial.unlink(missing_ok=True)
        raise InvalidInputError(f"runtime onnxruntime: the model cannot be exported to ONNX: {export_problem(err)}"
                                ) from None
    os.replace(partial, path)
    return time.perf_counter() - started


def _session(path: Path, threads: int, device: torch.device):
    ort = _module("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPTIMIZATION_LEVEL)
    # ORT's pool threads spin after each run by default; interleaved with other models (and other
    # sessions), a spinning pool steals the cores the next forward needs. Off, as for the timing.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    provider = "CUDAExecutionProvider" if device.type == "cuda" else "CPUExecutionProvider"
    if provider not in ort.get_available_providers():
        raise InvalidInputError(f"runtime onnxruntime: {provider} is not available in this onnxruntime "
                                f"({', '.join(ort.get_available_providers())}); install onnxruntime-gpu for CUDA")
    try:
        return ort.InferenceSession(str(path), options, providers=[provider]), provider
    except Exception as err:  # e.g. no kernel for an operator in this dtype on this provider
        raise InvalidInputError(f"runtime onnxruntime: ONNX Runtime cannot run the exported model: "
                                f"{first_line(err)}") from None


def _feed(session, inputs: dict) -> dict:
    return {entry.name: inputs[entry.name].detach().cpu().numpy() for entry in session.get_inputs()}


def quantized_operators(quantization: dict) -> list[str]:
    """The ONNX operators ``quantize_dynamic`` rewrites: the MatMuls (the model's Linears, as int8_dynamic), and
    the convolutions only when asked (ConvInteger ran hubert-base 10 s at 0.68× of float on this CPU)."""
    return ["MatMul"] + (["Conv"] if quantization.get("convolutions") else [])


def settled_quantization(quantization: dict) -> dict:
    """An ort_int8 variant's settings as they run on this machine: ``reduce_range: auto`` becomes true for
    QInt8 weights where int8 products saturate (an x86 CPU without VNNI; there the u8 x s8 kernels clip at
    int16 and a speech model's outputs moved by 0.26 of their largest value instead of 0.014), else false."""
    settled = dict(quantization)
    if settled.get("reduce_range", "auto") == "auto":
        settled["reduce_range"] = settled["weight_type"] == "QInt8" and int8_products_saturate()
    return settled


def quantized_path(path: Path, quantization: dict) -> Path:
    """Where the export at ``path`` quantized with ``quantization`` (an ort_int8 variant's settings) is kept."""
    settings = repr((sorted(quantization.items()), onnxruntime_version()))
    return path.with_name(f"{path.stem}.int8-{hashlib.sha256(settings.encode()).hexdigest()[:12]}.onnx")


def quantize(path: Path, quantization: dict) -> tuple[Path, float | None]:
    """The export at ``path`` dynamically quantized to int8 by ONNX Runtime (cached); the seconds it took,
    None when it was cached. Pre-processing (shape inference and graph optimisation) comes first, as
    ONNX Runtime recommends."""
    target = quantized_path(path, quantization)
    if target.exists():
        return target, None
    _module("onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    started = time.perf_counter()
    staged = target.with_suffix(f".{os.getpid()}.pre.partial")
    partial = target.with_suffix(f".{os.getpid()}.partial")
    try:
        quant_pre_process(str(path), str(staged), skip_symbolic_shape=True)
        # the exporter's recorded intermediate shapes can disagree with what quantization infers after
        # pre-processing (a classifier's weight seen transposed): dropped, they are inferred afresh
        onnx = _module("onnx")
        model = onnx.load(str(staged))
        del model.graph.value_info[:]
        onnx.save(model, str(staged))
        quantize_dynamic(str(staged), str(partial), weight_type=getattr(QuantType, quantization["weight_type"]),
                         per_channel=quantization["per_channel"], reduce_range=quantization["reduce_range"],
                         op_types_to_quantize=quantized_operators(quantization))
    except Exception as err:
        partial.unlink(missing_ok=True)
        raise InvalidInputError(f"runtime onnxruntime: ONNX Runtime cannot quantize the exported model: "
                                f"{first_line(err)}") from None
    finally:
        staged.unlink(missing_ok=True)
    os.replace(partial, target)
    return target, time.perf_counter() - started


def _quantization_info(path: Path, quantization: dict, seconds: float | None) -> dict:
    return {**quantization, "method": "onnxruntime.quantization.quantize_dynamic", "preprocessed": True,
            "operators": quantized_operators(quantization),
            "file": str(path), "quantize_seconds": None if seconds is None else round(seconds, 3)}


def prepare_onnxruntime(model: nn.Module, inputs: dict, threads: int, device: torch.device,
                        cache: str | None = None) -> Prepared:
    ort = _module("onnxruntime")
    home = next(model.parameters()).device
    path = export_path(model, inputs, cache_dir(cache) / "onnx")
    export_seconds = None if path.exists() else export(model, inputs, path)
    model.to(home)
    session, provider = _session(path, threads, device)
    info = {"name": "onnxruntime", "version": ort.__version__, "provider": provider,
            "graph_optimization_level": OPTIMIZATION_LEVEL, "intra_op_threads": threads, "spinning": False,
            "file": str(path), "export_seconds": None if export_seconds is None else round(export_seconds, 3)}
    quantization = onnx_quantization(model)
    checked_output = None
    if quantization is not None:
        exported = torch.from_numpy(session.run(None, _feed(session, inputs))[0])
        checked_output = lambda: exported  # noqa: E731  (the float export, computed before its session goes)
        quantization = settled_quantization(quantization)
        quantized, seconds = quantize(path, quantization)
        info["quantization"] = _quantization_info(quantized, quantization, seconds)
        session, _ = _session(quantized, threads, device)
    feed = _feed(session, inputs)

    def run():
        return session.run(None, feed)

    return Prepared(run=run, output=lambda: torch.from_numpy(run()[0]), info=info, checked_output=checked_output)


class _Positional(nn.Module):
    """``model`` called with its inputs in a fixed order (torch.export writes dynamic shapes per positional
    argument), returning its comparable output and every hidden state, stacked."""

    def __init__(self, model: nn.Module, names: tuple[str, ...]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *values):
        output = self.model(**dict(zip(self.names, values, strict=True)), output_hidden_states=True)
        return comparable_output(output), torch.stack(output.hidden_states)


def export_dynamic(model: nn.Module, inputs: dict, folder: Path) -> Path:
    """``model`` exported for any batch and length of these inputs, answering its comparable output and every
    hidden state (cached under a hash of its state, the inputs' names and dtypes and the torch version)."""
    names = tuple(sorted(inputs))
    signature = [(name, str(inputs[name].dtype)) for name in names]
    key = hashlib.sha256(repr((model_fingerprint(model), signature, "dynamic, with hidden states",
                               torch.__version__)).encode()).hexdigest()[:24]
    path = folder / f"{type(model).__name__}-dynamic-{key}.onnx"
    if path.exists():
        return path
    _module("onnxscript")
    _module("onnx")
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    try:
        with torch.inference_mode(False):  # evaluation calls under inference mode; its traces differ
            # an example batch of two: a dimension of size one would be specialised, not left dynamic
            example = tuple(torch.cat([inputs[name].cpu()] * 2) for name in names)
            dynamic = tuple({axis: torch.export.Dim.DYNAMIC for axis in range(value.dim())} for value in example)
            program = torch.onnx.export(_Positional(model, names).cpu().eval(), example,
                                        dynamic_shapes=(dynamic,), input_names=list(names), dynamo=True,
                                        optimize=True, verbose=False)
        program.save(str(partial))
    except Exception as err:
        partial.unlink(missing_ok=True)
        raise InvalidInputError(f"runtime onnxruntime: the model cannot be exported to ONNX: {export_problem(err)}"
                                ) from None
    os.replace(partial, path)
    return path


def served_by_onnxruntime(model: nn.Module, threads: int, cache: str | None = None) -> nn.Module:
    """``model`` with its forward answered by ONNX Runtime, quantized as its ``ort_int8`` step says: a
    shallow copy whose ``forward(**inputs, output_hidden_states=False)`` returns ``logits`` (a classifier)
    or ``last_hidden_state``, and ``hidden_states`` when asked, for inputs of any batch and length.

    A session is made per set of input names, on the first call, from one export that answers both the output
    (quality) and the hidden states (fidelity): the float export is checked against eager PyTorch on that call's
    inputs (:class:`OutputMismatchError` beyond the tolerance), then quantized. For quality evaluation; the
    timed sessions are :func:`prepare_onnxruntime`'s."""
    quantization = onnx_quantization(model)
    folder = cache_dir(cache) / "onnx"
    device = torch.device("cpu")
    sessions: dict[tuple, tuple] = {}

    def session_for(inputs: dict):
        key = tuple(sorted(inputs))
        if key not in sessions:
            path = export_dynamic(model, inputs, folder)
            exported, _ = _session(path, threads, device)
            with torch.inference_mode():
                eager = model(**inputs)
            got = torch.from_numpy(exported.run(None, _feed(exported, inputs))[0])
            check_outputs("onnxruntime", comparable_output(eager), got)
            if quantization is not None:
                path, _ = quantize(path, settled_quantization(quantization))
            session, _ = _session(path, threads, device)
            sessions[key] = (session, "logits" if getattr(eager, "logits", None) is not None else "last_hidden_state")
        return sessions[key]

    def forward(output_hidden_states: bool = False, **inputs):
        inputs = {name: value for name, value in inputs.items() if value is not None}
        session, kind = session_for(inputs)
        wanted = None if output_hidden_states else [session.get_outputs()[0].name]
        outputs = [torch.from_numpy(array) for array in session.run(wanted, _feed(session, inputs))]
        answer = SimpleNamespace(**{kind: outputs[0]})
        if output_hidden_states:
            answer.hidden_states = tuple(outputs[1])
        return answer

    served = copy.copy(model)
    served.forward = forward
    return served


register(Runtime(name="onnxruntime", description="ONNX Runtime (torch ONNX export, all graph optimisations)",
                 version=onnxruntime_version, prepare=prepare_onnxruntime, extra="onnx"))
