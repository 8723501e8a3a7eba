"""Cooldown branches (zoo.train.branch): a branch from a trapezoid trunk's checkpoint is bitwise the run
trained with the branch's budget from the start, charged the same FLOPs; it resumes exactly; the CLI
refuses what would not be that run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.integration.test_train import (
    _cli,
    assert_same_run,
    deterministic_records,
    final_state,
    interrupted,
    tiny_config,
)
from zoo.errors import ConfigError
from zoo.train import checkpoint as ckpt
from zoo.train.metrics import read_records
from zoo.train.resolve import resolve
from zoo.train.trainer import train


def config(out: Path, corpus: Path, budget: str, **train_kw: object) -> dict:
    c = tiny_config(out, corpus, "mlm", "bert", 1, log_every=1, eval_every=4, **train_kw)
    c["train"]["budget"] = budget
    c["optim"] = {"lr": 1e-3, "warmup_steps": 2, "schedule": "trapezoid", "cooldown": 0.25}
    return c


def branch_config(out: Path, trunk: Path, step: int, budget: str) -> dict:
    return {"out": str(out), "branch": {"source": str(trunk), "step": step}, "train": {"budget": budget}}


@pytest.fixture(scope="module")
def trunk(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    """16 steps keeping the cooldown starts of 8 (step 6) and 16 (step 12); checkpoints every 5 otherwise."""
    run = tmp_path_factory.mktemp("branch") / "trunk"
    train(resolve(config(run, corpus, "16steps", branch_budgets=["8steps", "16steps"], checkpoint_every=5,
                         keep_last=1)))
    return run


def test_branch_equals_the_run_of_its_budget(tmp_path: Path, corpus: Path, trunk: Path) -> None:
    """Steps 7-8 of a branch at step 6 == a separately trained 8-step run: weights, optimiser, metric
    records (the trunk's up to step 6 included) and FLOPs; run.json names the parent. Branch points outlive
    pruning (keep_last = 1)."""
    assert [s for s, _ in ckpt.steps(trunk)] == [6, 12, 16]
    assert all(ckpt.is_branch_point(p) for s, p in ckpt.steps(trunk) if s != 16)
    branch = tmp_path / "b8"
    result = train(resolve(branch_config(branch, trunk, 6, "8steps")))
    alone = tmp_path / "alone8"
    separate = train(resolve(config(alone, corpus, "8steps", checkpoint_every=5)))
    assert result.step == separate.step == 8 and result.flops == separate.flops > 0
    assert_same_run(branch, alone)
    lrs = [r["lr"] for r in read_records(branch / "metrics.jsonl", "train")]
    assert lrs == pytest.approx([0, 5e-4, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3, 5e-4], rel=1e-12)
    info = json.loads((branch / "run.json").read_text())
    assert info["branch"]["parent"] == str(trunk) and info["branch"]["step"] == 6
    assert json.loads((branch / "config.json").read_text())["train"]["budget"] == "8steps"
    # the last branch finishes the trunk's own schedule
    last = tmp_path / "b16"
    train(resolve(branch_config(last, trunk, 12, "16steps")))
    for a, b in zip(final_state(last), final_state(trunk), strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert deterministic_records(last) == deterministic_records(trunk)


def test_a_branch_that_did_not_carry_the_state_would_differ(tmp_path: Path, corpus: Path, trunk: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The equality above can fail: with the sampler (data position) or the RNG not restored, the
    branch's step 8 is not the separate run's."""
    from zoo.train import rng
    from zoo.train.parts import Parts

    alone = final_state(_separate(tmp_path, corpus))
    for name, target, attr in (("data", Parts, "load_sampler_state"), ("rng", rng, "restore")):
        with monkeypatch.context() as m:
            m.setattr(target, attr, lambda *a, **k: None)
            out = tmp_path / f"no-{name}"
            train(resolve(branch_config(out, trunk, 6, "8steps")))
        weights = final_state(out)[0]
        assert not all(torch.equal(weights[k], alone[0][k]) for k in weights), name


def _separate(tmp_path: Path, corpus: Path) -> Path:
    alone = tmp_path / "alone"
    train(resolve(config(alone, corpus, "8steps", checkpoint_every=5)))
    return alone


def test_an_interrupted_branch_resumes_bitwise(tmp_path: Path, corpus: Path, trunk: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A 16-step branch from step 6 killed after step 10 (checkpoint at 8) and run again == the trunk."""
    out = tmp_path / "b"
    interrupted(monkeypatch, {**branch_config(out, trunk, 6, "16steps"), "train": {
        "budget": "16steps", "checkpoint_every": 8}}, at_step=10)
    assert [s for s, _ in ckpt.steps(out)] == [8]
    train(resolve({**branch_config(out, trunk, 6, "16steps"), "train": {"budget": "16steps", "checkpoint_every": 8}}))
    for a, b in zip(final_state(out), final_state(trunk), strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert deterministic_records(out) == deterministic_records(trunk)
    assert json.loads((out / "run.json").read_text())["branch"]["step"] == 6


def test_flops_budgets_branch_at_the_cooldown_start(tmp_path: Path, corpus: Path) -> None:
    """With a FLOPs budget the trunk keeps the last checkpoint before each budget's cooldown, and the branch
    from it is the separately trained run of that FLOPs budget, charged the same FLOPs."""
    probe = tmp_path / "probe"
    per_step = train(resolve(config(probe, corpus, "4steps"))).flops / 4
    small, large = f"{7.5 * per_step:.6e}flops", f"{12.5 * per_step:.6e}flops"
    trunk = tmp_path / "trunk"
    train(resolve(config(trunk, corpus, large, branch_budgets=[small])))
    from zoo.train.branch import latest_before_cooldown
    from zoo.train.config import Budget

    step = latest_before_cooldown(trunk, Budget.parse(small), 0.25)
    assert step is not None and ckpt.is_branch_point(trunk / ckpt.step_name(step))
    branch, alone = tmp_path / "b", tmp_path / "alone"
    result = train(resolve(branch_config(branch, trunk, step, small)))
    separate = train(resolve(config(alone, corpus, small)))
    assert result.step == separate.step and result.flops == separate.flops
    assert_same_run(branch, alone)


def test_branch_errors(tmp_path: Path, corpus: Path, trunk: Path) -> None:
    def refused(args: list[str], message: str) -> None:
        code, out = _cli(["train", *args])
        assert code == 2 and message in out, out

    b = str(tmp_path / "b")
    refused(["--out", b, "--branch-from", str(trunk), "--at-step", "7", "--budget", "8steps"],
            "has no checkpoint of step 7; its checkpoints: 6, 12, 16")
    refused(["--out", b, "--branch-from", str(trunk), "--at-step", "12", "--budget", "8steps"],
            "past the start of budget 8steps's cooldown (6 steps); branch from a checkpoint at or before it "
            "(the latest: --at-step 6)")
    refused(["--out", b, "--branch-from", str(trunk), "--at-step", "16", "--budget", "32steps"],
            "was already cooling down there")
    refused(["--out", b, "--branch-from", str(trunk), "--at-step", "6", "--budget", "8steps", "--lr", "0.01"],
            "the branch's settings differ from the trunk's (optim.lr 0.001 -> 0.01)")
    refused(["--out", b, "--branch-from", str(trunk), "--at-step", "6", "--budget", "1e9flops"],
            "give a steps budget")
    refused(["--out", b, "--branch-from", str(trunk), "--at-step", "6"], "give the branch's own --budget")
    refused(["--out", b, "--branch-from", str(trunk), "--budget", "8steps"], "--branch-from and --at-step go together")
    refused(["--out", b, "--branch-from", str(tmp_path / "none"), "--at-step", "6", "--budget", "8steps"],
            "no such run directory")
    assert not (tmp_path / "b").exists()
    code, out = _cli(["train", "--out", str(tmp_path / "ok"), "--branch-from", str(trunk), "--at-step", "6",
                      "--budget", "8steps"])
    assert code == 0, out
    assert json.loads((tmp_path / "ok" / "run.json").read_text())["branch"]["step"] == 6
    linear = tmp_path / "linear"
    c = config(linear, corpus, "4steps")
    c["optim"] = {"lr": 1e-3, "warmup": 0.1}
    train(resolve(c))
    refused(["--out", b, "--branch-from", str(linear), "--at-step", "4", "--budget", "2steps"],
            "cooldown branches need a trapezoid trunk")
    fraction = tmp_path / "fraction"
    c["out"], c["optim"] = str(fraction), {"lr": 1e-3, "warmup": 0.1, "schedule": "trapezoid"}
    train(resolve(c))
    refused(["--out", b, "--branch-from", str(fraction), "--at-step", "4", "--budget", "8steps"],
            "train the trunk with an absolute warmup, optim.warmup_steps")
    with pytest.raises(ConfigError, match="optim: warmup_steps is for the constant and trapezoid schedules"):
        resolve({"optim": {"warmup_steps": 3}})
    with pytest.raises(ConfigError, match="optim.warmup_steps = 2 reaches into the cooldown of the 2-step budget"):
        train(resolve(config(tmp_path / "w", corpus, "8steps", branch_budgets=["2steps"])))
    with pytest.raises(ConfigError, match="branch_budgets: '1e9flops' must be a steps budget"):
        resolve({"train": {"budget": "8steps", "branch_budgets": ["1e9flops"]}})
