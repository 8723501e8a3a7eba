"""The learning-rate schedule of a run, and what changing its budget on resume means.

The schedule is a function of the budget (``zoo.train.optim.lr_at``). A run keeps the budget it
started with; a resume with another budget adds an *extension*, recorded in every later checkpoint,
so that a resumed extended run computes exactly what an uninterrupted one does:

- ``constant``: the warmup keeps its length; nothing else depends on the budget.
- ``trapezoid``: the peak is held (a finished or cooling run returns to the peak: a rewarm) until
  the new budget's final ``cooldown`` fraction, which decays linearly to the floor. When the new
  budget leaves no room for a peak phase, the decay continues from the reached lr to the floor.
- ``linear`` / ``cosine``: the decay continues from the reached lr and ends at the floor at the new
  budget (a run extended during its warmup finishes the warmup and decays over the new budget).
  A finished run has decayed to the floor: extending it is refused, naming the alternatives.

The warmup always keeps its original length. The budget's kind (steps, tokens, FLOPs, time) cannot change.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from zoo.errors import ConfigError
from zoo.train.config import Budget, OptimConfig
from zoo.train.optim import lr_at

_UNIT = {"steps": "steps", "tokens": "tokens", "flops": "FLOPs", "time": "s"}


def _amount(kind: str, value: float) -> str:
    return f"{value:g} {_UNIT[kind]}" if kind != "time" else f"{value:g}s"


@dataclass(frozen=True)
class Extension:
    """From ``at`` (spent, in the budget's unit), where the schedule had reached ``lr``, run to ``budget``."""

    at: float
    lr: float
    budget: float


@dataclass
class Schedule:
    """``lr(spent)``: the learning rate of the step taken after ``spent`` units of the budget."""

    cfg: OptimConfig
    kind: str
    base: float  # the budget the run started with
    extensions: list[Extension] = field(default_factory=list)

    @classmethod
    def fresh(cls, budget: Budget, cfg: OptimConfig) -> Schedule:
        return cls(cfg, budget.kind, budget.value)

    @property
    def end(self) -> float:
        """The budget the schedule runs to now."""
        return self.extensions[-1].budget if self.extensions else self.base

    def lr(self, spent: float, steps: int | None = None) -> float:
        """``steps``: the optimiser steps taken (an absolute ``optim.warmup_steps`` counts them)."""
        if not self.extensions:  # exactly the unextended schedule (transformers' functions for steps)
            return lr_at(spent / self.base, self.cfg, steps)
        cfg = self.cfg
        if cfg.warmup_steps > 0 and steps is not None and steps < cfg.warmup_steps:
            return cfg.lr * steps / cfg.warmup_steps
        return self._extended(spent, self.extensions[-1])

    def _extended(self, x: float, ext: Extension) -> float:
        cfg = self.cfg
        peak, floor = cfg.lr, cfg.lr * cfg.min_lr_ratio
        warm_end = cfg.warmup * self.base  # the warmup keeps its length
        if x < warm_end:
            return peak * x / warm_end
        if cfg.schedule == "constant":
            return peak
        if cfg.schedule == "trapezoid":
            start = max(warm_end, (1.0 - cfg.cooldown) * ext.budget)
            if ext.at <= start:  # room for a peak phase: hold (or return to) the peak, then cool down
                if x < start:
                    return peak
                return peak - (peak - floor) * min(1.0, (x - start) / (ext.budget - start))
            start, level = ext.at, ext.lr
            return level - (level - floor) * min(1.0, (x - start) / (ext.budget - start))
        start, level = (warm_end, peak) if ext.at <= warm_end else (ext.at, ext.lr)
        t = min(1.0, max(0.0, (x - start) / max(ext.budget - start, 1e-12)))
        if cfg.schedule == "cosine":
            return floor + (level - floor) * 0.5 * (1.0 + math.cos(math.pi * t))
        return level - (level - floor) * t

    def extend(self, budget: Budget, spent: float, run: str, steps: int | None = None) -> str | None:
        """Continue towards ``budget`` from ``spent``: records an extension and returns what it means in
        words, or None when nothing changes. Refuses what cannot be continued honestly."""
        if budget.kind != self.kind:
            raise ConfigError(
                f"{run}: the learning-rate schedule is keyed to the run's {self.kind} budget "
                f"({_amount(self.kind, self.end)}); resume it with a {self.kind} budget (--budget), "
                f"or start a new run from it with --init {run} --out NEW_DIR")
        if budget.value == self.end or spent >= budget.value:
            return None
        cfg = self.cfg
        old = _amount(self.kind, self.end)
        new = _amount(self.kind, budget.value)
        here = self.lr(spent, steps)
        if abs(here - cfg.lr * cfg.min_lr_ratio) < cfg.lr * 1e-9:  # the floor up to rounding (2e-19 for 0)
            here = cfg.lr * cfg.min_lr_ratio
        if cfg.schedule in ("linear", "cosine") and spent >= self.end and cfg.warmup * self.base < spent:
            raise ConfigError(
                f"{run} finished its budget of {old}: its {cfg.schedule} schedule has decayed to the floor "
                f"(lr {here:.3g}), so --budget {new} would train at the floor. To train further, start a new "
                f"run from it (--init {run} --out NEW_DIR: a fresh warmup and decay over the new budget), or "
                f"train with optim.schedule = \"trapezoid\", whose budget can be extended (docs/training.md)")
        ext = Extension(float(spent), here, float(budget.value))
        self.extensions.append(ext)
        at = _amount(self.kind, spent)
        what = f"budget {old} -> {new}: the learning-rate schedule continues from {at} (lr {here:.3g}): "
        floor = cfg.lr * cfg.min_lr_ratio
        warm_end = cfg.warmup * self.base
        if spent < warm_end:
            what += f"the warmup ends at {_amount(self.kind, warm_end)} as before, then "
        if cfg.schedule == "constant":
            return what + f"constant lr {cfg.lr:.3g}"
        if cfg.schedule == "trapezoid":
            start = max(warm_end, (1.0 - cfg.cooldown) * budget.value)
            if spent <= start:
                back = "back to " if here < cfg.lr and spent >= warm_end else ""
                return what + (f"{back}the peak lr {cfg.lr:.3g} until {_amount(self.kind, start)}, then a linear "
                               f"cooldown to {floor:.3g} at {new}")
            return what + f"a linear decay from lr {here:.3g} to {floor:.3g} at {new}"
        level = f"the peak lr {cfg.lr:.3g}" if spent < warm_end else f"lr {here:.3g}"
        return what + f"a {cfg.schedule} decay from {level} to {floor:.3g} at {new}"

    def to_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "base": self.base, "extensions": [asdict(e) for e in self.extensions]}

    @classmethod
    def from_state(cls, state: dict[str, Any], cfg: OptimConfig) -> Schedule:
        return cls(cfg, str(state["kind"]), float(state["base"]),
                   [Extension(float(e["at"]), float(e["lr"]), float(e["budget"])) for e in state["extensions"]])
