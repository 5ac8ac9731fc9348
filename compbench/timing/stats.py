"""Robust summary statistics of timing samples: median, IQR, a 95 % CI of the median, and a
95 % CI of a speedup from paired rounds."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class LatencyStats:
    """Summary of wall-clock samples in milliseconds; the raw samples are kept."""

    median: float
    iqr: float
    ci95_low: float | None
    ci95_high: float | None
    runs: int
    samples: list[float]
    converged: bool  # the CI reached the target width before the budget ran out
    budget_exhausted: bool

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def ci_relative_halfwidth(self) -> float | None:
        """The larger distance from the median to a CI end, as a fraction of the median."""
        if self.ci95_low is None or self.ci95_high is None:
            return None
        return max(self.median - self.ci95_low, self.ci95_high - self.median) / self.median


def _binomial_cdf(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


MIN_CI_RUNS = 6  # the fewest samples with a distribution-free 95 % interval of the median (see below)


def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int] | None:
    """0-based ranks (lo, hi) of sorted samples bracketing the median with >= ``confidence``.

    Distribution-free: the interval [x_(lo), x_(hi)] covers the population median with
    probability 1 - 2 P(Binomial(n, 1/2) <= lo). None when n is too small for any interval
    of that confidence (n < 6 at 95 %).
    """
    alpha = 1 - confidence
    best = None
    for lo in range(n // 2 + 1):
        if 2 * _binomial_cdf(lo, n) <= alpha:
            best = lo
        else:
            break
    if best is None:
        return None
    return best, n - 1 - best


def summarize(samples_ms: list[float], converged: bool = False,
              budget_exhausted: bool = False) -> LatencyStats:
    data = np.sort(np.asarray(samples_ms, dtype=float))
    q1, median, q3 = np.percentile(data, [25, 50, 75])
    ranks = median_ci_ranks(len(data))
    low, high = (float(data[ranks[0]]), float(data[ranks[1]])) if ranks else (None, None)
    return LatencyStats(median=float(median), iqr=float(q3 - q1), ci95_low=low, ci95_high=high,
                        runs=len(data), samples=[float(s) for s in samples_ms],
                        converged=converged, budget_exhausted=budget_exhausted)


def ci_within(samples_ms: list[float], tolerance: float) -> bool:
    """True when the 95 % CI of the median lies within ±tolerance (a fraction) of it."""
    stats = summarize(samples_ms)
    width = stats.ci_relative_halfwidth
    return width is not None and width <= tolerance


def paired_ratio_ci(numerator_ms: list[float], denominator_ms: list[float], confidence: float = 0.95,
                    resamples: int = 2000, seed: int = 0) -> tuple[float, float] | None:
    """A ``confidence`` interval of ``median(numerator) / median(denominator)`` from paired rounds.

    Sample ``i`` of both lists must come from the same round of interleaved timing (see
    :mod:`compbench.timing.wallclock`); rounds beyond the shorter list are unpaired and left out.
    Whole rounds are resampled with replacement (a paired bootstrap, seeded, so the interval is
    reproducible) and the percentile interval of the ratio of medians is returned. Resampling
    rounds keeps each pair together, so a slow spell of the machine that hit both targets in one
    round cancels in the ratio instead of widening the interval. None below ``MIN_CI_RUNS`` pairs
    (as for :func:`median_ci_ranks`)."""
    pairs = min(len(numerator_ms), len(denominator_ms))
    if pairs < MIN_CI_RUNS:
        return None
    top = np.asarray(numerator_ms[:pairs], dtype=float)
    bottom = np.asarray(denominator_ms[:pairs], dtype=float)
    rounds = np.random.default_rng(seed).integers(0, pairs, size=(resamples, pairs))
    ratios = np.median(top[rounds], axis=1) / np.median(bottom[rounds], axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha])
    return float(low), float(high)
