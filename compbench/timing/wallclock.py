"""Adaptive, interleaved wall-clock timing.

Several targets (models, variants, input sizes) are timed round-robin, one call of each per
round, so slow drifts in machine speed hit all of them alike and their ratios stay honest.

By default (``paired``) the targets run in lock-step: every round times every target, until the
95 % CI of every median is within ±``rel_ci`` of it or a target has spent its time budget. So
sample ``i`` of every target comes from round ``i``, and each round is a pair of samples for any
two targets, which gives a speedup its own interval (:func:`compbench.timing.stats.paired_ratio_ci`).
With ``paired=False`` a target drops out as soon as its own CI is narrow enough or its own budget
is spent (cheaper with many targets; the first rounds are still pairs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from compbench.timing.device import synchronize
from compbench.timing.stats import MIN_CI_RUNS, LatencyStats, ci_within, summarize


@dataclass
class TimingTarget:
    name: str
    run: Callable[[], object]  # one forward pass
    samples_ms: list[float] = field(default_factory=list)
    spent_s: float = 0.0
    done: bool = False
    converged: bool = False


@dataclass(frozen=True)
class TimingPolicy:
    budget_s: float = 30.0  # per target
    rel_ci: float = 0.02
    min_runs: int = 10
    max_runs: int = 10_000
    warmup_runs: int = 2  # the first target's; every other target warms up with one run (time_interleaved)
    warmup_s: float = 0.5  # the first target keeps warming up until this much time has passed (capped at 50 runs)
    paired: bool = True  # lock-step rounds: all targets stop together, every round is a pair

    def problems(self) -> dict[str, str]:
        """Settings a user gave that cannot work, by field name: ``{"budget_s": "must be > 0 seconds, got 0"}``."""
        found = {}
        if not self.budget_s > 0:
            found["budget_s"] = f"must be > 0 seconds, got {self.budget_s:g}"
        if not 0 < self.rel_ci < 1:
            found["rel_ci"] = f"must be between 0 and 1, got {self.rel_ci:g}"
        if self.max_runs < MIN_CI_RUNS:
            found["max_runs"] = f"must be >= {MIN_CI_RUNS} (the fewest runs with a 95% interval), got {self.max_runs}"
        return found


Clock = Callable[[], float]


def _timed_call(target: TimingTarget, device: torch.device, clock: Clock) -> float:
    synchronize(device)
    start = clock()
    target.run()
    synchronize(device)
    return clock() - start


def _converged(target: TimingTarget, policy: TimingPolicy) -> bool:
    return len(target.samples_ms) >= policy.min_runs and ci_within(target.samples_ms, policy.rel_ci)


def _exhausted(target: TimingTarget, policy: TimingPolicy) -> bool:
    return target.spent_s >= policy.budget_s or len(target.samples_ms) >= policy.max_runs


def _stop_alone(target: TimingTarget, policy: TimingPolicy) -> None:
    if _converged(target, policy):
        target.done = target.converged = True
    elif _exhausted(target, policy):
        target.done = True


def _stop_together(targets: list[TimingTarget], policy: TimingPolicy) -> None:
    converged = [_converged(t, policy) for t in targets]
    if all(converged) or any(_exhausted(t, policy) for t in targets):
        for target, ok in zip(targets, converged, strict=True):
            target.done, target.converged = True, ok


def time_interleaved(targets: list[TimingTarget], device: torch.device,
                     policy: TimingPolicy = TimingPolicy(),
                     on_round: Callable[[list[TimingTarget]], None] | None = None,
                     clock: Clock = time.perf_counter) -> dict[str, LatencyStats]:
    """Time every target in rounds, one call each per round; return their latency statistics by name."""
    with torch.inference_mode():
        for index, target in enumerate(targets):
            # the machine is warmed once, by the first target (its clocks, threads and allocator); every other
            # target pays its own one-time costs (kernels chosen, memory taken) in one run: the rounds interleave
            # every target, so a second run would leave no more of it in the caches than the first
            runs_needed, seconds_needed = (policy.warmup_runs, policy.warmup_s) if index == 0 else \
                (min(1, policy.warmup_runs), 0.0)
            warm_start, runs = clock(), 0
            while runs < runs_needed or (clock() - warm_start < seconds_needed and runs < 50):
                _timed_call(target, device, clock)
                runs += 1
        while not all(t.done for t in targets):
            for target in targets:
                if target.done:
                    continue
                elapsed = _timed_call(target, device, clock)
                target.samples_ms.append(elapsed * 1e3)
                target.spent_s += elapsed
            if policy.paired:
                _stop_together(targets, policy)
            else:
                for target in targets:
                    if not target.done:
                        _stop_alone(target, policy)
            if on_round:
                on_round(targets)
    return {t.name: summarize(t.samples_ms, converged=t.converged,
                              budget_exhausted=not t.converged) for t in targets}
