"""Adaptive interleaved timing, driven by a fake clock so every outcome is exact."""

from dataclasses import replace

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
    assert calls[:3] == ["a", "a", "b"]  # the first target warms the machine; the next warms up with one run
    timed = calls[3:]
    assert timed[:20] == ["a", "b"] * 10
    assert stats["a"].median == 125.0 and stats["b"].median == 375.0


def test_unpaired_a_converged_target_drops_out_while_a_noisy_one_continues():
    clock, calls = FakeClock(), []
    steady = target("s", clock, lambda n: 0.125, calls)
    noisy = target("n", clock, lambda n: 0.125 if n % 2 else 0.25, calls)
    stats = time_interleaved([steady, noisy], torch.device("cpu"), replace(POLICY, paired=False), clock=clock)
    assert stats["s"].runs == 10
    assert stats["n"].runs > 10
    assert calls[3 + 20:] == ["n"] * (stats["n"].runs - 10)


def test_paired_targets_run_in_lock_step_until_the_noisy_one_spends_its_budget():
    clock, calls = FakeClock(), []
    steady = target("s", clock, lambda n: 0.125, calls)
    noisy = target("n", clock, lambda n: 0.125 if n % 2 else 0.25, calls)
    stats = time_interleaved([steady, noisy], torch.device("cpu"), POLICY, clock=clock)
    runs = stats["n"].runs
    assert stats["s"].runs == runs > 10  # every round timed both: each round is a pair
    assert calls[3:] == ["s", "n"] * runs
    assert stats["s"].converged and not stats["n"].converged and stats["n"].budget_exhausted
    assert sum(stats["n"].samples) / 1e3 >= POLICY.budget_s > sum(stats["n"].samples[:-1]) / 1e3


def test_paired_targets_stop_together_once_all_have_converged():
    clock, calls = FakeClock(), []
    a = target("a", clock, lambda n: 0.125, calls)
    b = target("b", clock, lambda n: 0.375, calls)
    stats = time_interleaved([a, b], torch.device("cpu"), POLICY, clock=clock)
    assert stats["a"].runs == stats["b"].runs == POLICY.min_runs
    assert stats["a"].converged and stats["b"].converged


def test_max_runs_ends_the_rounds_of_a_target_that_does_not_converge():
    clock, calls = FakeClock(), []
    steady = target("s", clock, lambda n: 0.125, calls)
    noisy = target("n", clock, lambda n: 0.125 if n % 2 else 0.25, calls)
    stats = time_interleaved([steady, noisy], torch.device("cpu"), replace(POLICY, max_runs=12), clock=clock)
    assert stats["s"].runs == stats["n"].runs == 12
    assert stats["s"].converged and not stats["n"].converged
