"""bf16 and fp16: cast every floating-point weight; inputs are cast to match when measured."""

from __future__ import annotations

import torch

from compbench.compressors.base import Compressor, register


def _cast(dtype: torch.dtype):
    def cast(model, amount, options):
        model.to(dtype)
        return model, {"dtype": str(dtype).removeprefix("torch.")}
    return cast


register(Compressor(name="bf16", compress=_cast(torch.bfloat16), takes_amount=False,
                    description="cast weights to bfloat16"))
register(Compressor(name="fp16", compress=_cast(torch.float16), takes_amount=False,
                    description="cast weights to float16"))
