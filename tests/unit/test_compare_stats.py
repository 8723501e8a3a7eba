"""Statistics of a comparison: against scipy on the same data, published values, hand-computed cases,
and coverage on simulated data whose truth is known (seeded, small)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from sklearn.metrics import f1_score, matthews_corrcoef

from zoo.compare.results import item_values
from zoo.compare.stats import (
    bootstrap_ci,
    compare_seeds,
    holm,
    item_metric,
    median_interval,
    order_coverage,
    seed_estimate,
    seed_item_test,
    seeds_needed,
    sign_flip_min_seeds,
    sign_flip_test,
    t_interval,
)

SCORES = [0.61, 0.55, 0.70, 0.64, 0.58, 0.66, 0.52]


# --- against scipy -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("diffs", [
    [0.3, -0.1, 0.5, 0.2, 0.4, 0.1],
    [0.02, 0.01, 0.03, -0.01, 0.015],
    [1.0, -1.0, 1.0, -1.0],  # ties of |mean| across patterns
    [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
    [-0.2, 0.1, -0.4, 0.05, -0.3, -0.1, 0.2],
])
def test_sign_flip_test_equals_scipy_exact_paired_permutation_test(diffs: list[float]) -> None:
    d = np.asarray(diffs)
    ref = scipy.stats.permutation_test((d, np.zeros_like(d)), lambda x, y, axis: np.mean(x - y, axis=axis),
                                       permutation_type="samples", n_resamples=np.inf, vectorized=True,
                                       alternative="two-sided")
    p, exact = sign_flip_test(d)
    assert exact and p == pytest.approx(ref.pvalue, abs=1e-12)


def test_sign_flip_test_counts_patterns() -> None:
    """All n positive: only the all-positive and all-negative patterns reach |mean|: p = 2 / 2^n."""
    for n in (1, 3, 5, 6, 10):
        assert sign_flip_test(np.linspace(0.1, 0.5, n))[0] == pytest.approx(2 / 2**n)
    assert sign_flip_test([0.0, 0.0, 0.0])[0] == 1.0


def test_item_test_with_one_seed_has_scipys_paired_bootstrap_standard_error() -> None:
    rng = np.random.default_rng(4)
    a = (rng.random(300) < 0.72).astype(float)
    b = (rng.random(300) < 0.64).astype(float)
    ref = scipy.stats.bootstrap((a, b), lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                                paired=True, vectorized=True, method="percentile", n_resamples=20_000,
                                rng=np.random.default_rng(1))
    ours = seed_item_test(a[None], b[None], n_resamples=20_000, seed=2)  # one seed: items only
    assert ours.diff.point == pytest.approx(a.mean() - b.mean())
    assert ours.conditional and ours.se_seeds == 0.0 and math.isnan(ours.p_seeds)
    # two independent Monte Carlo estimates of the same standard error
    assert ours.se_items == pytest.approx(ref.standard_error, rel=0.03)
    assert ours.diff.low == pytest.approx(ref.confidence_interval.low, abs=0.006)
    assert ours.diff.high == pytest.approx(ref.confidence_interval.high, abs=0.006)


def test_item_level_p_is_the_paired_z_test_for_one_seed() -> None:
    """One seed, accuracy: the bootstrap standard error of a paired mean difference is sd(d) / sqrt(N)
    (up to sqrt((N-1)/N) and resampling noise), so p is the paired z test's; and far below 1/R."""
    rng = np.random.default_rng(8)
    a = (rng.random(2000) < 0.75).astype(float)
    b = (rng.random(2000) < 0.70).astype(float)
    d = a - b
    z = d.mean() / (d.std(ddof=1) / math.sqrt(d.size))
    ours = seed_item_test(a[None], b[None], n_resamples=4000, seed=1)
    assert ours.p == pytest.approx(2 * scipy.stats.norm.sf(abs(z)), rel=0.25)
    assert ours.p == pytest.approx(scipy.stats.ttest_rel(a, b).pvalue, rel=0.3)
    assert ours.p < 1 / 4000  # no floor at 1 / n_resamples


def test_percentile_bootstrap_matches_scipy_with_the_same_generator() -> None:
    ref = scipy.stats.bootstrap((np.asarray(SCORES),), np.mean, method="percentile", n_resamples=5000,
                                rng=np.random.default_rng(7), vectorized=True)
    est = bootstrap_ci(SCORES, "mean", n_resamples=5000, seed=7)
    assert (est.low, est.high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), abs=1e-9)


