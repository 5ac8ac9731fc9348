"""int8_dynamic: dynamic int8 quantization of Linear layers (int8 weights, activations
quantized on the fly), with ``torch.ao.quantization.quantize_dynamic`` on CPU.

Every ``nn.Linear`` is quantized (WavLM's attention is first switched to a forward that calls
its projections as modules, see :mod:`compbench.compressors.wavlm_attention`). MACs are
unchanged (each is now an int8 multiply-add); weights rounded to int8 zero count as zeros in
``macs_effective``. CPU only; variants are measured in-process (they cannot be saved with
``save_pretrained``).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from compbench.compressors.base import Compressor, Option, register
from compbench.compressors.structure import make_attention_modular
from compbench.models.families import ModelAdapter

BACKEND = "torch.ao.quantization.quantize_dynamic"


def packed_linear_weight(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """(int8 weight, float bias) of a dynamically quantized Linear, else None."""
    packed = getattr(module, "_packed_params", None)
    if packed is None or not hasattr(packed, "_weight_bias"):
        return None
    return packed._weight_bias()


def has_packed_weights(model: nn.Module) -> bool:
    return any(packed_linear_weight(m) is not None for m in model.modules())


def quantize_int8(model, amount, options: dict):
    adapter = ModelAdapter(model)
    for layer in range(len(adapter.layers())):
        make_attention_modular(adapter, layer)
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    qconfig = torch.ao.quantization.default_dynamic_qconfig
    with warnings.catch_warnings():
        # torch.ao.quantization and its quantized tensors are deprecated but work (torchao is the successor)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*", category=UserWarning)
        torch.ao.quantization.quantize_dynamic(model, {name: qconfig for name in names}, dtype=torch.qint8,
                                               inplace=True)
    return model, {"backend": BACKEND, "dtype": "qint8-dynamic", "quantized": names,
                   "removed": 0, "total": len(names)}


register(Compressor(name="int8_dynamic", compress=quantize_int8, takes_amount=False,
                    description="dynamic int8 quantization of Linear layers (CPU; torch.ao quantize_dynamic)",
                    options={"backend": Option(str, "torch.ao", "quantization backend", choices=("torch.ao",))}))
