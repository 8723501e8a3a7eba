"""When the training loop logs, evaluates and writes a checkpoint. Each is a component built from
the run's settings that says, after each step, whether it is due; the loop asks and acts.

The decisions that concern every rank (a stop request, a wall-time checkpoint) are made on what the
ranks agreed on for the step (``Step``), so every rank takes them together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zoo.train import branch, interrupt
from zoo.train.config import Budget, RunConfig


@dataclass(frozen=True)
class Step:
    """An optimiser step as the ranks agreed on it, after it was accounted for."""

    number: int
    sampler_state: dict[str, Any]  # the samplers' state after it (what its checkpoint resumes from)
    flops: float  # over all ranks
    tokens: int  # over all ranks
    spent: float  # the budget spent, in its unit, with this step
    stop: bool  # a rank was asked to stop (a signal)
    clock: bool  # a rank's wall-time checkpoint clock is due


@dataclass(frozen=True)
class Every:
    """Due every ``n`` steps (0: never) and after the final step."""

    n: int

    def due(self, step: int, finished: bool) -> bool:
        return (self.n > 0 and step % self.n == 0) or finished


class Checkpointing:
    """A checkpoint is due every ``train.checkpoint_every`` steps, after the final step, on a stop request,
    every ``train.checkpoint_minutes`` of wall time since the last one, and at the last step before the
    cooldown of each of ``train.branch_budgets`` (a branch point, kept to branch cooldowns from)."""

    def __init__(self, every: int, minutes: float, branch_budgets: list[Budget], cooldown: float, kind: str) -> None:
        self.every = Every(every)
        self.clock = interrupt.CheckpointClock(minutes)
        self.branch_budgets = branch_budgets
        self.cooldown = cooldown
        self.kind = kind  # the budget's unit

    @classmethod
    def from_config(cls, cfg: RunConfig) -> Checkpointing:
        t = cfg.train
        return cls(t.checkpoint_every, t.checkpoint_minutes, t.branch_budgets, cfg.optim.cooldown, t.budget.kind)

    def start(self) -> None:
        """Training starts: the wall time between checkpoints counts from here."""
        self.clock.reset()

    def clock_due(self) -> bool:
        """This rank's wall-time clock (the ranks agree on it before ``due``)."""
        return self.clock.due()

    def branch_point(self, step: Step) -> bool:
        """Is ``step`` the last before one of the branch budgets' cooldowns?"""
        if not self.branch_budgets:
            return False
        cost = {"steps": 1.0, "flops": step.flops, "tokens": float(step.tokens)}.get(self.kind, 0.0)
        return branch.keep_for_branch(self.branch_budgets, self.cooldown, step.spent, cost)

    def due(self, step: Step, finished: bool, branch_point: bool) -> bool:
        return self.every.due(step.number, finished) or step.stop or step.clock or branch_point

    def saved(self) -> None:
        """A checkpoint was written: the wall-time clock starts again."""
        self.clock.reset()
