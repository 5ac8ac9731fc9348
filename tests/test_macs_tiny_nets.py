"""Exact MAC counts on tiny purpose-built nets, each worked out by hand in the test."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compbench.counting.macs import count_macs, looks_like_matmul
from compbench.errors import UncountedOpError


class Call(nn.Module):
    """Wraps a function of the inputs as a module so count_macs can run it."""

    def __init__(self, fn, *params):
        super().__init__()
        self.fn = fn
        self.params = nn.ParameterList(params)

    def forward(self, **inputs):
        return self.fn(*self.params, **inputs)


def test_linear_3d_input():
    net = nn.Linear(7, 5)
    # (3 x 4) rows, each 7 -> 5
    assert count_macs(net, {"input": torch.randn(3, 4, 7)}).total == 3 * 4 * 7 * 5


def test_linear_without_bias_equals_with_bias():
    x = {"input": torch.randn(2, 9)}
    assert count_macs(nn.Linear(9, 4, bias=False), x).total == count_macs(nn.Linear(9, 4), x).total == 72


def test_grouped_strided_conv1d():
    net = nn.Conv1d(4, 6, kernel_size=3, stride=2, groups=2)
    # out length (11 - 3) // 2 + 1 = 5; each output uses 4/2 channels x 3 taps
    assert count_macs(net, {"input": torch.randn(2, 4, 11)}).total == 2 * 6 * 5 * 2 * 3


def test_padded_dilated_conv2d():
    net = nn.Conv2d(3, 8, kernel_size=(3, 5), padding=(1, 2), dilation=1)
    # same-size output 10 x 12
    assert count_macs(net, {"input": torch.randn(1, 3, 10, 12)}).total == 8 * 10 * 12 * 3 * 3 * 5


def test_transposed_conv1d():
    net = nn.ConvTranspose1d(4, 6, kernel_size=3, stride=2, groups=2)
    # every input position scatters into 6/2 channels x 3 taps
    assert count_macs(net, {"input": torch.randn(2, 4, 5)}).total == 2 * 4 * 5 * 3 * 3


def test_broadcasting_matmul():
    net = Call(lambda a, b: a @ b)
    inputs = {"a": torch.randn(2, 1, 4, 5), "b": torch.randn(3, 5, 6)}
    assert count_macs(net, inputs).total == 2 * 3 * 4 * 5 * 6


def test_matrix_vector_and_vector_vector():
    assert count_macs(Call(lambda a, b: a @ b), {"a": torch.randn(4, 5), "b": torch.randn(5)}).total == 20
    assert count_macs(Call(lambda a, b: a @ b), {"a": torch.randn(5), "b": torch.randn(5)}).total == 5


def test_einsum_batched_product():
    net = Call(lambda a, b: torch.einsum("bij,bjk->bik", a, b))
    assert count_macs(net, {"a": torch.randn(2, 3, 4), "b": torch.randn(2, 4, 5)}).total == 2 * 3 * 4 * 5


def _attention_inputs():
    return {"q": torch.randn(2, 3, 7, 8), "k": torch.randn(2, 3, 9, 8), "v": torch.randn(2, 3, 9, 10)}


ATTENTION_MACS = 2 * 3 * 7 * 9 * 8 + 2 * 3 * 7 * 9 * 10  # q·kᵀ then weights·v


def test_sdpa_counted_on_meta_and_cpu_and_in_inference_mode():
    net = Call(lambda q, k, v: F.scaled_dot_product_attention(q, k, v))
    assert count_macs(net, _attention_inputs()).total == ATTENTION_MACS
    with torch.inference_mode():  # the composite op reaches the counter undecomposed
        assert count_macs(net, _attention_inputs()).total == ATTENTION_MACS


def test_eager_attention_equals_sdpa():
    def eager(q, k, v):
        return torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1) @ v

    assert count_macs(Call(eager), _attention_inputs()).total == ATTENTION_MACS


def test_sdpa_backends_counted_on_real_cpu_tensors():
    """On real CPU tensors SDPA dispatches to the CPU flash kernel, which FlopCounterMode counts as 0."""
    from compbench.counting.macs import MacCounterMode

    mode = MacCounterMode()
    with torch.no_grad(), mode:  # equal head sizes, so the flash kernel is eligible
        F.scaled_dot_product_attention(torch.randn(2, 3, 7, 8), torch.randn(2, 3, 9, 8), torch.randn(2, 3, 9, 8))
    result = mode.result()
    assert result.total == 2 * (2 * 3 * 7 * 9 * 8)
    assert set(result.by_op) == {"aten._scaled_dot_product_flash_attention_for_cpu"}


def test_effective_macs_count_only_nonzero_weights():
    net = nn.Linear(8, 4, bias=False)
    with torch.no_grad():
        net.weight[:, :3] = 0  # 12 of 32 weights are zero
    result = count_macs(net, {"input": torch.randn(5, 8)})
    assert result.total == 5 * 8 * 4
    assert result.effective == 5 * 20


def test_effective_macs_follow_weight_through_functional_use():
    """A weight used directly by a functional op (no Linear module) is still recognised."""
    weight = nn.Parameter(torch.randn(4, 8))
    with torch.no_grad():
        weight[0] = 0
    net = Call(lambda w, x: F.linear(x, w), weight)
    result = count_macs(net, {"x": torch.randn(3, 8)})
    assert (result.total, result.effective) == (96, 72)


def test_elementwise_and_norm_ops_cost_no_macs():
    net = nn.Sequential(nn.LayerNorm(16), nn.GELU(), nn.Dropout(0.1))
    assert count_macs(net.eval(), {"input": torch.randn(4, 16)}).total == 0


def test_unknown_matmul_like_op_is_refused_not_counted_as_zero():
    weight = nn.Parameter(torch.randn(3, 4, 5))
    net = Call(lambda w, a, b: F.bilinear(a, b, w), weight)
    with pytest.raises(UncountedOpError, match="no MAC rule"):
        count_macs(net, {"a": torch.randn(2, 4), "b": torch.randn(2, 5)})


@pytest.mark.parametrize("name,expected", [
    ("aten.mm", True), ("aten.addmm", True), ("aten.linear", True), ("aten._trilinear", True),
    ("aten.convolution", True), ("aten.mkldnn_convolution", True), ("aten.conv_tbc", True),
    ("aten._native_multi_head_attention", True), ("quantized.linear_dynamic", True),
    ("aten.mul", False), ("aten.addcmul", False), ("aten.embedding", False),
    ("prims.convert_element_type", False), ("aten.linalg_vector_norm", False), ("aten.sum", False),
])
def test_matmul_like_detector(name, expected):
    assert looks_like_matmul(name) is expected


def test_counting_does_not_modify_or_allocate_the_model():
    net = nn.Linear(6, 6)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    count_macs(net, {"input": torch.randn(2, 6)})
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.is_meta for p in net.parameters())
    assert not net._forward_hooks and not net._forward_pre_hooks


def test_meta_output_layouts_are_remembered_and_give_the_same_count_and_outputs():
    from compbench.counting import meta

    class Net(nn.Module):  # the same Linear, LayerNorm, GELU and matmul shapes twice; a view and a transpose
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.GELU()) for _ in range(2))

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return (x @ x.transpose(-1, -2)).reshape(2, -1)

    net, x = Net(), torch.randn(2, 5, 8)
    meta._OUTPUT_LAYOUTS.clear()
    first = count_macs(net, {"x": x})
    remembered = len(meta._OUTPUT_LAYOUTS)
    again = count_macs(net, {"x": x})
    assert remembered > 0 and len(meta._OUTPUT_LAYOUTS) == remembered  # the second count computed no new layout
    assert (again.total, again.by_op, again.effective) == (first.total, first.by_op, first.effective)
    assert first.total == 2 * (2 * 5 * 8 * 8) + 2 * 5 * 8 * 5
    assert not any(key[0].overloadpacket in (torch.ops.aten.view, torch.ops.aten.transpose)
                   for key in meta._OUTPUT_LAYOUTS)  # views are run, never remembered
    with torch.device("meta"):
        inputs = torch.empty(3, 8)
    weight = torch.empty(8, 8, device="meta")
    out = meta.run_on_meta(torch.ops.aten.mm.default, (inputs, weight), {})
    twice = meta.run_on_meta(torch.ops.aten.mm.default, (inputs, weight), {})
    assert (out.shape, out.stride(), out.dtype) == (twice.shape, twice.stride(), twice.dtype) == ((3, 8), (8, 1),
                                                                                                   torch.float32)
