"""int8_dynamic: dynamic int8 quantization of Linear layers (int8 weights, activations
quantized on the fly per call).

Backends: ``torchao`` (maintained; ``Int8DynamicActivationInt8WeightConfig``, CPU and CUDA)
where it is installed, else ``torch.ao`` (``torch.ao.quantization.quantize_dynamic``,
deprecated, CPU only); ``backend: auto`` (default) picks that way and the manifest says which
ran. Every ``nn.Linear`` is quantized (WavLM's attention is first switched to a forward that
calls its projections as modules). MACs are unchanged (each is now an int8 multiply-add);
weights rounded to int8 zero count as zeros in ``macs_effective``. Variants are measured
in-process: quantized weights cannot be saved with ``save_pretrained``.
"""

from __future__ import annotations

import importlib.util
import warnings

import torch
from torch import nn

from compbench.architectures.families import ModelAdapter
from compbench.compression.compressor import Compressor, Option, register
from compbench.errors import InvalidInputError
from compbench.surgery.units import make_attention_modular

BACKENDS = {"torchao": "torchao.quantization.quantize_ (Int8DynamicActivationInt8WeightConfig)",
            "torch.ao": "torch.ao.quantization.quantize_dynamic"}


def resolve_backend(name: str) -> str:
    available = importlib.util.find_spec("torchao") is not None
    if name == "auto":
        return "torchao" if available else "torch.ao"
    if name == "torchao" and not available:
        raise InvalidInputError("int8_dynamic: backend torchao is not installed (pip install torchao), "
                                "or use backend: torch.ao")
    return name


def check_device(options: dict, device: torch.device) -> None:
    """torch.ao's quantized kernels run on the CPU alone."""
    if resolve_backend(options["backend"]) == "torch.ao" and device.type != "cpu":
        raise InvalidInputError("int8_dynamic with the torch.ao backend runs on CPU only; install torchao or "
                                "measure it with --device cpu")


def _torchao(model: nn.Module) -> None:
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    quantize_(model, Int8DynamicActivationInt8WeightConfig())


def _torch_ao(model: nn.Module, names: list[str]) -> None:
    qconfig = torch.ao.quantization.default_dynamic_qconfig
    with warnings.catch_warnings():
        # torch.ao.quantization and its quantized tensors are deprecated but work (torchao is the successor)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        torch.ao.quantization.quantize_dynamic(model, {name: qconfig for name in names}, dtype=torch.qint8,
                                               inplace=True)


def quantize_int8(model, amount, options: dict):
    backend = resolve_backend(options["backend"])
    adapter = ModelAdapter(model)
    if adapter.floating_dtype() != torch.float32:
        raise InvalidInputError("int8_dynamic quantizes float32 weights; put it before bf16/fp16 casts")
    for layer in range(len(adapter.layers())):
        make_attention_modular(adapter, layer)
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if backend == "torchao":
        _torchao(model)
    else:
        _torch_ao(model, names)
    return model, {"backend": BACKENDS[backend], "dtype": "qint8-dynamic", "quantized": names,
                   "removed": 0, "total": len(names), "unit": "Linears quantized"}


# torch.compile runs either backend's kernels; torch's ONNX exporter has no function for them (aten._int_mm,
# quantized::linear_dynamic): int8 under ONNX Runtime is ort_int8
register(Compressor(name="int8_dynamic", compress=quantize_int8, takes_amount=False, quantizes=True,
                    runtimes=("eager", "compile"), check_device=check_device,
                    description="dynamic int8 quantization of Linear layers (torchao where installed, "
                                "else torch.ao, CPU only)",
                    options={"backend": Option(str, "auto", "auto: torchao when installed, else torch.ao",
                                               choices=("auto", "torchao", "torch.ao"))}))
