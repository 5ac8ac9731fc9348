"""Hard-concrete gates: the probability of not being zero, sampled and as the formula says; the deterministic
gates keep as many units as are expected, the best; a draw lies in [0, 1] and is exactly 0 or 1 often."""

import math

import pytest
import torch

from compbench.importance.hard_concrete import BETA, GAMMA, ZETA, HardConcrete


def test_a_fresh_gate_is_kept_with_the_probability_asked_and_draws_match_it():
    gates = HardConcrete(20_000, keep=0.8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(gates.probability_kept(), torch.full((20_000,), 0.8))
    gates.train()
    draws = gates().detach()
    assert float((draws > 0).float().mean()) == pytest.approx(0.8, abs=0.01)
    assert float(draws.min()) == 0.0 and float(draws.max()) == 1.0 and 0 < float((draws == 1).float().mean()) < 1


def test_the_probability_is_louizos_formula_and_differentiable():
    gates = HardConcrete(3)
    with torch.no_grad():
        gates.log_alpha.copy_(torch.tensor([-3.0, 0.0, 2.5]))
    expected = [1 / (1 + math.exp(-(a - BETA * math.log(-GAMMA / ZETA)))) for a in (-3.0, 0.0, 2.5)]
    assert gates.probability_kept().tolist() == pytest.approx(expected)
    gates.expected_kept().backward()
    assert torch.all(gates.log_alpha.grad > 0)


def test_deterministic_gates_keep_the_expected_number_of_units_with_the_largest_log_alpha():
    gates = HardConcrete(6)
    with torch.no_grad():
        gates.log_alpha.copy_(torch.tensor([4.0, -6.0, 0.5, -6.0, 4.0, -3.0]))
    kept = round(float(gates.expected_kept().detach()))
    gates.eval()
    values = gates().detach()
    assert kept == 3 and torch.nonzero(values).flatten().tolist() == [0, 2, 4]
    assert float(values[0]) == pytest.approx(1 / (1 + math.exp(-0.8 * 4.0 / BETA)))
    with pytest.raises(ValueError, match="keep"):
        HardConcrete(2, keep=1.0)
