"""BLiMP per-pair correctness in the item-level comparison, on simulated scorings whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.benchmarks.pairs_results import PairsModelResult
from zoo.compare.collect import ALL_PAIRS, _pairs_scores
from zoo.compare.report import item_table, pair_table
from zoo.compare.results import ComparisonResult, ItemValues, RunInfo
from zoo.compare.study import BASELINE

PARADIGMS = [f"paradigm_{i:02d}" for i in range(20)]
PAIRS = 50  # per paradigm, as a --max-pairs subset


def _scored(rng: np.random.Generator, p_correct: float) -> PairsModelResult:
    correct = {p: "".join("1" if x else "0" for x in rng.random(PAIRS) < p_correct) for p in PARADIGMS}
    acc = {p: s.count("1") / PAIRS for p, s in correct.items()}
    return PairsModelResult("m", None, "gpt", "clm", "id", False, ["causal"], {"causal": acc}, {"causal": correct})


def _study(rng: np.random.Generator, p_model: float, p_scratch: float, seeds: int = 5) -> ComparisonResult:
    runs, baselines, items = [], [], {}
    for seed in range(seeds):
        for objective, p, out in (("clm", p_model, runs), (BASELINE, p_scratch, baselines)):
            info = RunInfo(f"gpt-{objective}-seed{seed}", "gpt", objective, seed, "x", baseline=objective == BASELINE)
            _pairs_scores(info, _scored(rng, p), items)
            out.append(info)
    return ComparisonResult(out="x", mode="study", suite="blimp", tasks=PARADIGMS, task_titles={},
                            task_metrics={}, runs=runs, baselines=baselines, items=items)


def test_correctness_becomes_all_pairs_in_paradigm_order() -> None:
    model = _scored(np.random.default_rng(0), 0.7)
    info, items = RunInfo("r", "gpt", "clm", 0, "x"), {}
    _pairs_scores(info, model, items)
    values = items["r"][ALL_PAIRS]
    assert isinstance(values, ItemValues) and values.metric == "mean" and values.values.shape == (1, 20 * PAIRS)
    assert "".join(str(int(v)) for v in values.values[0]) == "".join(model.correct["causal"][p] for p in PARADIGMS)
    assert values.values.mean() == pytest.approx(np.mean(list(info.scores.values())))  # equal pairs: micro = macro


def test_a_true_ten_point_gain_is_significant_over_pairs_but_not_over_five_seeds() -> None:
    """5 seeds, 1,000 pairs, 60% vs 50% correct: the test over seeds and items finds it (p < 0.01, interval
    around +10); the sign-flip test over 5 seeds cannot go below 2/2^5 = 0.0625, so no winner is named."""
    result = _study(np.random.default_rng(1), 0.6, 0.5)
    (pair,) = result.pairs
    items = pair.items[ALL_PAIRS]
    assert items.p_holm is not None and items.p_holm < 0.01 and items.seeds == 5 and items.items == 20 * PAIRS
    assert items.diff.low < 0.10 < items.diff.high and items.diff.low > 0.05
    assert pair.seeds.p == pytest.approx(0.0625) and pair.seeds.wins == 5
    # the seed-level test of the same per-seed differences cannot agree with 5 seeds: no winner is named
    assert items.p_seeds == pytest.approx(0.0625) and items.p_seeds_holm == pytest.approx(0.0625)
    assert item_table(result)[1][0][-1] == "clm ahead, the seed-level test does not agree (5 seeds)"
    assert pair_table(result)[1][0][-1] == "clm ahead, not significant after Holm"


def test_no_difference_is_not_distinguishable_at_the_stated_rate() -> None:
    """Equal correctness rates: the 95% interval over pairs contains 0 in about 95% of simulated studies."""
    rng = np.random.default_rng(2)
    covered = [(lambda c: c.diff.low <= 0 <= c.diff.high)(_study(rng, 0.55, 0.55, seeds=2).pairs[0].items[ALL_PAIRS])
               for _ in range(12)]
    assert sum(covered) >= 9  # P(fewer than 9 of 12 | 95% coverage) < 0.003
