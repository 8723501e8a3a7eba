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