def test_t_interval_and_welch_match_scipy() -> None:
    est = t_interval(SCORES)
    lo, hi = scipy.stats.t.interval(0.95, len(SCORES) - 1, loc=np.mean(SCORES), scale=scipy.stats.sem(SCORES))
    assert (est.point, est.low, est.high) == pytest.approx((np.mean(SCORES), lo, hi), rel=1e-12)
    a, b = [0.9, 0.92, 0.91, 0.95], [0.5, 0.52, 0.49, 0.6, 0.55]
    ours = compare_seeds(a, b, paired=False)
    ref = scipy.stats.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert ours.p == pytest.approx(ref.pvalue, rel=1e-9)
    assert (ours.diff.low, ours.diff.high) == pytest.approx((ci.low, ci.high), rel=1e-9)


# --- published and hand-computed values ----------------------------------------------------------------------

def test_order_statistic_coverage_known_values() -> None:
    assert order_coverage(3, 1) == pytest.approx(0.75)  # [min, max] of 3 values
    assert order_coverage(5, 1) == pytest.approx(1 - 2 / 32)  # 93.75%
    assert order_coverage(20, 6) == pytest.approx(0.9586, abs=1e-4)  # the textbook (6th, 15th) of 20
    est = median_interval(np.arange(20.0))
    assert (est.low, est.high) == (5.0, 14.0) and est.label == "95.9% order-statistic"
    five = median_interval([3.0, 1.0, 5.0, 2.0, 4.0])
    assert (five.point, five.low, five.high, five.label) == (3.0, 1.0, 5.0, "93.8% order-statistic")


def test_holm_hand_computed() -> None:
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> raised to 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.2]) == pytest.approx([0.5, 0.4])
    assert holm([0.3, 0.6, 0.9]) == pytest.approx([0.9, 1.0, 1.0])  # capped at 1
    out = holm([0.01, float("nan"), 0.02])  # NaN neither counts nor moves
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)
    assert holm([]) == []


def test_seeds_needed_matches_published_power_tables() -> None:
    """Paired t test, alpha 0.05 two-sided, power 0.8 (G*Power / Cohen): d = 0.5 -> 34, 0.8 -> 15, 1.0 -> 10."""
    assert seeds_needed(0.5, 1.0) == 34
    assert seeds_needed(0.8, 1.0) == 15
    assert seeds_needed(-1.0, 1.0) == 10
    assert seeds_needed(5.0, 1.0) == 6  # a huge effect still needs the 6 seeds the sign-flip test needs
    assert [seeds_needed(e, 1.0) for e in (3.0, 5.7, 50.0)] == [6, 6, 6]  # scipy's NaN far in the tail
    assert seeds_needed(0.0, 1.0) is None


def test_item_metrics_equal_sklearn_on_the_same_predictions() -> None:
    rng = np.random.default_rng(3)
    y, pred = rng.integers(0, 2, 500), rng.integers(0, 2, 500)
    codes = (2 * y + pred).astype(float)
    assert item_metric(codes, "f1") == pytest.approx(f1_score(y, pred))
    assert item_metric(codes, "mcc") == pytest.approx(matthews_corrcoef(y, pred))
    assert item_metric(codes, "accuracy_f1") == pytest.approx(((y == pred).mean() + f1_score(y, pred)) / 2)
    assert item_metric(np.zeros(10) + 2, "mcc") == 0.0  # constant prediction: 0, as sklearn says


def test_item_values_by_task_kind() -> None:
    refs = {"dev": [1, 0, 1, 1]}
    preds = [{"dev": [1, 1, 1, 0]}, {"dev": [1, 0, 1, 1]}]
    acc = item_values(("accuracy",), False, 1, preds, refs)
    assert acc.metric == "mean" and acc.values.tolist() == [[1, 0, 1, 0], [1, 1, 1, 1]]
    mrpc = item_values(("accuracy", "f1"), False, 1, preds, refs)
    assert mrpc.metric == "accuracy_f1" and mrpc.values.tolist() == [[3, 1, 3, 2], [3, 0, 3, 3]]
    assert item_values(("matthews_correlation",), False, 1, preds, refs).metric == "mcc"
    assert item_values(("pearson", "spearmanr"), True, 1, preds, refs) is None  # regression
    assert item_values(("accuracy",), False, 2, preds, refs) is None  # MNLI: two splits
    assert item_values(("accuracy",), False, 1, [{}], refs) is None  # cached before predictions were kept
    assert item_values(("f1",), False, 1, [{"dev": [2, 0, 1, 1]}], {"dev": [2, 0, 1, 1]}) is None  # not binary


# --- coverage on simulated data with known truth ----------------------------------------------------------

