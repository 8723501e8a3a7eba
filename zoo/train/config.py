"""The run configuration: one typed tree, built from CLI flags, ``--config`` TOML and ``--set``.

Sections: top level (objective, backbone, size, out), ``[model]`` (backbone fields),
``[objectives.<name>]`` (each objective's Config), ``[data]``, ``[tokenizer]``, ``[optim]``,
``[train]``. Types only: ``zoo.train.resolve`` builds one from raw settings and checks everything,
including the backbone and objective sections against the plugins' own Config dataclasses, before
anything is allocated.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from zoo.data import DataConfig, TokenizerConfig
from zoo.objectives.spec import Spec, parse_spec, path_name
from zoo.sizes import Size
from zoo.typed_config import bounded, check_fields

_BUDGET = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(s|m|h|steps?|flops?|tokens?)\s*$")
_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Budget:
    """How long to train: wall time (seconds, excluding eval and checkpoints), steps, FLOPs or tokens."""

    kind: Literal["time", "steps", "flops", "tokens"]
    value: float
    text: str = field(default="", compare=False, repr=False)  # as written (``2m``); ``to_text`` writes it back

    @classmethod
    def from_text(cls, text: str) -> Budget:
        """The config field's value from its text (``typed_config``)."""
        return cls.parse(text)

    def to_text(self) -> str:
        """The text the budget was given as, else a canonical one (``120s``, ``2000steps``)."""
        if self.text:
            return self.text
        return f"{self.value:g}s" if self.kind == "time" else f"{self.value:g}{self.kind}".replace("+", "")

    @classmethod
    def parse(cls, text: str) -> Budget:
        m = _BUDGET.match(text)
        if not m:
            raise ValueError(
                f"budget {text!r} not understood; expected e.g. 10m, 90s, 1.5h, 2000steps, 3e14flops, 5e6tokens"
            )
        number, unit = float(m.group(1)), m.group(2)
        if not math.isfinite(number):
            raise ValueError(f"budget {text!r} is not a finite number (it overflows a 64-bit float); a run must end")
        if number <= 0:
            raise ValueError(f"budget {text!r} must be positive")
        if unit in _SECONDS:
            return cls("time", number * _SECONDS[unit], text.strip())
        kind = {"step": "steps", "flop": "flops", "token": "tokens"}[unit.rstrip("s")]
        if kind == "steps" and not number.is_integer():
            raise ValueError(f"budget {text!r}: a step budget must be a whole number")
        return cls(kind, number, text.strip())  # type: ignore[arg-type]

    def progress(self, steps: int, tokens: float, flops: float, seconds: float) -> float:
        """The fraction of this budget that ``steps`` optimiser steps, ``tokens``, ``flops`` and
        ``seconds`` of training time have used (>= 1.0: the budget is reached)."""
        done = {"steps": steps, "tokens": tokens, "flops": flops, "time": seconds}[self.kind]
        return done / self.value

    def __str__(self) -> str:
        if self.kind == "time":
            return f"{self.value:g}s (wall time, excluding evaluation and checkpoints)"
        return f"{self.value:g} {self.kind}"


@dataclass
class OptimConfig:
    lr: float = bounded(5e-4, gt=0.0)
    betas: tuple[float, float] = bounded((0.9, 0.98), ge=0.0, lt=1.0)
    eps: float = bounded(1e-6, gt=0.0)
    # decoupled; on every matrix (embeddings too, as BERT/HF do), not on biases and norms
    weight_decay: float = bounded(0.01, ge=0.0)
    grad_clip: float = bounded(1.0, ge=0.0)  # 0 disables
    warmup: float = bounded(0.05, ge=0.0, lt=1.0)  # fraction of the budget
    # absolute warmup in optimiser steps (constant and trapezoid schedules); > 0 replaces ``warmup`` (set to 0)
    warmup_steps: int = bounded(0, ge=0)
    schedule: Literal["linear", "cosine", "constant", "trapezoid"] = "linear"
    min_lr_ratio: float = bounded(0.0, ge=0.0, le=1.0)  # final lr as a fraction of lr
    cooldown: float = bounded(0.2, gt=0.0, le=1.0)  # trapezoid only: the final fraction of the budget, a linear decay to the floor
    implementation: Literal["auto", "fused", "foreach", "for-loop"] = "auto"

    def __post_init__(self) -> None:
        if self.warmup_steps > 0:
            if self.schedule not in ("constant", "trapezoid"):
                raise ValueError(f"warmup_steps is for the constant and trapezoid schedules (their later lr does not "
                                 f"depend on where the warmup ends); with schedule {self.schedule!r} give "
                                 f"optim.warmup, a fraction of the budget")
            self.warmup = 0.0  # one warmup: the absolute one
        if self.schedule == "trapezoid" and not (0 < self.cooldown <= 1 - self.warmup):
            raise ValueError(f"cooldown is the final fraction of the budget, in (0, 1 - warmup] = "
                             f"(0, {1 - self.warmup:g}], got {self.cooldown}")
        check_fields(self, "optim")


REPORTERS = ("tensorboard", "wandb")  # train.report_to values (zoo.train.metrics)


