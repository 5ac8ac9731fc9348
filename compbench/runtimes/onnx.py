"""ONNX Runtime: the model exported with torch's ONNX exporter, run by an InferenceSession.

Export (``torch.onnx.export(dynamo=True)``) writes one file per model and input shape, kept in
``<cache>/onnx/`` under a hash of the model's state, class, input shapes and the torch version, so a
variant is exported once. The session runs the CPU execution provider with ``intra_op_num_threads``
set to the measurement's threads (the CUDA provider for ``--device cuda``) and every graph
optimisation on (``ORT_ENABLE_ALL``, recorded). Needs ``pip install 'compbench[onnx]'``.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import time
from pathlib import Path

import torch
from torch import nn

from compbench.cache import cache_dir, model_fingerprint
from compbench.errors import InvalidInputError
from compbench.runtimes.base import ComparableOutput, Prepared, Runtime, first_line, register

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


def export(model: nn.Module, inputs: dict, path: Path) -> float:
    """Export ``model``'s comparable output for ``inputs`` to ``path`` (atomically); the seconds it took."""
    _module("onnxscript")  # the dynamo exporter's dependencies, with one clear error
    _module("onnx")
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    cpu_inputs = {name: value.cpu() for name, value in inputs.items()}
    try:
        program = torch.onnx.export(ComparableOutput(model).cpu().eval(), (), kwargs=cpu_inputs, dynamo=True,
                                    optimize=True, verbose=False)
        program.save(str(partial))
    except Exception as err:
        partial.unlink(missing_ok=True)
        raise InvalidInputError(f"runtime onnxruntime: the model cannot be exported to ONNX: {export_problem(err)}"
                                ) from None
    os.replace(partial, path)
    return time.perf_counter() - started


def prepare_onnxruntime(model: nn.Module, inputs: dict, threads: int, device: torch.device,
                        cache: str | None = None) -> Prepared:
    ort = _module("onnxruntime")
    home = next(model.parameters()).device
    path = export_path(model, inputs, cache_dir(cache) / "onnx")
    export_seconds = None if path.exists() else export(model, inputs, path)
    model.to(home)
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
    session = ort.InferenceSession(str(path), options, providers=[provider])
    feed = {entry.name: inputs[entry.name].detach().cpu().numpy() for entry in session.get_inputs()}

    def run():
        return session.run(None, feed)

    return Prepared(run=run, output=lambda: torch.from_numpy(run()[0]), info={
        "name": "onnxruntime", "version": ort.__version__, "provider": provider,
        "graph_optimization_level": OPTIMIZATION_LEVEL, "intra_op_threads": threads, "spinning": False,
        "file": str(path),
        "export_seconds": None if export_seconds is None else round(export_seconds, 3)})


register(Runtime(name="onnxruntime", description="ONNX Runtime (torch ONNX export, all graph optimisations)",
                 version=onnxruntime_version, prepare=prepare_onnxruntime, extra="onnx"))
