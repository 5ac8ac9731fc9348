"""Adaptive interleaved timing, driven by a fake clock so every outcome is exact."""

import torch

from compbench.timing.wallclock import TimingPolicy, TimingTarget, time_interleaved


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def target(name, clock, durations, calls):
    """A target whose n-th call takes durations(n) seconds on the fake clock (binary-exact values)."""
    count = {"n": 0}

    def run():
        calls.append(name)
        clock.now += durations(count["n"])
        count["n"] += 1

    return TimingTarget(name, run)


POLICY = TimingPolicy(budget_s=10.0, rel_ci=0.02, min_runs=10, warmup_runs=2, warmup_s=0.0)


def test_steady_target_stops_at_min_runs_with_a_converged_interval():
    clock, calls = FakeClock(), []
    stats = time_interleaved([target("a", clock, lambda n: 0.125, calls)], torch.device("cpu"), POLICY, clock=clock)
    a = stats["a"]
    assert a.runs == 10 and a.converged and not a.budget_exhausted
    assert a.median == 125.0 and a.iqr == 0.0
    assert len(calls) == 2 + 10  # warm-up runs are not samples


def test_noisy_target_runs_until_its_budget_and_says_so():
    clock, calls = FakeClock(), []
    noisy = target("n", clock, lambda n: 0.125 if n % 2 else 0.25, calls)
    stats = time_interleaved([noisy], torch.device("cpu"), POLICY, clock=clock)
    n = stats["n"]
    assert not n.converged and n.budget_exhausted
    assert sum(n.samples) / 1e3 >= POLICY.budget_s
    assert sum(n.samples) / 1e3 - POLICY.budget_s <= 0.25  # stopped on the first run past budget


def test_targets_are_timed_round_robin():
    clock, calls = FakeClock(), []
    a = target("a", clock, lambda n: 0.125, calls)
    b = target("b", clock, lambda n: 0.375, calls)
    stats = time_interleaved([a, b], torch.device("cpu"), POLICY, clock=clock)
    timed = calls[4:]  # after two warm-up calls each
    assert timed[:20] == ["a", "b"] * 10
    assert stats["a"].median == 125.0 and stats["b"].median == 375.0


def test_a_converged_target_drops_out_while_a_noisy_one_continues():
    clock, calls = FakeClock(), []
    steady = target("s", clock, lambda n: 0.125, calls)
    noisy = target("n", clock, lambda n: 0.125 if n % 2 else 0.25, calls)
    stats = time_interleaved([steady, noisy], torch.device("cpu"), POLICY, clock=clock)
    assert stats["s"].runs == 10
    assert stats["n"].runs > 10
    assert calls[4 + 20:] == ["n"] * (stats["n"].runs - 10)
