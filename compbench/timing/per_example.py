"""Wall-clock per example: several models timed on the same examples, interleaved example by example.

A model whose work depends on its input (early exit) has no single latency: each example costs
what its path through the model costs. :func:`time_per_example` times every model on every
example, one forward per measurement; within a round, each example is run by every model back to
back (the order of the models rotates from round to round), so a slow spell of the machine hits
all models on that example alike. Each example's latency is the median of its rounds.
:func:`per_example_summary` summarises one model's per-example latencies and
:func:`mean_ratio_ci` gives the ratio of two models' mean latencies over the examples with a
paired bootstrap interval (examples resampled with replacement, seeded).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from compbench.timing.device import synchronize
from compbench.timing.stats import MIN_CI_RUNS, summarize
from compbench.timing.wallclock import Clock

MIN_ROUNDS = 3
MAX_ROUNDS = 15
WARMUP_EXAMPLES = 8

ExampleForward = Callable[[int], object]  # runs one model on example i


def time_per_example(forwards: Sequence[ExampleForward], examples: int, device: torch.device, budget_s: float,
                     min_rounds: int = MIN_ROUNDS, max_rounds: int = MAX_ROUNDS,
                     clock: Clock | None = None) -> tuple[list[list[float]], int]:
    """Per model, each example's median latency (ms) over the rounds; and the number of rounds.

    Rounds run until ``min_rounds`` are done and ``budget_s`` (for all models together) is spent,
    or ``max_rounds`` are done."""
    clock = clock or time.perf_counter

    def timed(forward: ExampleForward, index: int) -> float:
        synchronize(device)
        start = clock()
        forward(index)
        synchronize(device)
        return (clock() - start) * 1e3
    for forward in forwards:  # warm up allocator and kernels on a few examples
        for index in range(min(WARMUP_EXAMPLES, examples)):
            forward(index)
    samples = [[[] for _ in range(examples)] for _ in forwards]
    started = clock()
    rounds = 0
    while rounds < max_rounds and (rounds < min_rounds or clock() - started < budget_s):
        order = [(rounds + k) % len(forwards) for k in range(len(forwards))]
        for index in range(examples):
            for model in order:
                samples[model][index].append(timed(forwards[model], index))
        rounds += 1
    return [[float(np.median(times)) for times in per_model] for per_model in samples], rounds


def per_example_summary(latencies_ms: Sequence[float], rounds: int) -> dict:
    """``latency_ms`` of a model timed per example: the median example (with its 95 % interval), p90,
    mean; ``samples`` are the examples' latencies in example order."""
    stats = summarize(list(latencies_ms), converged=True).to_dict()
    stats.update(p90=float(np.percentile(latencies_ms, 90)), mean=float(np.mean(latencies_ms)),
                 examples=len(latencies_ms), rounds=rounds, per_example=True)
    stats["runs"] = rounds  # timed forwards per example
    return stats


def mean_ratio_ci(numerator_ms: Sequence[float], denominator_ms: Sequence[float], confidence: float = 0.95,
                  resamples: int = 2000, seed: int = 0) -> tuple[float, float] | None:
    """A ``confidence`` interval of ``mean(numerator) / mean(denominator)`` over paired examples (bootstrap)."""
    numerator, denominator = np.asarray(numerator_ms, dtype=float), np.asarray(denominator_ms, dtype=float)
    if len(numerator) != len(denominator):
        raise ValueError("per-example latencies must be paired: one of each model per example")
    if len(numerator) < MIN_CI_RUNS:
        return None
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(numerator), size=(resamples, len(numerator)))
    ratios = numerator[index].mean(axis=1) / denominator[index].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return float(low), float(high)