def test_t_interval_covers_95_percent_of_normal_samples() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(0.7, 0.03, (4000, 5))  # 4000 studies of 5 seeds, true mean 0.7
    hits = np.mean([(e := t_interval(x)).low <= 0.7 <= e.high for x in data])
    assert hits == pytest.approx(0.95, abs=0.012)  # binomial sd 0.0034


@pytest.mark.parametrize("n,level", [(3, 0.75), (5, 0.9375), (9, 0.9609)])
def test_median_interval_covers_its_stated_level(n: int, level: float) -> None:
    rng = np.random.default_rng(n)
    data = rng.gamma(2.0, 1.0, (4000, n))  # skewed: the median interval is distribution-free
    true_median = scipy.stats.gamma(2.0).median()
    ests = [median_interval(x) for x in data]
    assert ests[0].confidence == pytest.approx(level, abs=1e-4)
    hits = np.mean([e.low <= true_median <= e.high for e in ests])
    assert hits == pytest.approx(level, abs=0.02)


def test_percentile_bootstrap_of_three_medians_covers_75_not_95_percent() -> None:
    """Why seed intervals are not percentile bootstraps: labelled 95%, it covers about 75%."""
    rng = np.random.default_rng(1)
    data = rng.normal(0.0, 1.0, (600, 3))
    hits = np.mean([(e := bootstrap_ci(x, "median", n_resamples=400, seed=i)).low <= 0.0 <= e.high
                    for i, x in enumerate(data)])
    assert 0.70 < hits < 0.80


@pytest.mark.parametrize("tau,at_least", [
    (0.15, 0.91),  # a seed-to-seed spread, 5 seeds
    (0.0, 0.91),  # no seed effect
])
def test_seed_item_interval_coverage_with_seed_and_item_noise(tau: float, at_least: float) -> None:
    """5 seeds x 200 items, per-item correctness with item difficulty, a per-seed shift of sd ``tau`` and
    per-(seed, item) noise. Known truth: the expected accuracy difference over seeds and items."""
    delta, seeds, items = 0.3, 5, 200

    def accuracy(shift: np.ndarray, z: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(z + shift)))

    big = np.random.default_rng(99)
    z = big.normal(0.5, 1.5, 400_000)
    truth = float(np.mean(accuracy(delta + big.normal(0, tau, z.size), z) - accuracy(big.normal(0, tau, z.size), z)))
    rng = np.random.default_rng(5)
    hits, reps = 0, 100
    for r in range(reps):
        z = rng.normal(0.5, 1.5, items)  # the dev set: a sample of the task's items
        pa = accuracy(delta + rng.normal(0, tau, (seeds, 1)), z)
        pb = accuracy(rng.normal(0, tau, (seeds, 1)), z)
        a, b = (rng.random((seeds, items)) < pa).astype(float), (rng.random((seeds, items)) < pb).astype(float)
        est = seed_item_test(a, b, n_resamples=300, seed=r).diff
        hits += est.low <= truth <= est.high
    assert hits / reps >= at_least


# --- bad input -------------------------------------------------------------------------------------------------

def test_bad_input_errors() -> None:
    with pytest.raises(ValueError, match="need at least one value"):
        t_interval([])
    with pytest.raises(ValueError, match="finite"):
        median_interval([0.5, float("nan")])
    with pytest.raises(ValueError, match="equal sizes"):
        compare_seeds([0.1, 0.2], [0.3], paired=True)
    with pytest.raises(ValueError, match="unknown statistic"):
        seed_estimate([0.1, 0.2], "mode")
    with pytest.raises(ValueError, match="confidence"):
        t_interval([0.1, 0.2], confidence=1.5)
    with pytest.raises(ValueError, match="same seeds and items"):
        seed_item_test(np.zeros((3, 10)), np.zeros((3, 11)))
    with pytest.raises(ValueError, match=r"shaped \(seeds, items\)"):
        seed_item_test(np.zeros(10), np.zeros(10))
    with pytest.raises(ValueError, match="unknown item metric"):
        seed_item_test(np.zeros((2, 4)), np.zeros((2, 4)), "auc")


def test_single_seed_has_no_interval_and_results_are_seeded() -> None:
    one = seed_estimate([0.5])
    assert one.n == 1 and not one.has_interval and not one.excludes(0.0)
    a = seed_item_test(np.eye(4)[None], np.ones((1, 4, 4)) * 0.5, n_resamples=200, seed=5)
    b = seed_item_test(np.eye(4)[None], np.ones((1, 4, 4)) * 0.5, n_resamples=200, seed=5)
    assert a == b


# --- the item-level test holds at the level of the seed ---------------------------------------------------------

