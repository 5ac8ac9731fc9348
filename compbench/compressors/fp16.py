"""fp16: cast every floating-point weight to float16; inputs are cast to match when measured."""

from __future__ import annotations

import torch

from compbench.compression.compressor import Compressor, register


def cast_to_float16(model, amount, options):
    model.to(torch.float16)
    return model, {"dtype": "float16"}


register(Compressor(name="fp16", compress=cast_to_float16, takes_amount=False,
                    description="cast weights to float16"))
