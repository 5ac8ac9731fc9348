"""Peak memory of one forward pass.

CUDA: the caching allocator's peak (``torch.cuda.max_memory_allocated``). CPU has no
allocator statistics, so a dispatch mode tracks the bytes of every live tensor storage that
the forward creates; its peak plus the weights and inputs is the model's peak tensor memory
(allocator overhead and framework scratch buffers are not included).
"""

from __future__ import annotations

import itertools
import weakref
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from compbench.counting.weights import packed_linear_weight, storage_bytes


@dataclass
class PeakMemory:
    peak_bytes: int
    weights_bytes: int
    inputs_bytes: int
    activations_peak_bytes: int
    method: str

    def to_dict(self) -> dict:
        return asdict(self)


class LiveTensorBytes(TorchDispatchMode):
    """Tracks the bytes of tensor storages created while active that are still alive."""

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: dict[int, list[int]] = {}  # storage pointer -> [live tensors, bytes]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor) and tensor.device.type != "meta":
                self._track(tensor)
        return out

    def _track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key == 0:
            return
        entry = self._refs.get(key)
        if entry is None:
            entry = self._refs[key] = [0, storage.nbytes()]
            self.live += entry[1]
            self.peak = max(self.peak, self.live)
        entry[0] += 1
        weakref.finalize(tensor, self._release, key)

    def _release(self, key: int) -> None:
        entry = self._refs.get(key)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] == 0:
            self.live -= entry[1]
            del self._refs[key]


def _bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        if isinstance(t, torch.Tensor) and id(t) not in seen:
            seen.add(id(t))
            total += storage_bytes(t)
    return total


def weight_bytes(model: nn.Module) -> int:
    """Bytes ``model``'s parameters and buffers occupy, each tensor once (int8 weights packed inside quantized
    Linears, and tensor subclasses' inner tensors, included)."""
    weights = _bytes(itertools.chain(model.parameters(), model.buffers()))
    for module in model.modules():  # int8 weights packed inside quantized Linears
        packed = packed_linear_weight(module)
        if packed is not None:
            weights += _bytes([t for t in packed if t is not None])
    return weights


def measure_peak_memory(model: nn.Module, inputs: dict[str, torch.Tensor],
                        device: torch.device) -> PeakMemory:
    """Peak memory of ``model(**inputs)`` on ``device`` (one extra forward, not timed)."""
    weights = weight_bytes(model)
    input_bytes = _bytes(inputs.values())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        with torch.inference_mode():
            model(**inputs)
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        return PeakMemory(peak_bytes=peak, weights_bytes=weights, inputs_bytes=input_bytes,
                          activations_peak_bytes=peak - before, method="cuda-allocator")
    tracker = LiveTensorBytes()
    with torch.inference_mode(), tracker:
        model(**inputs)
    return PeakMemory(peak_bytes=weights + input_bytes + tracker.peak, weights_bytes=weights,
                      inputs_bytes=input_bytes, activations_peak_bytes=tracker.peak,
                      method="live-tensor-tracking")
