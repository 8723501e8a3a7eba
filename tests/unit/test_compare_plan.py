"""The study planner on synthetic measurements: it fits the hours, keeps training at least 70% of the
wall time when that is achievable, picks the faster layout, reduces the pairs scored before it gives
up, refuses a study that cannot fit with the largest that can, and costs a curve design."""

from __future__ import annotations

import pytest

from zoo.compare.plan import (
    MIN_PAIRS,
    ArmCost,
    Layout,
    Measurements,
    PlanRequest,
    design_cost,
    flops_text,
    layouts,
    make_plan,
)
from zoo.errors import ConfigError
from zoo.train.config import Budget


def arm(name: str, one_job: float, two_jobs: float, pair_s: float = 0.002, finetune_s: float = 20.0) -> ArmCost:
    return ArmCost(name, "gpt", {"1x2": one_job, "2x1": two_jobs}, flops_per_token=1e6, params=2_000_000,
                   pair_s=pair_s, finetune_s=finetune_s)


def measured(*arms: ArmCost, pairs: int = 1000, paradigms: int = 67) -> Measurements:
    return Measurements(cores=2, arms=arms, spent_s={"tokenizers": 40.0, "measure": 90.0},
                        pairs_per_paradigm=pairs, paradigms=paradigms, report_s=20.0)


THREE = (arm("gpt-clm", 1.3e11, 0.8e11), arm("gpt-mlm", 1.2e11, 0.75e11), arm("gpt-span", 1.25e11, 0.8e11))


def test_layouts_keep_every_core_busy() -> None:
    assert layouts(2) == [Layout(1, 2), Layout(2, 1)]
    assert [lay.label for lay in layouts(4)] == ["1x4", "2x2", "4x1"]
    assert Layout.parse("2x1") == Layout(2, 1)


@pytest.mark.parametrize("hours", [0.5, 1.0, 3.0])
def test_plan_fits_the_hours_and_trains_most_of_them(hours: float) -> None:
    plan = make_plan(measured(*THREE), PlanRequest(hours=hours, seeds=3))
    assert plan.total_s <= hours * 3600
    assert plan.phases["train"] >= 0.7 * hours * 3600
    assert plan.phases["train"] >= 0.9 * hours * 3600 - plan.phases["bench"] - 150  # most of what is left
    Budget.parse(plan.budget)  # a valid --budget
    assert f"{plan.top_flops:.2g}" == f"{float(plan.budget.removesuffix('flops')):.2g}"
    for a in plan.arms:
        assert a.budgets == (plan.top_flops,)
        assert a.tokens_per_param == (plan.top_flops / 1e6 / 2_000_000,)


def test_picks_the_layout_with_the_higher_measured_throughput() -> None:
    two_jobs_win = make_plan(measured(*THREE), PlanRequest(hours=1, seeds=2))
    assert two_jobs_win.layout == Layout(2, 1)  # 2 x 0.8e11 > 1.3e11
    one_job_wins = (arm("gpt-clm", 1.3e11, 0.5e11), arm("gpt-mlm", 1.2e11, 0.55e11))
    plan = make_plan(measured(*one_job_wins), PlanRequest(hours=1, seeds=2))
    assert plan.layout == Layout(1, 2)
    assert plan.top_flops > 0


def test_all_pairs_when_affordable_else_fewer_with_a_note() -> None:
    cheap = make_plan(measured(*THREE), PlanRequest(hours=1, seeds=1))
    assert cheap.max_pairs is None and cheap.pairs_per_model == 67_000 and not cheap.notes
    dear = make_plan(measured(*(arm(a.arm, 1.3e11, 0.8e11, pair_s=0.01) for a in THREE)),
                     PlanRequest(hours=1, seeds=5))
    assert dear.max_pairs is not None and MIN_PAIRS <= dear.max_pairs < 1000
    assert any(f"{dear.max_pairs} of the 1000 pairs" in n for n in dear.notes)
    assert dear.phases["train"] >= 0.7 * 3600
    capped = make_plan(measured(*THREE), PlanRequest(hours=1, seeds=1, max_pairs=50))
    assert capped.max_pairs == 50 and capped.pairs_per_model == 50 * 67


