"""How long a budget takes on this machine, from a short measured throughput, before any data work.

The measurement times a few optimiser steps of the run's backbone (its size, ``[model]`` settings,
sequence length, micro-batch rows and precision) with an output layer over the whole vocabulary, on
random token ids, on the run's device. It runs under a forked RNG on a model of its own, so the run
it estimates is unchanged by it. Training measures only when the budget could take a year at all
(``could_take_a_year``); ``zoo train --dry-run`` always measures.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch

from zoo.errors import ConfigError
from zoo.train.config import Budget, RunConfig

log = logging.getLogger(__name__)

YEAR_S = 365.25 * 24 * 3600.0
# Bounds no machine that trains with PyTorch falls outside: at least 1 GFLOP/s, at most 1 s of
# overhead per step. Within them, a budget under a year of work needs no measurement.
SLOWEST_FLOPS_PER_S = 1e9
MAX_STEP_OVERHEAD_S = 1.0
MEASURE_TOKENS = 2048  # rows per timed micro-batch: at most this many tokens (time scales up by rows)
MEASURE_SECONDS = 1.0  # timed steps stop after this much time (at least one, at most MEASURE_STEPS)
MEASURE_STEPS = 3


@dataclass(frozen=True)
class StepCost:
    """One optimiser step of a run: global tokens and training FLOPs (all processes), micro-batches per process."""

    tokens: int
    flops: float
    accum: int
    world: int


@dataclass(frozen=True)
class Throughput:
    """Measured: seconds per optimiser step of one process (all its micro-batches)."""

    seconds_per_step: float
    steps_timed: int
    rows_timed: int
    device: str


@dataclass(frozen=True)
class TimeEstimate:
    """A budget in steps, tokens, FLOPs and seconds on this machine."""

    steps: float
    tokens: float
    flops: float
    seconds: float
    throughput: Throughput | None

    def describe(self) -> str:
        how = ""
        if self.throughput is not None:
            t = self.throughput
            how = (f" (measured {t.seconds_per_step:.3g} s per step on {t.device}: {t.steps_timed} timed step(s) "
                   f"of {t.rows_timed} row(s) per micro-batch)")
        return f"{duration(self.seconds)}{how}"


def duration(seconds: float) -> str:
    """``seconds`` in the largest unit that reads well: 42 s, 3.5 min, 2.1 h, 4.0 days, 3.2e+13 years."""
    if not math.isfinite(seconds):
        return "forever"
    for unit, size in (("years", YEAR_S), ("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            value = seconds / size
            return f"{value:.3g} {unit}" if value < 1e4 else f"{value:.2e} {unit}"
    return f"{seconds:.2g} s"


def step_cost(cfg: RunConfig, world: int, flops_per_step: float | None = None) -> StepCost:
    """Tokens and FLOPs of one optimiser step; the FLOPs are the backbone's plus a full-vocabulary
    output layer on every token unless ``flops_per_step`` (the plan's, from prepared batches) is given."""
    from zoo.train.build import accumulation, build_backbone

    accum = accumulation(cfg.train, world)
    tokens = cfg.train.batch_size * cfg.train.seq_len * accum * world
    if flops_per_step is None:
        with torch.device("meta"):  # shapes only
            backbone = build_backbone(cfg, cfg.tokenizer.vocab_size)
        flops_per_step = _training_flops(backbone, cfg.train.seq_len, tokens)
    return StepCost(tokens, float(flops_per_step), accum, world)


def _training_flops(backbone: torch.nn.Module, seq_len: int, tokens: int) -> float:
    spec = backbone.spec  # type: ignore[attr-defined]
    head = 2.0 * spec.hidden_size * spec.vocab_size
    return 3.0 * (backbone.flops_per_token(seq_len) + head) * tokens  # type: ignore[attr-defined]


def budget_steps(budget: Budget, cost: StepCost, seconds_per_step: float | None) -> float:
    """Optimiser steps ``budget`` amounts to (a time budget needs ``seconds_per_step``)."""
    if budget.kind == "steps":
        return budget.value
    if budget.kind == "tokens":
        return math.ceil(budget.value / cost.tokens)
    if budget.kind == "flops":
        return math.ceil(budget.value / cost.flops)
    return budget.value / seconds_per_step if seconds_per_step else math.nan


def could_take_a_year(budget: Budget, cost: StepCost) -> bool:
    """Whether ``budget`` might last longer than a year on some machine within the bounds above."""
    if budget.kind == "time":
        return budget.value > YEAR_S  # the budget is the time; nothing to measure
    per_step = cost.flops / cost.world / SLOWEST_FLOPS_PER_S + MAX_STEP_OVERHEAD_S
    return budget_steps(budget, cost, None) * per_step > YEAR_S


def measure(cfg: RunConfig, device: torch.device, vocab_size: int | None = None) -> Throughput:
    """Time a few optimiser steps of ``cfg``'s backbone with a full-vocabulary output layer (see the
    module docstring); nothing of the run's RNG state is used or changed. ``vocab_size``: the
    tokenizer's, when known (else ``tokenizer.vocab_size``, the size a trained tokenizer aims at)."""
    from zoo.models.attention import AttentionLayout
    from zoo.train.build import accumulation, build_backbone
    from zoo.train.optim import build_optimizer
    from zoo.train.precision import resolve_precision

    seq, rows = cfg.train.seq_len, cfg.train.batch_size
    timed_rows = max(1, min(rows, MEASURE_TOKENS // seq))
    devices = [device] if device.type == "cuda" else []
    autocast = resolve_precision(cfg.train.precision, device).autocast_dtype is not None  # as the run trains
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(0)
        backbone = build_backbone(cfg, vocab_size or cfg.tokenizer.vocab_size).to(device)
        backbone.train()
        optimizer = build_optimizer(backbone, cfg.optim, device)
        vocab = backbone.spec.vocab_size
        ids = torch.randint(0, vocab, (timed_rows, seq), device=device)
        layout = AttentionLayout(causal=backbone.family == "decoder")

        def step() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                hidden = backbone(ids, layout)
                logits = hidden @ backbone.input_embedding().weight.t()
            loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), ids.flatten())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        step()  # warm-up: allocations, kernel selection
        times: list[float] = []
        while len(times) < MEASURE_STEPS and sum(times) < MEASURE_SECONDS:
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
    per_micro = min(times) * rows / timed_rows
    accum = accumulation(cfg.train, 1)  # rows per process and step do not depend on the process count
    return Throughput(per_micro * accum, len(times), timed_rows, str(device))


def estimate(cfg: RunConfig, cost: StepCost, throughput: Throughput | None) -> TimeEstimate:
    """``cfg.budget`` in steps, tokens, FLOPs and seconds (``throughput`` needed unless it is a time budget)."""
    budget = cfg.budget
    per_step = throughput.seconds_per_step if throughput is not None else None
    steps = budget_steps(budget, cost, per_step)
    seconds = budget.value if budget.kind == "time" else steps * per_step if per_step is not None else math.nan
    return TimeEstimate(steps, steps * cost.tokens, steps * cost.flops, seconds, throughput)


def check_time(cfg: RunConfig, device: torch.device, world: int = 1, force: bool = False) -> TimeEstimate | None:
    """Refuse (``ConfigError``) a budget that would take longer than a year here, unless ``force``.

    Measures only when ``could_take_a_year``; returns the estimate when it measured, else None."""
    cost = step_cost(cfg, world)
    if not could_take_a_year(cfg.budget, cost):
        return None
    throughput = None if cfg.budget.kind == "time" else measure(cfg, device)
    est = estimate(cfg, cost, throughput)
    if est.seconds > YEAR_S:
        work = "" if throughput is None else \
            f": {est.steps:.3g} steps of {cost.tokens:,} tokens, {est.flops:.3g} FLOPs"
        message = (f"--budget {cfg.train.budget.to_text()} (train.budget) would take about {est.describe()}{work}; lower it, "
                   f"or pass --force to train anyway")
        if not force:
            raise ConfigError(message)
        log.warning("%s; training anyway (--force)", message.split("; lower it")[0])
    else:
        log.info("estimated training time: %s", est.describe())
    return est
