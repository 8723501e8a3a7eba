"""The "Plan vs actual" section of a study planned by wall time, rebuilt by ``--report-only`` from study.json."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.test_compare_plan import THREE, measured
from tests.unit.test_compare_reload import study  # noqa: F401 - the fixture
from zoo.compare.plan import PlanRequest, make_plan
from zoo.compare.reload import report_from_study
from zoo.compare.report import markdown, plan_lines


def test_report_only_rebuilds_plan_vs_actual(study: Path) -> None:  # noqa: F811
    plan = make_plan(measured(*THREE), PlanRequest(hours=1, seeds=5))
    data = json.loads((study / "study.json").read_text())
    data["plan"] = {"plan": json.loads(json.dumps(plan.to_dict())),
                    "actual": {"tokenizers": 12.0, "measure": 80.0, "train": 2400.0, "bench": 700.0}}
    (study / "study.json").write_text(json.dumps(data))
    text = markdown(report_from_study(study, count_models=False), {})
    section = text[text.index("## Plan vs actual"):text.index("## Validation loss")]
    assert f"{plan.budget} per run (2x1 = jobs x threads)" in section
    assert "| train | 40.0 min | 40.0 min |" in section.replace(f"{plan.phases['train'] / 60:.1f} min", "40.0 min", 1)
    assert "| report | 20 s | - |" in section  # not measured yet
    assert "| total |" in section


def test_no_plan_no_section() -> None:
    assert plan_lines({}) == [] and plan_lines({"actual": {"train": 1.0}}) == []
