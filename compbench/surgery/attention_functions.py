"""Attention functions compbench registers in transformers' attention-function registry over the implementation a
model ran before (``PREFIX + BASE``): top-k attention (:mod:`.hard_attention`) and map-keeping attention
(:mod:`.attention_reuse`). What they share: the base function a module would call, and registering a function
under a prefixed name with its base's mask function."""

from __future__ import annotations

import sys
from collections.abc import Callable

from torch import nn
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, AttentionInterface


def eager_function(module: nn.Module):
    """The family's own eager attention, as ``module``'s model would call it."""
    return sys.modules[type(module).__module__].eager_attention_forward


def base_function(name: str, module: nn.Module):
    """The attention function registered as ``name`` (the family's own for ``eager``)."""
    return eager_function(module) if name == "eager" else ALL_ATTENTION_FUNCTIONS[name]


def register_over(prefix: str, base: str, make: Callable[[str], Callable]) -> str:
    """``prefix + base``, registered on first use as ``make(base)`` with ``base``'s mask function."""
    name = prefix + base
    if name not in ALL_ATTENTION_FUNCTIONS:
        AttentionInterface.register(name, make(base))
        if base in ALL_MASK_ATTENTION_FUNCTIONS:
            AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[base])
    return name
