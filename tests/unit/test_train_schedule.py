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
