"""The budgets of a curve study (``--budgets``): their checks, relative budgets planned by ``--hours``,
and the absolute budgets a plan gives them (``zoo.compare.branches`` trains them)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from zoo.errors import ConfigError
from zoo.train.config import Budget

if TYPE_CHECKING:
    from zoo.compare.study import StudySettings

CURVE_KEYS = ("optim.schedule", "optim.cooldown", "optim.warmup", "train.branch_budgets")  # the study sets them
RATIO_LIMIT = 1e6  # a "ratio" this large is an absolute budget given with --hours


def check_budgets(settings: StudySettings) -> None:
    """``--budgets``: two or more distinct budgets of one kind (steps, tokens or FLOPs), ``budget`` the
    longest; or, in a study planned by ``--hours`` and not planned yet, two or more relative budgets
    (``relative_budgets``). A cooldown in (0, 1); no override of the schedule the study sets."""
    if settings.budget is None and settings.hours is not None:
        relative_budgets(settings.budgets)
    else:
        try:
            parsed = [Budget.parse(b) for b in settings.budgets]
        except ValueError as exc:
            raise ConfigError(f"--budgets: {exc}") from exc
        kinds = {b.kind for b in parsed}
        if len(kinds) > 1 or "time" in kinds:
            raise ConfigError(f"--budgets {','.join(settings.budgets)}: give budgets of one kind, steps, tokens or "
                              f"FLOPs (wall time is not reproducible)")
        if len(parsed) < 2 or len({b.value for b in parsed}) != len(parsed):
            raise ConfigError(f"--budgets {','.join(settings.budgets)}: give two or more different budgets")
        if max(parsed, key=lambda b: b.value) != settings.budget:
            shown = settings.budget.to_text() if settings.budget else "none"
            raise ConfigError(f"--budgets: the study's budget ({shown}) must be the longest of them")
    if not 0.0 < settings.cooldown < 1.0:
        raise ConfigError(f"--cooldown must be in (0, 1), the final fraction of each budget; got {settings.cooldown}")
    for item in settings.train_overrides:
        key = item.partition("=")[0].strip()
        if key in CURVE_KEYS:
            raise ConfigError(f"--set {item!r}: a curve study trains a trapezoid trunk with --cooldown and an "
                              f"absolute warmup (--set optim.warmup_steps=N); it sets {key} itself")


def relative_budgets(budgets: str | list[str] | tuple[str, ...]) -> tuple[float, ...]:
    """``--budgets 1,2,4,8`` with ``--hours``: plain positive numbers, two or more and all different, as
    ratios to the smallest (``(1.0, 2.0, 4.0, 8.0)``, in the order given). A budget with a unit
    (``1e12flops``) or a number too large for a ratio is refused: the planner chooses the FLOPs."""
    items = [b.strip() for b in (budgets.split(",") if isinstance(budgets, str) else budgets) if b.strip()]
    shown = ",".join(items)
    values = []
    for item in items:
        try:
            value = float(item)
        except ValueError:
            raise ConfigError(f"--budgets {shown}: with --hours the budgets are relative (e.g. 1,2,4,8: ratios to "
                              f"the smallest) and the planner chooses their FLOPs; {item!r} is not a plain number. "
                              f"Give ratios, or absolute budgets (1e13,2e13flops) without --hours") from None
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"--budgets {shown}: relative budgets must be positive finite numbers, got {item!r}")
        if value >= RATIO_LIMIT:
            raise ConfigError(f"--budgets {shown}: {item} looks like an absolute budget; with --hours the budgets "
                              f"are relative (e.g. 1,2,4,8) and the planner chooses their FLOPs. Give ratios, or "
                              f"absolute budgets without --hours")
        values.append(value)
    if len(values) < 2 or len(set(values)) != len(values):
        raise ConfigError(f"--budgets {shown}: give two or more different budgets, e.g. 1,2,4,8")
    smallest = min(values)
    return tuple(v / smallest for v in values)


def is_relative(budgets: str) -> bool:
    """Whether ``--budgets`` text names plain numbers (relative budgets), no unit."""
    return all(not p.strip().lstrip("0123456789.eE+-") for p in budgets.split(",") if p.strip())


def planned_budgets(top: float, ratios: tuple[float, ...] | list[float]) -> list[str]:
    """The absolute budgets of a planned curve: ``top * r_i / r_max`` for each ratio, shortest first, each
    rounded down to two significant digits (``zoo.compare.plan.flops_text``; the top one is ``top``'s)."""
    from zoo.compare.plan import flops_text

    texts = [flops_text(top * r / max(ratios)) for r in sorted(ratios)]
    if len(set(texts)) != len(texts):
        raise ConfigError(f"--budgets: at two significant digits the planned budgets {', '.join(texts)} are not all "
                          f"different; give ratios further apart")
    return texts


def split_budgets(text: str) -> list[str]:
    """``1e13,2e13,4e13flops`` -> each with the unit (given on the last one, or on each)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ConfigError("--budgets: name two or more budgets, e.g. 1e13,2e13,4e13flops")
    unit = parts[-1].lstrip("0123456789.eE+-")
    return [p if p.lstrip("0123456789.eE+-") else p + unit for p in parts]
