"""Cooldown branches: one trapezoid run, several budgets (Hägele et al. 2024).

A *trunk* is a trapezoid run that keeps a checkpoint at the start of each of its
``train.branch_budgets``' cooldowns. A *branch* (``zoo train --branch-from TRUNK --at-step S --budget B``)
is an ordinary run that starts from the trunk's checkpoint of step ``S`` with its full trainer state
(weights, optimiser, RNG, data position, totals) and trains under its own budget ``B``: the rest of B's
constant phase, if any, and B's cooldown. The warmup is absolute (``optim.warmup_steps``) or absent, so
the trunk's learning rates up to ``S`` are exactly B's: the branch is bitwise the run trained with
budget ``B`` from the start, and its totals (FLOPs, tokens, steps) include the trunk's up to ``S``.

Where a cooldown starts is decided as the schedule decides it (``zoo.train.optim.lr_at``): the last step
whose spent budget ``x`` has ``x / B - (1 - cooldown) <= 0``. For steps budgets that is exact; for FLOPs
and tokens budgets the trunk predicts the next step's cost from the step just taken, and keeps the step
after which the next one would cross.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo import fileio
from zoo.errors import ConfigError
from zoo.train import checkpoint as ckpt
from zoo.train.config import Budget, OptimConfig, RunConfig
from zoo.train.resolve import RESUMABLE_CHANGES, config_changes, saved_trunk_config

log = logging.getLogger(__name__)

# What a branch may set differently from its trunk: what a resume may change, and where it starts.
BRANCH_CHANGES = (*RESUMABLE_CHANGES, "branch.source", "branch.step")


def before_cooldown(spent: float, budget: float, cooldown: float) -> bool:
    """Whether a run of ``budget`` is still at its peak (or warming up) after ``spent``: the same
    expression ``lr_at`` uses, so the branch point and the schedule agree to the last bit."""
    return (spent / budget - (1.0 - cooldown)) <= 0.0


def keep_for_branch(budgets: list[Budget], cooldown: float, spent: float, cost: float) -> bool:
    """After a step that brought the run to ``spent`` at ``cost`` (in the budget's unit): is this the last
    step before one of ``budgets``' cooldowns? The next step of a steps budget costs 1; that of a FLOPs or
    tokens budget is taken to cost up to 1.5 times this one (the cost of a step varies a little with its
    batch), so one or two checkpoints are kept, the last before the cooldown among them."""
    reach = spent + cost * (1.0 if budgets and budgets[0].kind == "steps" else 1.5)
    return any(before_cooldown(spent, b.value, cooldown) and not before_cooldown(reach, b.value, cooldown)
               for b in budgets)


def cooldown_start(budget: Budget, cooldown: float) -> float:
    """Where ``budget``'s cooldown starts, in its unit."""
    return (1.0 - cooldown) * budget.value


@dataclass(frozen=True)
class BranchPoint:
    """A checked trunk checkpoint to branch from."""

    trunk: Path
    step: int
    path: Path  # the step directory
    spent: float  # the trunk's spent budget at ``step``, in the budget's unit
    trunk_budget: str

    def record(self, budget: Budget, cooldown: float) -> dict[str, Any]:
        """``run.json``'s ``branch`` entry: the parent run and step, and where this run's cooldown starts."""
        return {"parent": str(self.trunk), "step": self.step, "parent_budget": self.trunk_budget,
                "spent_at_branch": self.spent, "cooldown_start": cooldown_start(budget, cooldown)}


def locate(cfg: RunConfig) -> BranchPoint:
    """Check that ``cfg`` can branch from ``cfg.branch``: the trunk is a trapezoid run of the same settings
    with an absolute (or no) warmup and a budget of the same kind, the step is one of its checkpoints,
    and at that step both the trunk and this run's budget are still before their cooldowns."""
    trunk, step = Path(cfg.branch.source), cfg.branch.step
    saved = saved_trunk_config(trunk)
    changes = config_changes(saved, cfg, BRANCH_CHANGES)
    if changes:
        raise ConfigError(f"--branch-from {trunk}: the branch's settings differ from the trunk's "
                          f"({', '.join(changes[:6])}); a branch trains with its trunk's settings")
    opt: OptimConfig = cfg.optim  # the trunk's, as just checked
    if opt.schedule != "trapezoid":
        raise ConfigError(f"--branch-from {trunk}: its optim.schedule is {opt.schedule!r}; cooldown branches need "
                          f"a trapezoid trunk (optim.schedule = \"trapezoid\"), whose lr is constant until a cooldown")
    if opt.warmup > 0:
        raise ConfigError(f"--branch-from {trunk}: its warmup is a fraction of its budget (optim.warmup = "
                          f"{opt.warmup:g}), so a run of another budget warms up differently; train the trunk "
                          f"with an absolute warmup, optim.warmup_steps")
    budget = cfg.budget
    if budget.kind == "time":
        raise ConfigError(f"--branch-from {trunk}: a wall-time budget ({cfg.train.budget.to_text()}) is not reproducible; "
                          f"branch with a steps, tokens or FLOPs budget")
    trunk_budget = Budget.parse(str(saved["train"]["budget"]))
    if trunk_budget.kind != budget.kind:
        raise ConfigError(f"--branch-from {trunk}: the trunk's budget is {trunk_budget} and the branch's "
                          f"{budget}; the schedule is keyed to the budget's kind, give a {trunk_budget.kind} budget")
    have = {s: p for s, p in ckpt.steps(trunk)}
    if step not in have:
        listed = ", ".join(str(s) for s in have) or "none"
        raise ConfigError(f"--at-step {step}: {trunk} has no checkpoint of step {step}; its checkpoints: {listed} "
                          f"(train.branch_budgets keeps one at each budget's cooldown start)")
    path = have[step]
    ckpt.verify(path)
    state = json.loads((path / "trainer.json").read_text())
    spent = ckpt.Counters.from_state(state).spent(budget.kind)
    schedule = state.get("schedule") or {}
    if schedule.get("extensions"):
        raise ConfigError(f"--branch-from {trunk}: its budget was extended before step {step}; branch from a trunk "
                          f"trained under one budget")
    base = float(schedule.get("base", trunk_budget.value))
    unit = {"steps": "steps", "tokens": "tokens", "flops": "FLOPs"}[budget.kind]
    if not before_cooldown(spent, base, opt.cooldown):
        raise ConfigError(f"--at-step {step}: {trunk} was already cooling down there ({spent:g} {unit} spent, its "
                          f"cooldown starts at {(1 - opt.cooldown) * base:g}); branch from its constant phase")
    if not before_cooldown(spent, budget.value, opt.cooldown):
        best = latest_before_cooldown(trunk, budget, opt.cooldown)
        raise ConfigError(f"--at-step {step}: {spent:g} {unit} are spent there, past the start of budget "
                          f"{cfg.train.budget.to_text()}'s cooldown ({cooldown_start(budget, opt.cooldown):g} {unit}); "
                          f"branch from a checkpoint at or before it"
                          + (f" (the latest: --at-step {best})" if best is not None else ""))
    return BranchPoint(trunk, step, path, spent, str(saved["train"]["budget"]))


def spent_at(step_dir: Path, kind: str) -> float:
    """A checkpoint's spent budget in ``kind``'s unit (its ``trainer.json`` totals)."""
    return ckpt.read_counters(step_dir).spent(kind)


def latest_before_cooldown(trunk: Path, budget: Budget, cooldown: float) -> int | None:
    """The step of ``trunk``'s latest checkpoint before ``budget``'s cooldown (the branch point), if any."""
    found = None
    for step, path in ckpt.steps(trunk):
        try:
            if before_cooldown(spent_at(path, budget.kind), budget.value, cooldown):
                found = step
        except (OSError, ValueError, KeyError):
            continue
    return found


def copy_history(point: BranchPoint, run_dir: Path, budget: Budget) -> int:
    """The trunk's metric records up to the branch point open the branch's ``metrics.jsonl`` (a branch is the
    whole model's history), their ``progress`` towards the branch's ``budget``; returns how many."""
    source = point.trunk / "metrics.jsonl"
    if not source.exists():
        return 0
    kept = []
    for line in source.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= point.step:
            if "progress" in record:
                record["progress"] = min(1.0, budget.progress(record["step"], record.get("tokens", 0),
                                                              record.get("flops", 0.0), record.get("elapsed_s", 0.0)))
            kept.append(json.dumps(record))
    if kept:
        fileio.write_text(run_dir / "metrics.jsonl", "\n".join(kept) + "\n")
    return len(kept)
