"""``zoo compare --hours``: ``--plan-only`` measures this machine (real probe runs of the arm), prints the
plan and trains nothing; with ``--budgets`` (relative) it plans a curve; ``--budget`` with ``--hours``,
absolute ``--budgets`` with ``--hours`` and ``--plan-only`` without it are clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.integration.test_compare_cli import TINY
from tests.unit.test_minimal_pairs_data import write_blimp
from zoo.cli import cli
from zoo.compare.plan import ArmCost, Measurements, PlanRequest, layouts, make_plan

PAIRS = [("The cats sleep soundly tonight.", "The cats sleeps."), ("Dogs bark.", "Dogs barks at them loudly now."),
         ("A dog barks.", "A dog bark."), ("Who left?", "Who leave?")]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


@pytest.mark.slow
def test_plan_only_measures_plans_and_trains_nothing(corpus: Path, tmp_path: Path) -> None:
    blimp = tmp_path / "blimp"
    blimp.mkdir()
    write_blimp(blimp / "adjunct_island.jsonl", "adjunct_island", PAIRS)
    write_blimp(blimp / "anaphor_number_agreement.jsonl", "anaphor_number_agreement", PAIRS[::-1],
                term="anaphor_agreement")
    out = tmp_path / "study"
    args = ["compare", "--objectives", "clm", "--backbones", "gpt", "--seeds", "2", "--hours", "0.5",
            "--data", str(corpus), *TINY, "--suite", "blimp", "--data-dir", str(blimp), "--out", str(out)]
    code, output = invoke(*args, "--plan-only")
    assert code == 0, output
    assert "Plan: " in output and "Expected wall time per phase" in output and "gpt-clm" in output
    assert not (out / "runs").exists() or not any((out / "runs").iterdir())
    assert not (out / "probe").exists()  # probe runs are removed
    study = json.loads((out / "study.json").read_text())
    section = study["plan"]
    m = Measurements.from_dict(section["measurements"])
    assert [a.arm for a in m.arms] == ["gpt-clm"] and (m.pairs_per_paradigm, m.paradigms) == (4, 2)
    arm = m.arms[0]
    assert arm.flops_per_s and all(v > 0 for v in arm.flops_per_s.values()) and arm.pair_s > 0 and arm.params > 0
    replanned = make_plan(m, PlanRequest(**{**section["request"], "budgets": tuple(section["request"]["budgets"])}))
    assert section["plan"] == json.loads(json.dumps(replanned.to_dict()))  # the pure function of what is stored
    assert section["plan"]["budget"] == make_plan(m, PlanRequest(hours=0.5, seeds=2, max_pairs=None)).budget
    assert study["settings"]["hours"] == 0.5
    # a second --plan-only reuses the stored measurements (nothing is measured again)
    code, again = invoke(*args, "--plan-only")
    assert code == 0, again
    assert json.loads((out / "study.json").read_text())["plan"]["measurements"] == section["measurements"]


def test_plan_only_with_relative_budgets_prints_a_curve(corpus: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """``--hours`` with ``--budgets 1,2``: the plan's two budgets, the top one twice the other, per arm
    (measuring is replaced by fixed measurements; the real probe is the test above)."""
    import zoo.compare.probe as probe

    def measure(settings, grid, tokenizers, out):  # noqa: ANN001, ANN202
        assert settings.budgets == ["1", "2"]  # the study's; the probe's own settings drop them
        speeds = {lay.label: 1e9 / lay.jobs for lay in layouts(probe.cores())}
        arm = ArmCost("gpt-clm", "gpt", speeds, 1e5, 100_000, pair_s=0.001, overhead_s={k: 5.0 for k in speeds})
        return Measurements(cores=probe.cores(), arms=(arm,), pairs_per_paradigm=4, paradigms=2)

    monkeypatch.setattr(probe, "measure", measure)
    blimp = tmp_path / "blimp"
    blimp.mkdir()
    write_blimp(blimp / "adjunct_island.jsonl", "adjunct_island", PAIRS)
    out = tmp_path / "study"
    code, output = invoke("compare", "--objectives", "clm", "--backbones", "gpt", "--seeds", "2", "--hours", "0.2",
                          "--budgets", "1,2", "--data", str(corpus), *TINY, "--suite", "blimp", "--data-dir",
                          str(blimp), "--out", str(out), "--plan-only")
    assert code == 0, output
    plan = json.loads((out / "study.json").read_text())["plan"]["plan"]
    low, top = plan["budgets"]
    assert top == plan["budget"] and float(low.removesuffix("flops")) == pytest.approx(
        float(top.removesuffix("flops")) / 2, rel=0.05)
    text = " ".join(output.split())
    assert f"Plan: budgets {low}, {top} (a trunk to the top budget and a cooldown branch of 0.2" in text
    assert f"{low.removesuffix('flops')}, {top.removesuffix('flops')}" in text and "gpt-clm" in text
    assert not (out / "runs").exists() or not any((out / "runs").iterdir())


def test_hours_and_budget_are_one_choice(tmp_path: Path) -> None:
    code, output = invoke("compare", "--objectives", "clm", "--backbones", "gpt", "--budget", "1e12flops",
                          "--hours", "1", "--out", str(tmp_path / "s"))
    assert code != 0 and "--budget 1e12flops and --hours 1 both size the runs" in output
    code, output = invoke("compare", "--objectives", "clm", "--backbones", "gpt", "--budget", "1e12flops",
                          "--plan-only", "--out", str(tmp_path / "s"))
    assert code != 0 and "--plan-only" in output and "--hours" in output
    code, output = invoke("compare", "--objectives", "clm", "--backbones", "gpt", "--out", str(tmp_path / "s"))
    assert code != 0 and "--budget (or --hours)" in output
    code, output = invoke("compare", "--objectives", "clm", "--backbones", "gpt", "--hours", "1", "--budgets",
                          "1e12,2e12flops", "--out", str(tmp_path / "s"))
    assert code != 0 and "--budgets 1e12,2e12flops: 1e12 looks like an absolute budget; with --hours" in output
    code, output = invoke("compare", "--objectives", "clm", "--backbones", "gpt", "--hours", "1", "--budgets",
                          "1,2", "--budget", "1e12flops", "--out", str(tmp_path / "s"))
    assert code != 0 and "--budget and --budgets both set the training budget" in output
    assert not (tmp_path / "s").exists()


def test_a_preset_may_carry_hours(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from dataclasses import replace

    from zoo.compare import presets

    timed = replace(presets.CPU_HOUR, name="timed", settings=replace(presets.CPU_HOUR.settings, budget=None, hours=1.0))
    monkeypatch.setitem(presets.PRESETS, "timed", timed)
    assert "--hours 1.0" in timed.describe() and not any(o.startswith("--budget") for o in timed.describe())
    # an explicit --budget replaces the preset's hours (so --plan-only has no hours to plan)
    code, output = invoke("compare", "--preset", "timed", "--budget", "1e12flops", "--plan-only",
                          "--out", str(tmp_path / "s"))
    assert code != 0 and "--plan-only prints the plan of a study sized by --hours" in output
