"""Seeds from a power computation: the noncentral-t power against simulated t tests, the sign-flip
test's simulated power against the zoo's own test on the same draws, and its floor."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from zoo.compare.stats import (
    contrasts,
    paired_t_power,
    seeds_needed,
    sign_flip_min_seeds,
    sign_flip_power,
    sign_flip_test,
)


@pytest.mark.parametrize("effect,n,level", [(1.0, 10, 0.05), (1.0, 9, 0.05), (0.6, 12, 0.05 / 3)])
def test_paired_t_power_matches_simulated_t_tests(effect: float, n: int, level: float) -> None:
    rng = np.random.default_rng(7)
    d = rng.normal(effect, 1.0, size=(20_000, n))
    simulated = float(np.mean(scipy.stats.ttest_1samp(d, 0.0, axis=1).pvalue <= level))
    assert paired_t_power(effect, n, level) == pytest.approx(simulated, abs=0.012)  # 3.5 standard errors


def test_seeds_needed_is_the_first_n_with_enough_power() -> None:
    for arms in (2, 3):
        level = 0.05 / contrasts(arms)
        n = seeds_needed(1.0, 1.0, tests=contrasts(arms))
        assert paired_t_power(1.0, n, level) >= 0.8 > paired_t_power(1.0, n - 1, level)


def test_sign_flip_power_counts_the_zoo_test_on_the_same_draws() -> None:
    effect, n, sims, level = 0.9, 7, 300, 0.05
    d = np.random.default_rng(0).normal(effect, 1.0, size=(sims, n))  # sign_flip_power's draws (seed 0)
    expected = np.mean([sign_flip_test(row)[0] <= level for row in d])
    assert sign_flip_power(effect, n, level, sims=sims, seed=0) == pytest.approx(expected)


def test_sign_flip_power_has_the_floor_and_approaches_the_t_test() -> None:
    assert sign_flip_min_seeds(0.05, contrasts(3)) == 7  # 2/2^7 = 0.0156 <= 0.0167 < 2/2^6
    assert sign_flip_power(3.0, 6, 0.05 / 3) == 0.0  # no p can reach the level however large the effect
    assert sign_flip_power(3.0, 7, 0.05 / 3) > 0.9
    assert sign_flip_power(1.0, 12, 0.05, sims=3000) == pytest.approx(paired_t_power(1.0, 12, 0.05), abs=0.05)


def test_contrasts() -> None:
    assert [contrasts(k) for k in (2, 3, 7)] == [1, 3, 21]
    with pytest.raises(ValueError, match="at least 2 arms"):
        contrasts(1)
