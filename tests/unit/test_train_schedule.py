"""The learning-rate schedule equals transformers' schedulers step for step."""

from __future__ import annotations

import pytest
import torch
from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

from zoo.train.config import OptimConfig
from zoo.train.optim import lr_at


def reference(schedule: str, lr: float, steps: int, warmup_steps: int) -> list[float]:
    """The lr that transformers' scheduler gives each of ``steps`` optimiser steps."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    make = {"linear": get_linear_schedule_with_warmup, "cosine": get_cosine_schedule_with_warmup}[schedule]
    sched = make(opt, num_warmup_steps=warmup_steps, num_training_steps=steps)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])  # the lr the step runs at
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("warmup", [0.0, 0.2])
def test_steps_budget_matches_transformers(schedule: str, warmup: float) -> None:
    n, lr = 10, 1e-3
    cfg = OptimConfig(lr=lr, warmup=warmup, schedule=schedule, min_lr_ratio=0.0)
    ours = [lr_at(k / n, cfg) for k in range(n)]  # what the trainer passes for steps 1..n
    assert ours == pytest.approx(reference(schedule, lr, n, round(warmup * n)), rel=1e-12, abs=1e-15)
    assert ours[-1] > 0  # the last step still learns
    if warmup == 0:
        assert ours[0] == lr  # and so does a 1-step run


def test_trapezoid_shape_at_known_points() -> None:
    """Warmup 10%, flat at the peak, linear decay to min_lr_ratio x lr over the last 20%."""
    cfg = OptimConfig(lr=1e-3, warmup=0.1, schedule="trapezoid", cooldown=0.2, min_lr_ratio=0.1)
    points = {0.0: 0.0, 0.05: 5e-4, 0.1: 1e-3, 0.5: 1e-3, 0.8: 1e-3, 0.9: 5.5e-4, 1.0: 1e-4}
    for progress, lr in points.items():
        assert lr_at(progress, cfg) == pytest.approx(lr, rel=1e-12, abs=1e-15), progress


def test_linear_with_half_warmup_is_the_cramming_one_cycle() -> None:
    """Geiping & Goldstein's one-cycle: lr x k/(N/2) up to the middle, lr x (2 - k/(N/2)) after."""
    n, lr = 20, 1e-3
    cfg = OptimConfig(lr=lr, warmup=0.5, schedule="linear", min_lr_ratio=0.0)
    for k in range(n):
        expected = lr * (k / (n / 2) if k < n / 2 else 2 - k / (n / 2))
        assert lr_at(k / n, cfg) == pytest.approx(expected, rel=1e-12, abs=1e-15), k


@pytest.mark.parametrize("warmup,cooldown", [(0.0, 0.0), (0.5, 0.6), (0.1, 1.2)])
def test_trapezoid_cooldown_must_fit_after_the_warmup(warmup: float, cooldown: float) -> None:
    with pytest.raises(ValueError, match="cooldown is the final fraction of the budget"):
        OptimConfig(warmup=warmup, schedule="trapezoid", cooldown=cooldown)


# --- changing the budget on resume (zoo.train.schedule) ------------------------------------------------

from zoo.errors import ConfigError  # noqa: E402
from zoo.train.config import Budget  # noqa: E402
from zoo.train.schedule import Schedule  # noqa: E402


def test_unextended_schedule_is_lr_at() -> None:
    cfg = OptimConfig(lr=1e-3, warmup=0.1, schedule="trapezoid", cooldown=0.2)
    s = Schedule.fresh(Budget.parse("10steps"), cfg)
    assert [s.lr(k) for k in range(10)] == [lr_at(k / 10, cfg) for k in range(10)]


def test_extending_a_finished_trapezoid_rewarms_then_cools_down_again() -> None:
    """10 steps finished at the floor; 20 steps: back to the peak, held to 16, cooled over 16..20."""
    cfg = OptimConfig(lr=1e-3, warmup=0.1, schedule="trapezoid", cooldown=0.2, min_lr_ratio=0.1)
    s = Schedule.fresh(Budget.parse("10steps"), cfg)
    note = s.extend(Budget.parse("20steps"), 10, "runs/x")
    assert note is not None and "10 steps -> 20 steps" in note and "back to the peak" in note
    assert "until 16 steps" in note
    lrs = [s.lr(k) for k in range(10, 20)]
    assert lrs[:6] == [1e-3] * 6  # steps 11..16
    assert lrs[6:] == pytest.approx([1e-3 - 9e-4 * t / 4 for t in range(4)], rel=1e-12)
    assert s.to_state()["extensions"] == [{"at": 10.0, "lr": pytest.approx(1e-4), "budget": 20.0}]
    again = Schedule.from_state(s.to_state(), cfg)  # a resumed extended run computes the same
    assert [again.lr(k) for k in range(10, 20)] == lrs
    assert again.extend(Budget.parse("20steps"), 15, "runs/x") is None  # same budget: nothing changes


def test_extending_a_trapezoid_during_its_peak_just_moves_the_cooldown() -> None:
    cfg = OptimConfig(lr=1e-3, warmup=0.1, schedule="trapezoid", cooldown=0.2)
    s = Schedule.fresh(Budget.parse("10steps"), cfg)
    s.extend(Budget.parse("20steps"), 5, "runs/x")
    full = Schedule.fresh(Budget.parse("20steps"), cfg)
    # after the warmup (which keeps its 1 step), the same as a run started with 20 steps
    assert [s.lr(k) for k in range(5, 20)] == pytest.approx([full.lr(k) for k in range(5, 20)], rel=1e-12)


def test_extending_a_running_linear_schedule_continues_the_decay() -> None:
    cfg = OptimConfig(lr=1e-3, warmup=0.1, schedule="linear")
    s = Schedule.fresh(Budget.parse("10steps"), cfg)
    here = s.lr(6)
    note = s.extend(Budget.parse("20steps"), 6, "runs/x")
    assert note is not None and "linear decay from lr" in note
    lrs = [s.lr(k) for k in range(6, 21)]
    assert lrs[0] == here and lrs[-1] == 0.0  # continuous, and at the floor at the new end
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_extending_a_finished_decay_is_refused(schedule: str) -> None:
    cfg = OptimConfig(lr=1e-3, warmup=0.1, schedule=schedule)
    s = Schedule.fresh(Budget.parse("10steps"), cfg)
    with pytest.raises(ConfigError, match="finished its budget of 10 steps.*--init runs/x.*trapezoid"):
        s.extend(Budget.parse("20steps"), 10, "runs/x")


def test_changing_the_budget_kind_is_refused() -> None:
    s = Schedule.fresh(Budget.parse("10steps"), OptimConfig())
    with pytest.raises(ConfigError, match="keyed to the run's steps budget"):
        s.extend(Budget.parse("1e9flops"), 5, "runs/x")
