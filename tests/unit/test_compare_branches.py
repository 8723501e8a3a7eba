"""Curve studies (zoo.compare.branches): per arm and seed one trunk and a cooldown branch per shorter budget,
each benchmarked as a model with its budget and FLOPs; the study counts the trunk once plus each cooldown;
a rerun reuses what is finished. Tiny real training; the benchmark is the recorder of test_compare_resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from tests.unit.test_compare_resume import CountingTrain, FakeBench, final_weights, tiny_settings
from zoo.cli import cli
from zoo.compare.budgets import split_budgets
from zoo.compare.runner import run_study
from zoo.errors import ConfigError
from zoo.train.branch import spent_at
from zoo.train.resolve import resolve
from zoo.train.trainer import train


def test_two_budget_study_end_to_end(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    settings = tiny_settings(corpus, objectives=["mlm"], seeds=[0], budget="10steps", budgets=["5steps", "10steps"],
                             cooldown=0.4, train_overrides=[*tiny_settings(corpus).train_overrides,
                                                            "optim.warmup_steps=1"])
    trained = CountingTrain()
    result = run_study(settings, out, train_fn=trained, bench_fn=FakeBench())
    assert trained.runs == ["bert-mlm-seed0-10steps", "bert-mlm-seed0-5steps"]
    runs = {r.name: r for r in result.runs}
    short, trunk = runs["bert-mlm-seed0-5steps"], runs["bert-mlm-seed0-10steps"]
    assert (short.budget, short.steps, trunk.budget, trunk.steps) == ("5steps", 5, "10steps", 10)
    assert short.parent == "bert-mlm-seed0-10steps" and trunk.parent is None
    assert [g.label for g in result.groups] == ["bert mlm @ 5steps", "bert mlm @ 10steps", "bert from scratch"]
    data = json.loads((out / "study.json").read_text())
    rec = data["runs"]["bert-mlm-seed0-5steps"]
    assert rec["parent_step"] == 3 and rec["budget"] == "5steps"
    at = spent_at(out / "runs" / "bert-mlm-seed0-10steps" / "step-000003", "flops")
    assert rec["cooldown_flops"] == pytest.approx(short.flops - at)
    assert data["curve"]["flops_total"] == pytest.approx(trunk.flops + short.flops - at)
    assert data["curve"]["flops_separate"] == pytest.approx(trunk.flops + short.flops)
    report = (out / "report.md").read_text()
    assert "## Budgets: cooldown branches" in report and "| bert-mlm-seed0-5steps | 5steps | bert-mlm-seed0-10steps step 3 |" in report
    # the branch is the 5-step run trained alone (trapezoid, the trunk's absolute warmup)
    alone = json.loads((out / "runs" / "bert-mlm-seed0-5steps" / "config.json").read_text())
    alone["out"], alone["branch"] = str(tmp_path / "alone"), {"source": "", "step": 0}
    train(resolve(alone))
    a, b = load_file(str(final_weights(tmp_path / "alone"))), load_file(str(final_weights(out / "runs" / short.name)))
    assert all(torch.equal(a[k], b[k]) for k in a)
    again = CountingTrain()
    run_study(settings, out, train_fn=again, bench_fn=FakeBench(), write_report=False)
    assert again.runs == []  # both models finished: reused


def test_budget_options(corpus: Path, tmp_path: Path) -> None:
    assert split_budgets("1e13,2e13,4e13flops") == ["1e13flops", "2e13flops", "4e13flops"]
    with pytest.raises(ConfigError, match="give budgets of one kind"):
        tiny_settings(corpus, budget="8steps", budgets=["4steps", "8m"])
    with pytest.raises(ConfigError, match="two or more different budgets"):
        tiny_settings(corpus, budget="8steps", budgets=["8steps"])
    with pytest.raises(ConfigError, match="it sets optim.schedule itself"):
        tiny_settings(corpus, budget="8steps", budgets=["4steps", "8steps"], train_overrides=["optim.schedule=linear"])
    result = CliRunner().invoke(cli, ["compare", "--objectives", "mlm", "--budget", "8steps", "--budgets",
                                      "4,8steps", "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "--budget and --budgets both set the training budget" in result.output
