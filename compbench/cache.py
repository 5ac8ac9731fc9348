"""Where compbench keeps what it can reuse (fine-tuned checkpoints, exported ONNX files), and the
fingerprint that keys a model's entries."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import torch
from torch import nn

CACHE_ENV = "COMPBENCH_CACHE_DIR"


def cache_dir(option: str | Path | None = None) -> Path:
    """``option``, else ``$COMPBENCH_CACHE_DIR``, else ~/.cache/compbench."""
    if option:
        return Path(option)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path.home() / ".cache" / "compbench"


def model_fingerprint(model: nn.Module) -> str:
    """A hash of everything ``model``'s state holds (quantized packed weights included) and its class."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return hashlib.sha256(type(model).__qualname__.encode() + buffer.getvalue()).hexdigest()
