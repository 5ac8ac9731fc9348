"""Exact multiply-accumulate (MAC) counts, taken at the PyTorch dispatcher.

One MAC is one multiply-add of a matrix product or convolution. A table maps each aten
operator to a handler that returns its MACs from operand shapes, in the manner of fvcore,
but at the dispatcher, so functional matmuls and every scaled-dot-product-attention backend
(math, flash, memory-efficient, cuDNN, CPU flash) are counted the same. Composite operators
(``linear``, ``matmul``, ``conv1d``, ``scaled_dot_product_attention``; seen under
``inference_mode``) and their decompositions (``addmm``, ``bmm``, ``convolution``; seen under
``no_grad``) are both in the table, and a handled operator hides its own decomposition, so
nothing is counted twice. An operator that looks like a matmul but has no handler raises
:class:`UncountedOpError` rather than being counted as zero.

Counting runs on a ``meta`` copy of the model: no weight memory, well under a second.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from compbench.counting.meta import is_meta, meta_clone, run_on_meta, to_meta
from compbench.counting.weights import count_nonzero, is_tensor_subclass, needs_real_forward, weight_values
from compbench.errors import UncountedOpError
from compbench.eval_mode import evaluating

aten = torch.ops.aten

# A handler takes (args, kwargs, output) and returns (macs, the matmul operands).
Handler = Callable[[Sequence, dict, object], tuple[int, tuple[torch.Tensor, ...]]]


def _prod(values) -> int:
    return math.prod(int(v) for v in values)


def _mm(a: torch.Tensor, b: torch.Tensor) -> int:
    return _prod(a.shape) * int(b.shape[-1])


def _bmm(a: torch.Tensor, b: torch.Tensor) -> int:
    return _prod(a.shape) * int(b.shape[-1])


def _matmul(a: torch.Tensor, b: torch.Tensor) -> int:
    """torch.matmul with its 1-D and broadcasting rules."""
    if a.dim() == 1 and b.dim() == 1:
        return int(a.shape[0])
    a_shape = a.shape if a.dim() > 1 else (1, a.shape[0])
    b_shape = b.shape if b.dim() > 1 else (b.shape[0], 1)
    batch = torch.broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2]))
    return _prod(batch) * int(a_shape[-2]) * int(a_shape[-1]) * int(b_shape[-1])


def _conv(inp: torch.Tensor, weight: torch.Tensor, out: torch.Tensor, transposed: bool) -> int:
    # weight: (C_out, C_in / groups, *kernel), transposed: (C_in, C_out / groups, *kernel)
    per_position = int(weight.shape[1]) * _prod(weight.shape[2:])
    return (inp.numel() if transposed else out.numel()) * per_position


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> int:
    # q: (..., L_q, E), k: (..., L_k, E), v: (..., L_k, E_v); heads broadcast (GQA)
    rows = _prod(q.shape[:-1])
    return rows * int(k.shape[-2]) * int(q.shape[-1]) + rows * int(k.shape[-2]) * int(v.shape[-1])


def _einsum(equation: str, operands: Sequence[torch.Tensor]) -> int:
    inputs = equation.replace(" ", "").split("->")[0].split(",")
    if len(operands) != 2 or "..." in equation:
        raise UncountedOpError(f"einsum {equation!r} with {len(operands)} operands has no exact MAC rule")
    sizes: dict[str, int] = {}
    for letters, tensor in zip(inputs, operands, strict=True):
        for letter, size in zip(letters, tensor.shape, strict=True):
            sizes[letter] = max(sizes.get(letter, 1), int(size))
    return _prod(sizes.values())


def _packet_handlers() -> dict[object, Handler]:
    h: dict[object, Handler] = {}
    h[aten.mm] = lambda a, kw, out: (_mm(a[0], a[1]), (a[0], a[1]))
    h[aten.addmm] = lambda a, kw, out: (_mm(a[1], a[2]), (a[1], a[2]))
    h[aten._addmm_activation] = h[aten.addmm]
    h[aten.bmm] = lambda a, kw, out: (_bmm(a[0], a[1]), (a[0], a[1]))
    h[aten.baddbmm] = lambda a, kw, out: (_bmm(a[1], a[2]), (a[1], a[2]))
    h[aten.addbmm] = h[aten.baddbmm]
    h[aten.mv] = lambda a, kw, out: (_prod(a[0].shape), (a[0], a[1]))
    h[aten.addmv] = lambda a, kw, out: (_prod(a[1].shape), (a[1], a[2]))
    h[aten.dot] = lambda a, kw, out: (int(a[0].shape[0]), (a[0], a[1]))
    h[aten.vdot] = h[aten.dot]
    h[aten.matmul] = lambda a, kw, out: (_matmul(a[0], a[1]), (a[0], a[1]))
    h[aten.linear] = lambda a, kw, out: (_prod(a[0].shape[:-1]) * _prod(a[1].shape), (a[0], a[1]))
    h[aten.einsum] = lambda a, kw, out: (_einsum(a[0], a[1]), tuple(a[1]))
    for conv in (aten.convolution, aten._convolution):
        h[conv] = lambda a, kw, out: (_conv(a[0], a[1], out, bool(a[6])), (a[0], a[1]))
    for conv in (aten.conv1d, aten.conv2d, aten.conv3d):
        h[conv] = lambda a, kw, out: (_conv(a[0], a[1], out, False), (a[0], a[1]))
    for conv in (aten.conv_transpose1d, aten.conv_transpose2d, aten.conv_transpose3d):
        h[conv] = lambda a, kw, out: (_conv(a[0], a[1], out, True), (a[0], a[1]))
    quantized = getattr(torch.ops, "quantized", None)
    if quantized is not None and hasattr(quantized, "linear_dynamic"):
        # (input, packed int8 weight, reduce_range): weight shape from the packed parameters
        h[quantized.linear_dynamic] = lambda a, kw, out: (
            _prod(a[0].shape[:-1]) * _prod(torch.ops.quantized.linear_unpack(a[1])[0].shape), (a[1],))
    h[aten._int_mm] = h[aten.mm]
    for sdpa in (aten.scaled_dot_product_attention, aten._scaled_dot_product_attention_math,
                 aten._scaled_dot_product_flash_attention, aten._scaled_dot_product_flash_attention_for_cpu,
                 aten._scaled_dot_product_efficient_attention, aten._scaled_dot_product_cudnn_attention,
                 aten._scaled_dot_product_fused_attention_overrideable):
        h[sdpa] = lambda a, kw, out: (_attention(a[0], a[1], a[2]), (a[0], a[1], a[2]))
    return h


MAC_HANDLERS: dict[object, Handler] = _packet_handlers()

_MATMUL_LIKE = re.compile(
    r"(^|_)(mm|bmm|addmm|baddbmm|addbmm|matmul|mv|addmv|dot|vdot|linear|einsum|tensordot)($|_)"
    r"|bilinear|trilinear|convolution|conv\d|conv_t|attention|transformer_encoder_layer|qlinear")


def looks_like_matmul(op_name: str) -> bool:
    """True for operator names that do matmul or convolution work (``aten.mm``, ``quantized.linear``)."""
    return bool(_MATMUL_LIKE.search(op_name.split(".")[1] if "." in op_name else op_name))


@dataclass
class MacCount:
    """MACs of one forward pass, dense and counting only nonzero weights, by component."""

    total: int = 0
    effective: int = 0
    by_component: dict[str, int] = field(default_factory=dict)
    effective_by_component: dict[str, int] = field(default_factory=dict)
    by_op: dict[str, int] = field(default_factory=dict)


class _ModuleStack:
    """Tracks the fully qualified name of the innermost module currently running."""

    def __init__(self, model: nn.Module):
        self.names: list[str] = [""]
        self._handles = []
        for name, module in model.named_modules():
            if not name:
                continue
            self._handles.append(module.register_forward_pre_hook(self._push(name)))
            self._handles.append(module.register_forward_hook(self._pop, always_call=True))

    def _push(self, name: str):
        def hook(module, args):
            self.names.append(name)
        return hook

    def _pop(self, module, args, output):
        self.names.pop()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


_ACTIVE_COUNTERS: list[MacCounterMode] = []


def declare_density(tensor: torch.Tensor, nonzero: int) -> None:
    """Tell the active MAC counters that ``tensor`` (an activation, e.g. attention probabilities
    kept to the top k per query) has ``nonzero`` nonzero entries by construction: a matmul that
    multiplies it counts in full in ``macs`` and by that fraction in ``macs_effective``. No-op
    when nothing is counting. Structural, so it holds on meta tensors too."""
    for counter in _ACTIVE_COUNTERS:
        counter.weight_density[id(tensor)] = (nonzero, tensor.numel())
        counter.declared.append(tensor)  # keep it alive: its id must not be reused during the count


class MacCounterMode(TorchDispatchMode):
    """Counts MACs of every operator dispatched while active.

    ``weight_density`` maps ``id(weight tensor)`` to ``(nonzero, numel)``; an operator whose
    operand is that weight (or a view of it) adds ``macs * nonzero // numel`` effective MACs,
    which is exact for linear layers and convolutions.
    """

    def __init__(self, component_of: Callable[[str], str] = lambda name: "other",
                 module_stack: _ModuleStack | None = None,
                 weight_density: dict[int, tuple[int, int]] | None = None):
        super().__init__()
        self.component_of = component_of
        self.module_stack = module_stack
        self.weight_density = dict(weight_density or {})
        self.declared: list[torch.Tensor] = []
        self.count = MacCount()
        self._by_component = defaultdict(int)
        self._effective_by_component = defaultdict(int)
        self._by_op = defaultdict(int)

    def __enter__(self):
        _ACTIVE_COUNTERS.append(self)
        return super().__enter__()

    def __exit__(self, *exc):
        _ACTIVE_COUNTERS.remove(self)
        self.declared.clear()
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = run_on_meta(func, args, kwargs)
        handler = MAC_HANDLERS.get(func.overloadpacket)
        if handler is None:
            if looks_like_matmul(str(func.overloadpacket)):
                raise UncountedOpError(
                    f"operator {func} does matmul-like work but compbench has no MAC rule for it; "
                    "refusing to count it as zero")
            return out
        macs, operands = handler(args, kwargs, out)
        effective = macs
        for operand in operands:
            density = self._density(operand)
            if density is not None:
                nonzero, numel = density
                effective = macs * nonzero // numel if numel else 0  # a weight with nothing left
                break
        module = self.module_stack.names[-1] if self.module_stack else ""
        component = self.component_of(module)
        self.count.total += macs
        self.count.effective += effective
        self._by_component[component] += macs
        self._effective_by_component[component] += effective
        self._by_op[str(func.overloadpacket)] += macs
        return out

    def _density(self, tensor) -> tuple[int, int] | None:
        if isinstance(tensor, torch.ScriptObject):  # packed int8 weight of a quantized Linear
            weight = torch.ops.quantized.linear_unpack(tensor)[0]
            return count_nonzero(weight), weight.numel()
        if not isinstance(tensor, torch.Tensor):
            return None
        density = self.weight_density.get(id(tensor))
        if density is None and tensor._base is not None:
            density = self.weight_density.get(id(tensor._base))
        return density

    def result(self) -> MacCount:
        self.count.by_component = dict(self._by_component)
        self.count.effective_by_component = dict(self._effective_by_component)
        self.count.by_op = dict(self._by_op)
        return self.count


def _on_cpu(value):
    """A real CPU tensor of the same shape and dtype (zeros for meta tensors: MACs need no values)."""
    if not isinstance(value, torch.Tensor):
        return value
    return torch.zeros_like(value, device="cpu") if value.is_meta else value.to("cpu")


def count_macs(model: nn.Module, inputs: dict[str, torch.Tensor],
               component_of: Callable[[str], str] | None = None) -> MacCount:
    """MACs of one inference forward ``model(**inputs)`` (eval mode), counted on a meta copy.

    Effective MACs use the nonzero fraction of each real weight; for a model already on
    the meta device they equal the dense MACs. The input model is not modified.
    """
    if is_meta(model):
        clone, originals, run_inputs = model, {}, to_meta(inputs)
    elif needs_real_forward(model):
        # quantized weights (packed or tensor subclasses) cannot be copied to the meta device:
        # count a real CPU forward instead
        clone, originals = model, {id(p): p for p in itertools.chain(model.parameters(), model.buffers())}
        run_inputs = {k: _on_cpu(v) for k, v in inputs.items()}
    else:
        (clone, originals), run_inputs = meta_clone(model), to_meta(inputs)
    weight_density = {}
    for meta_id, real in originals.items():
        if real.dim() < 2 or real.is_meta:
            continue
        if is_tensor_subclass(real):  # its quantized data is what the kernels multiply
            density = (count_nonzero(real), real.numel())
            weight_density[meta_id] = weight_density[id(weight_values(real))] = density
        elif real.is_floating_point():
            weight_density[meta_id] = (int(torch.count_nonzero(real)), real.numel())
    stack = _ModuleStack(clone)
    mode = MacCounterMode(component_of or (lambda name: "other"), stack, weight_density)
    try:
        with torch.no_grad(), evaluating(clone), mode:  # count inference: no dropout or training-time masking
            clone(**run_inputs)
    finally:
        stack.remove()
    return mode.result()
