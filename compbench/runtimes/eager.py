"""Eager PyTorch: the model as it is (the reference every other runtime is checked against)."""

from __future__ import annotations

import torch
from torch import nn

from compbench.runtimes.base import Prepared, Runtime, eager_output, refuse_onnx_quantized, register


def prepare_eager(model: nn.Module, inputs: dict, threads: int, device: torch.device,
                  cache_dir: str | None = None) -> Prepared:
    refuse_onnx_quantized("eager", model)
    return Prepared(run=lambda: model(**inputs), output=lambda: eager_output(model, inputs),
                    info={"name": "eager", "version": torch.__version__})


register(Runtime(name="eager", description="eager PyTorch", version=lambda: torch.__version__,
                 prepare=prepare_eager))
