"""bf16: cast every floating-point weight to bfloat16; inputs are cast to match when measured."""

from __future__ import annotations

import torch

from compbench.compression.compressor import Compressor, register


def cast_to_bfloat16(model, amount, options):
    model.to(torch.bfloat16)
    return model, {"dtype": "bfloat16"}


register(Compressor(name="bf16", compress=cast_to_bfloat16, takes_amount=False,
                    description="cast weights to bfloat16"))