def test_refuses_what_cannot_fit_naming_the_largest_that_can() -> None:
    m = Measurements(cores=2, arms=THREE, spent_s={"tokenizers": 10.0, "measure": 10.0}, pairs_per_paradigm=1000,
                     paradigms=67, report_s=5.0)
    # per seed: 4 models (3 arms, 1 baseline) x (20 s fine-tuning + 67 x 10 pairs x 2 ms) = 85 s
    with pytest.raises(ConfigError, match=r"--hours 0\.2: evaluation and set-up alone take 14\.6 min of the 12\.0 min "
                                          r"\(10 seed\(s\), 3 arm\(s\), 10 pairs per paradigm\); the largest plan that "
                                          r"fits is --seeds 1 --max-pairs 125, or this one needs --hours ([\d.]+)$") as err:
        make_plan(m, PlanRequest(hours=0.2, seeds=10))
    # both suggestions are plans that train at least 70% of the time
    assert make_plan(m, PlanRequest(hours=0.2, seeds=1, max_pairs=125)).phases["train"] >= 0.7 * 720
    hours = float(err.value.args[0].rsplit(" ", 1)[-1])
    assert make_plan(m, PlanRequest(hours=hours, seeds=10, max_pairs=10)).phases["train"] >= 0.7 * hours * 3600
    with pytest.raises(ConfigError, match="even one seed does not fit: this study needs --hours"):
        make_plan(measured(*THREE), PlanRequest(hours=0.02, seeds=2))


def test_no_zero_shot_suite_and_missing_layouts() -> None:
    plan = make_plan(measured(*THREE, pairs=0, paradigms=0), PlanRequest(hours=1, seeds=2))
    assert plan.max_pairs is None and plan.pairs_per_model == 0
    partial = (ArmCost("gpt-clm", "gpt", {"1x2": 1e11}, 1e6, 10),)
    assert make_plan(measured(*partial), PlanRequest(hours=1, seeds=1)).layout == Layout(1, 2)
    with pytest.raises(ConfigError, match="no training throughput"):
        make_plan(measured(ArmCost("gpt-clm", "gpt", {"3x1": 1e11}, 1e6, 10)), PlanRequest(hours=1, seeds=1))


def test_curve_design_cost() -> None:
    assert design_cost((1.0,), 0.2) == 1.0
    # one trunk to (1 - c) B_top and a cooldown branch of c B_i per budget
    assert design_cost((0.25, 0.5, 1.0), 0.2) == pytest.approx(0.8 + 0.2 * 1.75)
    assert design_cost((1e12, 2e12, 4e12), 0.1) == pytest.approx(0.9 + 0.1 * 1.75)  # relative to the top
    single = make_plan(measured(*THREE, pairs=0, paradigms=0), PlanRequest(hours=2, seeds=2))
    curve = make_plan(measured(*THREE, pairs=0, paradigms=0),
                      PlanRequest(hours=2, seeds=2, budgets=(0.25, 0.5, 1.0), cooldown=0.2))
    assert curve.top_flops == pytest.approx(single.top_flops / 1.15, rel=0.1)  # same training time, costlier design
    assert curve.arms[0].budgets == pytest.approx((curve.top_flops / 4, curve.top_flops / 2, curve.top_flops))
    assert curve.phases["bench"] == pytest.approx(3 * 2 * 3 * 20.0 + 2 * 20.0)  # a model per budget, + baselines


def test_flops_text_rounds_down_to_two_digits() -> None:
    assert flops_text(3.97e12) == "3.9e12flops"
    assert flops_text(1e15) == "1e15flops"
    assert flops_text(2.5e13) == "2.5e13flops"


def test_bad_requests() -> None:
    with pytest.raises(ConfigError, match="--hours"):
        PlanRequest(hours=0, seeds=1)
    with pytest.raises(ConfigError, match="cooldown"):
        PlanRequest(hours=1, seeds=1, budgets=(0.5, 1.0), cooldown=1.0)


def test_measurements_round_trip() -> None:
    m = measured(*THREE)
    assert Measurements.from_dict(m.to_dict()) == m
    plan = make_plan(m, PlanRequest(hours=1, seeds=2)).to_dict()
    assert plan["layout"] == "2x1" and plan["budget"].endswith("flops") and 0.7 <= plan["train_share"] <= 1


def test_per_run_overheads_are_planned() -> None:
    plain = make_plan(measured(*THREE), PlanRequest(hours=1, seeds=2))
    costly = tuple(ArmCost(a.arm, a.backbone, a.flops_per_s, a.flops_per_token, a.params, a.pair_s, a.finetune_s,
                           overhead_s={"1x2": 60.0, "2x1": 60.0}) for a in THREE)
    plan = make_plan(measured(*costly), PlanRequest(hours=1, seeds=2))
    assert plan.top_flops < plain.top_flops
    assert plan.total_s <= 3600 and plan.phases["train"] >= 6 * 60.0 / 2  # 6 runs' overheads on 2 jobs
    for a, p in zip(costly, plan.arms, strict=True):
        assert p.train_s == pytest.approx(plan.top_flops / a.flops_per_s[plan.layout.label] + 60.0)
