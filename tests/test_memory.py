"""Peak memory: live-tensor tracking on CPU, exact on hand-built forwards."""

import torch
from torch import nn

from compbench.timing.memory import LiveTensorBytes, measure_peak_memory


class TwoLive(nn.Module):
    """Holds at most two 1000-float intermediates at once."""

    def forward(self, x):
        a = x * 2
        b = a + 1
        del a
        c = b * 3
        return c


def test_live_tensor_peak_is_exact():
    x = torch.randn(1000)
    tracker = LiveTensorBytes()
    with torch.inference_mode(), tracker:
        out = TwoLive()(x)
    assert tracker.peak == 2 * 4000
    assert tracker.live == 4000  # `out` is still alive
    del out
    assert tracker.live == 0


def test_views_share_their_storage():
    ones = torch.ones(250)
    tracker = LiveTensorBytes()
    with torch.inference_mode(), tracker:
        a = ones + 1  # 1000 bytes
        v = a.view(25, 10)
        del a
        assert tracker.live == 1000  # the view keeps the storage alive
        del v
    assert tracker.live == 0 and tracker.peak == 1000


def test_measure_peak_memory_on_cpu_adds_weights_and_inputs():
    net = nn.Linear(100, 50)
    inputs = {"input": torch.randn(8, 100)}
    result = measure_peak_memory(net, inputs, torch.device("cpu"))
    assert result.weights_bytes == (100 * 50 + 50) * 4
    assert result.inputs_bytes == 8 * 100 * 4
    assert result.activations_peak_bytes == 8 * 50 * 4
    assert result.peak_bytes == result.weights_bytes + result.inputs_bytes + result.activations_peak_bytes
    assert result.method == "live-tensor-tracking"
