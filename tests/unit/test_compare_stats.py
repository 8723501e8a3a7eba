"""Bootstrap intervals: against scipy.stats.bootstrap (percentile), exact enumeration, and known cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats

from zoo.compare.stats import bootstrap_ci, bootstrap_diff_ci, bootstrap_distribution

SCORES = [0.61, 0.55, 0.70, 0.64, 0.58, 0.66, 0.52]


@pytest.mark.parametrize("statistic", ["mean", "median"])
def test_matches_scipy_percentile_bootstrap(statistic: str) -> None:
    fn = np.mean if statistic == "mean" else np.median
    ref = scipy.stats.bootstrap((np.asarray(SCORES),), fn, method="percentile", confidence_level=0.95,
                                n_resamples=20_000, rng=np.random.default_rng(12345), vectorized=True)
    est = bootstrap_ci(SCORES, statistic, n_resamples=20_000, seed=0)  # a different random stream
    assert est.point == pytest.approx(float(fn(SCORES)))
    # Two independent Monte Carlo estimates of the same quantiles: equal up to resampling noise.
    assert est.low == pytest.approx(ref.confidence_interval.low, abs=0.005)
    assert est.high == pytest.approx(ref.confidence_interval.high, abs=0.005)
    assert est.low < est.point < est.high


def test_same_generator_gives_scipys_interval() -> None:
    """Same resampling scheme as scipy: with the same generator, the same numbers."""
    ref = scipy.stats.bootstrap((np.asarray(SCORES),), np.mean, method="percentile", n_resamples=5000,
                                rng=np.random.default_rng(7), vectorized=True)
    est = bootstrap_ci(SCORES, "mean", n_resamples=5000, seed=7)
    assert (est.low, est.high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), abs=1e-9)


def test_against_exact_enumeration_of_all_resamples() -> None:
    """n = 4: all 4**4 equally likely resamples give the exact bootstrap distribution of the mean."""
    x = np.array([0.2, 0.5, 0.55, 0.9])
    exact = np.sort([x[list(idx)].mean() for idx in itertools.product(range(4), repeat=4)])
    lo, hi = np.quantile(exact, [0.025, 0.975])
    est = bootstrap_ci(x, "mean", n_resamples=50_000, seed=3)
    assert est.low == pytest.approx(lo, abs=0.02)
    assert est.high == pytest.approx(hi, abs=0.02)


def test_three_seeds_median_interval_is_the_range() -> None:
    """The median of a resample of 3 values is the smallest with probability 7/27 (> 2.5%), so the
    95% interval of the median is exactly [min, max]: three seeds cannot say more."""
    est = bootstrap_ci([0.71, 0.64, 0.80], "median")
    assert (est.point, est.low, est.high) == (0.71, 0.64, 0.80)
    dist = bootstrap_distribution([0.71, 0.64, 0.80], "median", n_resamples=27_000, seed=1)
    assert np.mean(dist == 0.64) == pytest.approx(7 / 27, abs=0.01)


def test_one_value_has_no_interval_and_constant_values_a_point_interval() -> None:
    one = bootstrap_ci([0.5])
    assert one.point == 0.5 and not one.has_interval and math.isnan(one.low)
    assert not one.excludes(0.0)
    same = bootstrap_ci([0.5, 0.5, 0.5], "mean")
    assert (same.low, same.high) == (0.5, 0.5)


def test_deterministic_for_a_seed_and_different_across_seeds() -> None:
    a = bootstrap_ci(SCORES, "mean", n_resamples=2000, seed=5)
    b = bootstrap_ci(SCORES, "mean", n_resamples=2000, seed=5)
    c = bootstrap_ci(SCORES, "mean", n_resamples=2000, seed=6)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)


def test_paired_difference_resamples_per_seed_differences() -> None:
    a = [0.70, 0.62, 0.75, 0.66]
    b = [0.65, 0.60, 0.71, 0.60]  # b is below a on every seed, by 0.02 .. 0.06
    paired = bootstrap_diff_ci(a, b, paired=True, statistic="mean")
    direct = bootstrap_ci(np.subtract(a, b), "mean")
    assert (paired.point, paired.low, paired.high) == pytest.approx((direct.point, direct.low, direct.high))
    assert paired.excludes(0.0) and paired.low >= 0.02 - 1e-12
    # Unpaired, the between-seed spread (0.60 .. 0.75) swamps the 0.04 difference.
    unpaired = bootstrap_diff_ci(a, b, paired=False, statistic="mean")
    assert unpaired.point == pytest.approx(np.mean(a) - np.mean(b))
    assert unpaired.low < 0 < unpaired.high


def test_unpaired_difference_of_separated_groups_excludes_zero() -> None:
    est = bootstrap_diff_ci([0.9, 0.92, 0.91], [0.5, 0.52, 0.49, 0.51], paired=False, statistic="median")
    assert est.point == pytest.approx(0.91 - 0.505)
    assert est.low > 0.3 and est.excludes(0.0)


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="finite"):
        bootstrap_ci([0.5, float("nan")])
    with pytest.raises(ValueError, match="equal sizes"):
        bootstrap_diff_ci([0.1, 0.2], [0.3], paired=True)
    with pytest.raises(ValueError, match="unknown statistic"):
        bootstrap_ci([0.1, 0.2], "mode")
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([0.1, 0.2], confidence=1.5)
