"""Median, IQR and the distribution-free 95 % CI of the median."""

import math

import pytest

from compbench.timing.stats import ci_within, median_ci_ranks, summarize


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
