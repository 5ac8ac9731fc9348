"""Adaptive, interleaved wall-clock timing.

Several targets (models, variants, input sizes) are timed round-robin, one call of each per
round, so slow drifts in machine speed hit all of them alike and their ratios stay honest.
Each target keeps running until the 95 % CI of its median is within ±``rel_ci`` of it, or its
own time budget is spent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from compbench.timing.device import synchronize
from compbench.timing.stats import LatencyStats, ci_within, summarize


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
    warmup_runs: int = 2
    warmup_s: float = 0.5  # keep warming up until this much time has passed (capped at 50 runs)


Clock = Callable[[], float]


def _timed_call(target: TimingTarget, device: torch.device, clock: Clock) -> float:
    synchronize(device)
    start = clock()
    target.run()
    synchronize(device)
    return clock() - start


def time_interleaved(targets: list[TimingTarget], device: torch.device,
                     policy: TimingPolicy = TimingPolicy(),
                     on_round: Callable[[list[TimingTarget]], None] | None = None,
                     clock: Clock = time.perf_counter) -> dict[str, LatencyStats]:
    """Time every target round-robin; return their latency statistics by name."""
    with torch.inference_mode():
        for target in targets:
            warm_start, runs = clock(), 0
            while runs < policy.warmup_runs or (clock() - warm_start < policy.warmup_s and runs < 50):
                _timed_call(target, device, clock)
                runs += 1
        while not all(t.done for t in targets):
            for target in targets:
                if target.done:
                    continue
                elapsed = _timed_call(target, device, clock)
                target.samples_ms.append(elapsed * 1e3)
                target.spent_s += elapsed
                n = len(target.samples_ms)
                if n >= policy.min_runs and ci_within(target.samples_ms, policy.rel_ci):
                    target.done = target.converged = True
                elif target.spent_s >= policy.budget_s or n >= policy.max_runs:
                    target.done = True
            if on_round:
                on_round(targets)
    return {t.name: summarize(t.samples_ms, converged=t.converged,
                              budget_exhausted=not t.converged) for t in targets}
