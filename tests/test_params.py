"""Parameter counts on purpose-built nets."""

import torch
from torch import nn

from compbench.counting.params import count_params


def test_total_nonzero_and_components():
    net = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].bias.fill_(1.0)
        net[1].weight.fill_(2.0)
    result = count_params(net, lambda name: "first" if name == "0" else "second")
    assert result.total == 4 * 3 + 3 + 3 * 2
    assert result.nonzero == 3 + 6
    assert result.by_component == {"first": 15, "second": 6}
    assert result.nonzero_by_component == {"first": 3, "second": 6}


def test_tied_weights_are_counted_once():
    embed = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = embed.weight
    net = nn.ModuleDict({"embed": embed, "head": head})
    assert count_params(net).total == 40


def test_meta_parameters_have_unknown_nonzero():
    with torch.device("meta"):
        net = nn.Linear(5, 5)
    result = count_params(net)
    assert result.total == 30
    assert result.nonzero is None and result.nonzero_by_component is None
