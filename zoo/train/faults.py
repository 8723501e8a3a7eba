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
rules only through ``StepFaults``.
"""

from __future__ import annotations

import os
import signal
import time

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
    """The per-step fault hooks of one rank: what the training loop calls after each step and on each loss."""

    def __init__(self, rank: int) -> None:
        self.rank = rank

    def after_step(self, step: int) -> None:
        maybe_kill_at_step(step, self.rank)
        maybe_hold_at_step(step)

    def nan(self, step: int) -> bool:
        return nan_at_step(step, self.rank)
