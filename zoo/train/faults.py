"""Fault injection for reliability tests, driven by the ``ZOO_FAULT`` environment variable.

``ZOO_FAULT`` holds comma-separated rules:
  kill@step=N         SIGKILL this process right after optimiser step N (before its checkpoint)
  kill@ckpt=PHASE     SIGKILL while writing a checkpoint; PHASE is after-weights, after-optimizer
                      or before-rename (the first checkpoint written)
  nan@step=N          make the loss of step N non-finite
  hold@step=N         after optimiser step N, wait until the file named by ZOO_FAULT_RELEASE exists
  hold@stage=store    the same, once a token store is built in its temporary directory (before the rename)
  kill@rank=R         (with kill@step) only rank R dies
  nan@rank=R          (with nan@step) only rank R's loss is non-finite
Unset in normal use; reading it costs one dict lookup per step. The training loop reaches these
rules only through ``StepFaults``, whose wrappers go around its model call and its step.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from zoo.objectives.base import LossOutput

P = ParamSpec("P")
R = TypeVar("R")

_ENV = "ZOO_FAULT"


def _rules() -> dict[str, str]:
    spec = os.environ.get(_ENV, "")
    rules: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, _, value = part.partition("=")
        rules[key] = value
    return rules


def _rank_matches(rules: dict[str, str], rank: int, kind: str = "kill") -> bool:
    return f"{kind}@rank" not in rules or int(rules[f"{kind}@rank"]) == rank


def maybe_kill_at_step(step: int, rank: int = 0) -> None:
    rules = _rules()
    if rules.get("kill@step") == str(step) and _rank_matches(rules, rank):
        os.kill(os.getpid(), signal.SIGKILL)


def maybe_hold_at_step(step: int) -> None:
    if _rules().get("hold@step") == str(step):
        _hold()


def maybe_hold_at_stage(stage: str) -> None:
    if _rules().get("hold@stage") == stage:
        _hold()


def _hold() -> None:
    release = os.environ.get("ZOO_FAULT_RELEASE", "")
    while release and not os.path.exists(release):
        time.sleep(0.05)


def maybe_kill_in_checkpoint(phase: str) -> None:
    if _rules().get("kill@ckpt") == phase:
        os.kill(os.getpid(), signal.SIGKILL)


def nan_at_step(step: int, rank: int = 0) -> bool:
    rules = _rules()
    return rules.get("nan@step") == str(step) and _rank_matches(rules, rank, "nan")


class StepFaults:
    """The per-step fault hooks of one rank: wrappers for the training loop's step (``after_step``) and its
    model call (``nan``); ``step`` says which step is being taken."""

    def __init__(self, rank: int, step: Callable[[], int]) -> None:
        self.rank = rank
        self.step = step

    def around_step(self, take: Callable[P, R]) -> Callable[P, R]:
        """``take`` (one step, accounted for), then the kill and hold rules of that step."""

        def taken(*args: P.args, **kwargs: P.kwargs) -> R:
            result = take(*args, **kwargs)
            self.after_step(self.step())
            return result

        return taken

    def around_loss(self, forward: Callable[P, LossOutput]) -> Callable[P, LossOutput]:
        """``forward`` (the model call), its loss made non-finite on the step of a nan rule."""

        def forward_(*args: P.args, **kwargs: P.kwargs) -> LossOutput:
            out = forward(*args, **kwargs)
            if self.nan(self.step()):
                return dataclasses.replace(out, loss=out.loss * float("nan"))
            return out

        return forward_

    def after_step(self, step: int) -> None:
        maybe_kill_at_step(step, self.rank)
        maybe_hold_at_step(step)

    def nan(self, step: int) -> bool:
        return nan_at_step(step, self.rank)