def _null_rate(seeds: int, kind: str, reps: int = 300, items: int = 100, alpha: float = 0.05) -> float:
    """Share of simulated studies with no true difference in which the item-level p is below ``alpha``."""
    rng = np.random.default_rng(1000 * seeds + len(kind))
    hits = 0
    for r in range(reps):
        if kind == "seed-dominated":  # per-item scores (as log-probability differences): seed shifts >> item noise
            shared = rng.normal(0.0, 1.0, items)
            a = shared + rng.normal(0, 1.0, (seeds, 1)) + rng.normal(0, 1.0, (seeds, items))
            b = shared + rng.normal(0, 1.0, (seeds, 1)) + rng.normal(0, 1.0, (seeds, items))
        else:  # "item-dominated" 0/1 correctness: items favour A or B at random, no seed effect
            z, w = rng.normal(0.5, 1.5, items), rng.normal(0, 0.6, items)
            a = (rng.random((seeds, items)) < 1 / (1 + np.exp(-(z + w)))).astype(float)
            b = (rng.random((seeds, items)) < 1 / (1 + np.exp(-(z - w)))).astype(float)
        hits += seed_item_test(a, b, n_resamples=100, seed=r).p < alpha
    return hits / reps


@pytest.mark.parametrize("seeds", [5, 10])
@pytest.mark.parametrize("kind", ["seed-dominated", "item-dominated"])
def test_item_level_type_one_error_is_nominal_at_5_and_10_seeds(seeds: int, kind: str) -> None:
    """Under no difference, P(p < 0.05) is 0.05 within 3 binomial standard errors of 300 studies (0.038).
    A normal reference over a bootstrap of 5 seeds rejects about 15% of the time when seeds dominate.
    perf/type_one_error.py prints these rates (same simulation and seeds) and the earlier test's."""
    rate = _null_rate(seeds, kind)
    assert abs(rate - 0.05) <= 3 * math.sqrt(0.05 * 0.95 / 300)


def test_item_test_without_item_variance_is_the_paired_t_test_over_seeds() -> None:
    """When A - B is the same on every item of a seed, only the seeds vary: p and interval are scipy's
    one-sample t test of the per-seed differences, with S - 1 degrees of freedom."""
    rng = np.random.default_rng(6)
    b = rng.normal(0, 1, (5, 40))
    shift = np.array([0.21, 0.028, 0.175, 0.029, 0.198])
    ours = seed_item_test(b + shift[:, None], b, n_resamples=200)
    ref = scipy.stats.ttest_1samp(shift, 0.0)
    ci = ref.confidence_interval(0.95)
    assert ours.df == pytest.approx(4) and ours.se_items == pytest.approx(0, abs=1e-9)
    assert ours.p == pytest.approx(ref.pvalue, rel=1e-6)
    assert (ours.diff.low, ours.diff.high) == pytest.approx((ci.low, ci.high), rel=1e-6)
    assert ours.p_seeds == pytest.approx(0.0625)  # all five positive: the sign-flip floor


def test_items_are_resampled_within_their_stratum() -> None:
    from zoo.compare.stats import _item_weights, _strata_index

    strata = ["p1"] * 3 + ["p2"] * 5 + ["p1"] * 2
    groups = _strata_index(strata, 10)
    w = _item_weights(np.random.default_rng(0), groups, 50, 10)
    mask = np.array([s == "p1" for s in strata])
    assert (w[:, mask].sum(1) == 5).all() and (w[:, ~mask].sum(1) == 5).all()
    with pytest.raises(ValueError, match="one label per item"):
        seed_item_test(np.zeros((2, 4)), np.zeros((2, 4)), strata=["a", "b"])


def test_monte_carlo_sign_flip_p_is_never_zero() -> None:
    p, exact = sign_flip_test(np.full(40, 0.1))
    assert not exact and p == pytest.approx(1 / (2**20 + 1))


def test_seeds_needed_at_the_holm_level_of_the_family() -> None:
    """Over 21 pairs Holm's first step asks p <= 0.05/21 = 0.0024: the sign-flip test reaches it from 10 seeds."""
    assert sign_flip_min_seeds(0.05, 1) == 6 and sign_flip_min_seeds(0.05, 21) == 10
    assert seeds_needed(5.0, 1.0, tests=21) == 10
    n = seeds_needed(1.0, 1.0, tests=21)
    level = 0.05 / 21

    def power(k: int) -> float:
        crit = scipy.stats.t.ppf(1 - level / 2, k - 1)
        return scipy.stats.nct.sf(crit, k - 1, math.sqrt(k)) + scipy.stats.nct.cdf(-crit, k - 1, math.sqrt(k))

    assert power(n) >= 0.8 > power(n - 1) and n > seeds_needed(1.0, 1.0)
