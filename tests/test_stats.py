"""Median, IQR and the distribution-free 95 % CI of the median."""

import math

import numpy as np
import pytest

from compbench.timing.stats import ci_within, median_ci_ranks, paired_ratio_ci, summarize


def coverage(n, lo):
    return 1 - 2 * sum(math.comb(n, i) for i in range(lo + 1)) / 2**n


@pytest.mark.parametrize("n,expected", [(5, None), (6, (0, 5)), (10, (1, 8)), (20, (5, 14)), (50, (17, 32))])
def test_ci_ranks_match_the_order_statistic_table(n, expected):
    assert median_ci_ranks(n) == expected


@pytest.mark.parametrize("n", range(6, 80))
def test_ci_ranks_are_the_narrowest_with_95_percent_coverage(n):
    lo, hi = median_ci_ranks(n)
    assert hi == n - 1 - lo
    assert coverage(n, lo) >= 0.95
    assert coverage(n, lo + 1) < 0.95


def test_summary_of_known_samples():
    samples = [5.0, 1.0, 4.0, 2.0, 3.0, 9.0, 7.0, 8.0, 6.0, 10.0]
    stats = summarize(samples)
    assert stats.median == 5.5
    assert stats.iqr == pytest.approx(7.75 - 3.25)
    assert (stats.ci95_low, stats.ci95_high) == (2.0, 9.0)  # 2nd and 9th of 10
    assert stats.runs == 10
    assert stats.samples == samples  # raw, in measured order


def test_too_few_samples_have_no_interval():
    stats = summarize([1.0, 2.0, 3.0])
    assert stats.ci95_low is None and stats.ci_relative_halfwidth is None
    assert not ci_within([1.0, 2.0, 3.0], 0.5)


def test_ci_within_tolerance():
    tight = [100.0 + 0.1 * (i % 5) for i in range(20)]
    assert ci_within(tight, 0.02)
    loose = [100.0 + 10 * (i % 5) for i in range(20)]
    assert not ci_within(loose, 0.02)


def test_paired_ratio_interval_of_an_exact_ratio_is_a_point():
    dense = [100.0, 300.0, 100.0, 300.0, 120.0, 280.0, 100.0, 300.0]  # a machine drifting between rounds
    variant = [d / 2 for d in dense]
    assert paired_ratio_ci(dense, variant) == (2.0, 2.0)


def test_pairing_cancels_drift_that_unpaired_samples_cannot():
    rng = np.random.default_rng(1)
    drift = rng.choice([1.0, 3.0], size=40)  # each round fast or slow for both targets alike
    noise = rng.normal(1.0, 0.01, size=(2, 40))
    dense, variant = 100 * drift * noise[0], 50 * drift * noise[1]
    low, high = paired_ratio_ci(list(dense), list(variant))
    assert low <= 2.0 <= high and high - low < 0.03
    unpaired_low, unpaired_high = paired_ratio_ci(list(dense), list(rng.permutation(variant)))
    assert unpaired_high - unpaired_low > 10 * (high - low)


def test_paired_ratio_interval_needs_six_pairs_and_uses_only_paired_rounds():
    assert paired_ratio_ci([1.0] * 5, [1.0] * 9) is None
    assert paired_ratio_ci([2.0] * 6, [1.0] * 6 + [50.0] * 20) == (2.0, 2.0)


def test_paired_ratio_interval_covers_the_true_ratio():
    covered = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        drift = rng.lognormal(0, 0.1, size=20)
        dense = 150 * drift * rng.lognormal(0, 0.03, size=20)
        variant = 100 * drift * rng.lognormal(0, 0.03, size=20)
        low, high = paired_ratio_ci(list(dense), list(variant))
        covered += low <= 1.5 <= high
    assert covered >= 90  # nominal 95 % (99 of these 100 seeds)
