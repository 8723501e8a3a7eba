"""A curve study planned by wall time (``--hours`` with ``--budgets``): relative budgets, the planned
absolute budgets that fit the hours, the per-run overhead paid by every model (trunk and branches), and
``study.json`` keeping the planned budgets for a resumed study. Pure functions and fake measurements."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_compare_plan import THREE, arm, measured
from zoo.compare.budgets import is_relative, planned_budgets, relative_budgets
from zoo.compare.plan import ArmCost, Layout, Measurements, PlanRequest, design_cost, make_plan
from zoo.compare.study import BenchOptions, StudyFile, StudySettings, expand_grid
from zoo.errors import ConfigError
from zoo.train.config import Budget

CURVE = (1.0, 2.0, 4.0, 8.0)


def test_relative_budgets_are_ratios_to_the_smallest() -> None:
    assert relative_budgets("1,2,4,8") == CURVE
    assert relative_budgets(["2", "4", " 8 ", "16"]) == CURVE
    assert relative_budgets("0.5,1.5") == (1.0, 3.0)
    assert relative_budgets("3,1") == (3.0, 1.0)  # the order given
    assert is_relative("1,2,4,8") and is_relative("0.5,1e2") and not is_relative("1e12,2e12flops")


@pytest.mark.parametrize(("text", "message"), [
    ("1e12flops,2e12flops", r"--budgets 1e12flops,2e12flops: with --hours the budgets are relative"),
    ("1,2steps", r"'2steps' is not a plain number"),
    ("1e12,2e12", r"1e12 looks like an absolute budget; with --hours"),
    ("4", r"two or more different budgets"),
    ("2,2", r"two or more different budgets"),
    ("0,1", r"positive finite"),
    ("inf,1", r"positive finite"),
    ("-1,1", r"positive finite"),
])
def test_relative_budgets_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        relative_budgets(text)


def test_planned_budgets_scale_the_top_and_round_down_to_two_digits() -> None:
    assert planned_budgets(2.4e12, CURVE) == ["3e11flops", "6e11flops", "1.2e12flops", "2.4e12flops"]
    assert planned_budgets(1.3e12, (1.0, 2.0, 4.0)) == ["3.2e11flops", "6.5e11flops", "1.3e12flops"]
    assert planned_budgets(1e12, (4.0, 1.0)) == ["2.5e11flops", "1e12flops"]  # shortest first
    with pytest.raises(ConfigError, match="not all different"):
        planned_budgets(1.55e12, (1.0, 1.02))  # both 1.5e12


def settings(**kw: object) -> StudySettings:
    base = dict(objectives=["clm", "mlm"], backbones=["gpt"], budget=None, hours=1.0, seeds=[0, 1],
                budgets=["1", "2", "4", "8"], bench=BenchOptions(suite=None, tasks=["sst2"]))
    base.update(kw)
    return StudySettings(**base)  # type: ignore[arg-type]


def test_settings_check_the_relative_budgets_until_planned() -> None:
    assert settings().budgets == ["1", "2", "4", "8"]
    with pytest.raises(ConfigError, match="--budgets 1e12flops,2e12flops: with --hours"):
        settings(budgets=["1e12flops", "2e12flops"])
    with pytest.raises(ConfigError, match="it sets optim.warmup itself"):
        settings(train_overrides=["optim.warmup=0.3"])
    with pytest.raises(ConfigError, match="--cooldown"):
        settings(cooldown=1.0)
    planned = settings(budget="2.4e12flops", budgets=planned_budgets(2.4e12, CURVE))  # after the plan: absolute
    assert planned.budget == Budget("flops", 2.4e12)


def test_plan_with_budgets_fits_the_hours_and_scales_them() -> None:
    m = measured(*THREE)
    for hours in (2.0, 4.0):
        plan = make_plan(m, PlanRequest(hours=hours, seeds=2, budgets=CURVE, cooldown=0.2))
        assert plan.total_s <= hours * 3600 and plan.phases["train"] >= 0.7 * hours * 3600
        assert list(plan.budgets) == planned_budgets(plan.top_flops, CURVE) and plan.budgets[-1] == plan.budget
        assert plan.cooldown == 0.2 and plan.to_dict()["budgets"] == list(plan.budgets)
        for a in plan.arms:
            assert a.budgets == tuple(float(b.removesuffix("flops")) for b in plan.budgets)
            assert a.budgets[0] == pytest.approx(plan.top_flops / 8, rel=0.05)
    short, long = (make_plan(m, PlanRequest(hours=h, seeds=2, budgets=CURVE, cooldown=0.2)) for h in (2.0, 4.0))
    assert long.top_flops > 2 * short.top_flops  # more hours, larger budgets
    single = make_plan(m, PlanRequest(hours=1.0, seeds=2))
    assert len(single.budgets) == 1 and single.cooldown == 0.0


def one_arm(overhead: float) -> Measurements:
    a = ArmCost("gpt-clm", "gpt", {"1x2": 1e10}, 1e6, 1_000_000, overhead_s={"1x2": overhead})
    return Measurements(cores=2, arms=(a,), spent_s={"tokenizers": 10.0, "measure": 60.0}, report_s=20.0)


def test_the_overhead_is_paid_once_per_model_trained() -> None:
    """A curve of 4 budgets trains 4 models per arm and seed (a trunk and 3 branches): 4 overheads."""
    req = PlanRequest(hours=1.0, seeds=1, budgets=CURVE, cooldown=0.2, baselines=False)
    plan = make_plan(one_arm(30.0), req)
    steps = design_cost(CURVE, 0.2) * plan.top_flops / 1e10
    assert plan.layout == Layout(1, 2)
    assert plan.phases["train"] == pytest.approx(steps + 4 * 30.0)
    assert plan.arms[0].train_s == pytest.approx(steps + 4 * 30.0)
    free = make_plan(one_arm(0.0), req)
    assert free.top_flops > plan.top_flops
    single = make_plan(one_arm(30.0), PlanRequest(hours=1.0, seeds=1, baselines=False))
    assert single.phases["train"] == pytest.approx(single.top_flops / 1e10 + 30.0)  # one run: one overhead


def test_trunks_then_branches_on_parallel_jobs() -> None:
    """Two jobs: the trunks share the jobs, then the branches do (each branch waits for its trunk)."""
    a = arm("gpt-clm", 1e11, 1e11)
    m = Measurements(cores=2, arms=(a,), spent_s={}, report_s=0.0)
    plan = make_plan(m, PlanRequest(hours=1.0, seeds=2, budgets=(1.0, 2.0), cooldown=0.5, baselines=False))
    assert plan.layout == Layout(2, 1)  # the same speed per job, twice the jobs
    top = plan.top_flops
    assert plan.phases["train"] == pytest.approx(top / 1e11 + 0.5 * top / 2 / 1e11)  # one trunk, then one branch


def fake_measurements(cores: int) -> Measurements:
    from zoo.compare.plan import layouts

    speeds = {lay.label: 1e10 / lay.jobs for lay in layouts(cores)}
    arms = tuple(ArmCost(name, "gpt", speeds, 1e6, 1_000_000, finetune_s=5.0, overhead_s={k: 10.0 for k in speeds})
                 for name in ("gpt-clm", "gpt-mlm"))
    return Measurements(cores=cores, arms=arms, spent_s={"tokenizers": 1.0, "measure": 30.0}, report_s=10.0)


def test_study_json_keeps_the_planned_budgets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan's absolute budgets become the study's settings; a resumed study (or the run after
    --plan-only) plans the same budgets from the stored measurements; other ratios are refused once trained."""
    from zoo.compare.planning import apply_plan, plan_for
    from zoo.compare.probe import cores

    asked = settings()
    grid = expand_grid(asked.objectives, asked.backbones)
    out = tmp_path / "study"
    study = StudyFile(out)
    study.load_or_start(asked, grid, "zoo compare --plan-only")
    study.data["plan"] = {"measurements": fake_measurements(cores()).to_dict()}
    plan = plan_for(asked, grid, {}, out, study)  # --plan-only stops here: the settings keep the ratios
    assert study.data["settings"]["budgets"] == ["1", "2", "4", "8"]
    request = study.data["plan"]["request"]
    assert list(request["budgets"]) == list(CURVE) and request["cooldown"] == 0.2
    first = apply_plan(asked, plan, study)
    assert first.budgets == planned_budgets(plan.top_flops, CURVE) and first.budget.to_text() == plan.budget
    assert study.data["settings"]["budgets"] == first.budgets and study.data["settings"]["budget"] == plan.budget
    assert StudySettings(**study.data["settings"]).budgets == first.budgets  # a report reloads them

    monkeypatch.setattr(StudyFile, "trained_anything", lambda self: True)
    again = StudyFile(out)
    again.load_or_start(asked, grid, "zoo compare")  # the ratios again: not a change of settings
    assert Measurements.from_dict(again.data["plan"]["measurements"]) == fake_measurements(cores())  # kept
    resumed = apply_plan(asked, plan_for(asked, grid, {}, out, again), again)
    assert (resumed.budget, resumed.budgets) == (first.budget, first.budgets)
    with pytest.raises(ConfigError, match="holds a study planned with --budgets 1,2,4,8; rerun it with those --budgets to resume it"):
        plan_for(settings(budgets=["1", "2", "4"]), grid, {}, out, again)
    with pytest.raises(ConfigError, match="planned with --budgets 1,2,4,8"):
        plan_for(settings(budgets=[]), grid, {}, out, again)


def test_the_probe_trains_no_curve() -> None:
    from zoo.compare.probe import PROBE_STEPS, _probe_settings

    probe = _probe_settings(settings())
    assert probe.budgets == [] and probe.budget == Budget.parse(f"{PROBE_STEPS}steps") and probe.hours is None


def test_the_report_names_the_planned_budgets() -> None:
    from zoo.compare.report import plan_lines

    plan = make_plan(measured(*THREE), PlanRequest(hours=2, seeds=2, budgets=CURVE, cooldown=0.2))
    text = "\n".join(plan_lines({"plan": plan.to_dict(), "actual": {}}))
    assert f"budgets {', '.join(plan.budgets)} (cooldown branches of 0.2 of one trunk per arm and seed)" in text