@dataclass
class TrainerConfig:
    budget: Budget = field(default_factory=lambda: Budget.parse("2m"))  # written as text: 2m, 2000steps, 3e14flops
    seq_len: int = bounded(128, ge=1)
    batch_size: int = bounded(32, ge=1)  # rows per micro-batch per process
    batch_tokens: int = bounded(0, ge=0)  # target tokens per optimiser step (gradient accumulation); 0 = one micro-batch
    grad_accum: int = bounded(0, ge=0)  # micro-batches per optimiser step on each process; 0 = from batch_tokens
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    compile: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    strategy: Literal["ddp", "fsdp"] = "ddp"  # when launched with several processes
    seed: int = bounded(0, ge=0, le=2**63 - 1)  # numpy's generators take no negative seeds
    log_every: int = bounded(10, ge=1)
    eval_every: int = bounded(200, ge=0)  # steps; 0 = only at the end
    eval_batches: int = bounded(20, ge=1)
    checkpoint_every: int = bounded(0, ge=0)  # steps; 0 = only the wall-time ones and the end
    # budgets (the run's kind) whose cooldown start gets a kept checkpoint, to branch cooldowns from (trapezoid)
    branch_budgets: list[Budget] = field(default_factory=list)
    checkpoint_minutes: float = bounded(5.0, ge=0.0)  # wall time between checkpoints; 0 = by steps only (and at the end)
    keep_last: int = bounded(3, ge=1)
    peak_flops: float = bounded(0.0, ge=0.0)  # for MFU; 0 = known GPU default (H100/H200 bf16), none on CPU
    tensorboard: bool = False  # the same as "tensorboard" in report_to
    report_to: list[str] = field(default_factory=list)  # metric sinks beside metrics.jsonl: tensorboard, wandb
    prefetch: bool = True  # prepare the next batch in a background thread
    # collective timeout with several processes (rank 0 alone builds data, writes checkpoints)
    dist_timeout_s: float = bounded(1800.0, gt=0.0)

    def __post_init__(self) -> None:
        if isinstance(self.budget, str):  # built in Python with the text
            self.budget = Budget.parse(self.budget)
        self.branch_budgets = [Budget.parse(b) if isinstance(b, str) else b for b in self.branch_budgets]
        for b in self.branch_budgets:
            if b.kind != self.budget.kind or b.kind == "time":
                raise ValueError(f"branch_budgets: {b.to_text()!r} must be a {self.budget.kind} budget like "
                                 f"train.budget ({self.budget.to_text()}), and not wall time")
        check_fields(self, "train")
        if self.grad_accum and self.batch_tokens:
            raise ValueError(f"grad_accum ({self.grad_accum}) and batch_tokens ({self.batch_tokens}) both set the "
                             "micro-batches per optimiser step; give one")
        unknown = [r for r in self.report_to if r not in REPORTERS]
        if unknown:
            raise ValueError(f"report_to: unknown {unknown[0]!r}; expected any of {', '.join(REPORTERS)}")

    @property
    def reporters(self) -> list[str]:
        """Metric sinks beside ``metrics.jsonl``: ``report_to``, with ``tensorboard = true`` counted in."""
        names = list(dict.fromkeys(self.report_to))
        if self.tensorboard and "tensorboard" not in names:
            names.insert(0, "tensorboard")
        return names


@dataclass
class InitConfig:
    """Where a run's weights start (``--init``); empty ``source``: random initialisation.

    ``revision`` and ``sha256`` may be given to pin a source; a fresh run records the hub commit and
    the weights' sha256 it actually loaded (``zoo.train.init``)."""

    source: str = ""  # transformers directory, hf:NAME[@REVISION], zoo run or step directory
    revision: str = ""  # hub revision (hf:NAME@REVISION sets it too)
    sha256: str = ""  # of the weights file


@dataclass
class BranchConfig:
    """Where a cooldown branch starts (``--branch-from RUN --at-step S``): a trunk run's checkpoint, whose
    full trainer state the run continues from under its own budget (``zoo.train.branch``)."""

    source: str = ""  # the trunk's run directory
    step: int = bounded(0, ge=0)  # the trunk checkpoint's step


@dataclass
class RunConfig:
    objective: Spec = field(default_factory=lambda: parse_spec("mlm+nsp"))  # written as text: mlm+nsp, mntp:15|clm:1
    backbone: str = "bert"
    size: Size = "mini"
    out: str = ""  # default: runs/<backbone>-<objective>
    model: dict[str, Any] = field(default_factory=dict)  # backbone Config fields (override the size preset)
    objectives: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-objective Config fields
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainerConfig = field(default_factory=TrainerConfig)
    init: InitConfig = field(default_factory=InitConfig)
    branch: BranchConfig = field(default_factory=BranchConfig)
    # ``--init`` as ``zoo.train.resolve`` located it (an ``InitSource``); not a setting: never written or compared
    located_init: Any = field(default=None, init=False, compare=False, repr=False, metadata={"transient": True})

    @property
    def budget(self) -> Budget:
        """``train.budget``."""
        return self.train.budget

    def __post_init__(self) -> None:
        if isinstance(self.objective, str):  # built in Python with the text
            self.objective = parse_spec(self.objective)

    @property
    def run_dir(self) -> str:
        return self.out or f"runs/{self.backbone}-{path_name(self.objective.text)}"
