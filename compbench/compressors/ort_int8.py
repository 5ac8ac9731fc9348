"""ort_int8: ONNX Runtime's dynamic int8 quantization of the exported model, measured only under
``onnxruntime``.

The variant is the float model, unchanged, marked with how ONNX Runtime quantizes it: the
``onnxruntime`` runtime exports it, checks the export against eager PyTorch, then quantizes the
file (``onnxruntime.quantization``: pre-processing, then ``quantize_dynamic`` of the MatMuls, as
int8_dynamic quantizes the Linears; the convolutions too with ``convolutions: true``; int8 weights,
activations quantized per call; ``reduce_range`` rounds the weights to 7 bits, which ``auto`` does
for QInt8 weights on an x86 CPU without VNNI, where int8 products saturate) and times the quantized
session. Its quality is evaluated through ONNX Runtime too. MACs and params stay those of the
PyTorch model (each MAC of a quantized MatMul is an int8 multiply-add). It must be the last step of
a pipeline. int8 under PyTorch is ``int8_dynamic``.
"""

from __future__ import annotations

import torch
from torch import nn

from compbench.architectures.families import ModelAdapter
from compbench.compression.compressor import Compressor, Option, register
from compbench.counting.weights import is_input_dependent
from compbench.errors import InvalidInputError
from compbench.runtimes.base import ONNX_QUANTIZATION_ATTRIBUTE


def mark_for_onnx_quantization(model: nn.Module, amount, options: dict):
    if ModelAdapter(model).floating_dtype() != torch.float32:
        raise InvalidInputError("ort_int8 quantizes float32 weights; put it before bf16/fp16 casts")
    if is_input_dependent(model):
        raise InvalidInputError("ort_int8 cannot follow early_exit: a path that depends on the input's values "
                                "does not export to one ONNX graph")
    setattr(model, ONNX_QUANTIZATION_ATTRIBUTE, dict(options))
    kinds = (nn.Linear, nn.Conv1d) if options["convolutions"] else (nn.Linear,)
    names = [name for name, module in model.named_modules() if isinstance(module, kinds)]
    unit = ("Linears and convolutions quantized (MatMuls and Convs in the exported graph)" if options["convolutions"]
            else "Linears quantized (their MatMuls in the exported graph)")
    return model, {"dtype": "qint8-dynamic", "runtime": "onnxruntime", "quantized": names, "removed": 0,
                   "total": len(names), "unit": unit}


register(Compressor(name="ort_int8", compress=mark_for_onnx_quantization, takes_amount=False, quantizes=True,
                    runtimes=("onnxruntime",),
                    description="ONNX Runtime dynamic int8 quantization of the exported model (measured under "
                                "onnxruntime only)",
                    options={"weight_type": Option(str, "QInt8", "the weights' int8 type",
                                                   choices=("QInt8", "QUInt8")),
                             "per_channel": Option(bool, False, "one scale per output channel, not per tensor"),
                             "reduce_range": Option((bool, str), "auto", "weights rounded to 7 bits, which keeps "
                                                    "int8 products from saturating on x86 CPUs without VNNI; "
                                                    "auto: on for QInt8 weights on such a CPU, as ONNX Runtime "
                                                    "advises (the record says which ran)",
                                                    choices=("auto", True, False)),
                             "convolutions": Option(bool, False, "also the convolutions (a speech model's feature "
                                                                 "encoder); ConvInteger is slow on CPU")}))
