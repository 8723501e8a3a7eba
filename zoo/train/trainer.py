"""The shared trainer. It serves every compatible (objective, backbone) pair, built-in or plugin,
and contains no objective-specific code: it asks the objective what data it needs, lets it
prepare each batch, and optimises whatever loss it returns.

One optimiser step = ``accum`` micro-batches on each of ``world`` processes. The sampler draws
the *global* step batch; micro-batch ``m = k * world + rank`` is chunk ``m`` of it, so a run on
2 processes sees exactly the rows of a 1-process run with 2 accumulation steps.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo import registry
from zoo.batch import Batch
from zoo.data import tokenizer_hash
from zoo.errors import CheckpointError
from zoo.objectives.base import LossOutput
from zoo.train import branch, distributed, estimate, faults, interrupt, rundir
from zoo.train import checkpoint as ckpt
from zoo.train.build import (
    accumulation,
    build_backbone,
    build_data,
    build_run_objective,
    check_run_compatible,
)
from zoo.train.cadence import Checkpointing, Every, Step
from zoo.train.config import Budget, RunConfig
from zoo.train.estimate import TimeEstimate
from zoo.train.evaluate import evaluate_parts
from zoo.train.finite import Bad, check_finite
from zoo.train.init import apply_init, locate
from zoo.train.metrics import (
    Averager,
    Record,
    Sinks,
    check_reporters,
    default_peak_flops,
)
from zoo.train.optim import build_optimizer, set_lr
from zoo.train.parts import Parts, StepBatches
from zoo.train.precision import Precision, resolve_for_run, resolve_precision, warn_if_emulated
from zoo.train.prefetch import prefetched
from zoo.train.schedule import Schedule
from zoo.train.state import StateIO, Totals, resume_point
from zoo.train.validate import validate
from zoo.typed_config import from_dict, to_dict
from zoo.zoo_model import ZooModel

log = logging.getLogger(__name__)

@dataclass
class TrainResult:
    run_dir: Path
    step: int
    tokens: int
    flops: float
    train_time_s: float
    final: Record  # last train record
    eval: Record | None  # last evaluation record
    params: int


@dataclass
class Plan:
    """What a run will do, for ``--dry-run`` and the run header."""

    config: RunConfig
    params: int
    params_no_embeddings: int
    flops_per_step: float
    tokens_per_step: int
    accum: int
    budget: Budget
    precision: Precision
    backbone_flops_per_token: float = 0.0  # forward pass, without heads
    resolved: dict[str, Any] | None = None  # the run config with the backbone's and objectives' full settings
    estimate: TimeEstimate | None = None  # the budget in steps, tokens, FLOPs and seconds here


class Trainer:
    def __init__(self, cfg: RunConfig, *, resume: bool = False, resume_from: str | None = None,
                 callback: Callable[[Record], None] | None = None) -> None:
        self.cfg = cfg
        self.budget = cfg.budget
        self.run_dir = Path(cfg.run_dir)
        self.resume_requested = resume or resume_from is not None
        self.resume_from = resume_from
        self.callback = callback
        info = distributed.env_info()
        cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        self.device = distributed.select_device(cfg.train.device, info, cuda_count)
        self.dist = distributed.init(info, self.device, cfg.train.dist_timeout_s)
        self.precision = resolve_precision(cfg.train.precision, self.device)  # final in setup (resume)
        self.autocast_dtype = self.precision.autocast_dtype
        self.seed = cfg.train.seed
        # when the loop logs, evaluates and writes a checkpoint
        self.logging, self.evaluating = Every(cfg.train.log_every), Every(cfg.train.eval_every)
        self.checkpointing = Checkpointing.from_config(cfg)

    # --- set-up --------------------------------------------------------------------------------
    def setup(self, dry_run: bool = False) -> None:
        """Build data, model and optimiser (resuming if a checkpoint exists). ``dry_run`` writes no run files."""
        cfg, info = self.cfg, self.dist
        check_run_compatible(cfg)  # before any allocation
        start = None if dry_run else resume_point(cfg, info, self.resume_from, self.resume_requested)
        last_budget = rundir.saved_budget(self.run_dir) if start is not None else None
        self.precision = resolve_for_run(cfg.train.precision, self.device, self.run_dir, start is not None)
        self.autocast_dtype = self.precision.autocast_dtype
        log.info("precision %s (%s)", self.precision.name, self.precision.reason)
        warn_if_emulated(self.precision, self.device)
        family = registry.load("backbone", cfg.backbone).family
        # A branch starts from its trunk's checkpoint (on its first start; then from its own).
        self.branch = branch.locate(cfg) if cfg.branch.source and start is None and not dry_run else None
        # --init is read on a fresh start only: a resumed run continues from its own checkpoint
        fresh = start is None and self.branch is None and not cfg.branch.source
        # located once, during resolution (a config built another way is located here)
        self.init = (cfg.located_init or locate(cfg.init.source, cfg.init.revision)) if cfg.init.source and fresh else None
        given = self.init.tokenizer if self.init is not None else None
        if self.branch is not None:
            from tokenizers import Tokenizer

            given = Tokenizer.from_file(str(self.branch.trunk / "tokenizer.json"))
        self.data = build_data(cfg, family, info, given, dry_run)
        self.tokens = self.data.special
        self.tokenizer_hash = tokenizer_hash(self.data.tokenizer)

        torch.manual_seed(self.seed)  # identical initial weights on every rank
        backbone = build_backbone(cfg, self.tokens.vocab_size)
        self.objective = build_run_objective(cfg, self.tokens, backbone)
        model = ZooModel(backbone, self.objective)
        self.init_record = apply_init(self.init, model, cfg.init) if self.init is not None and not dry_run else None
        # the configuration as saved (config.json, checkpoints, reporters): with the --init weights' pins
        saved_cfg = self.init_record.pin(cfg) if self.init_record is not None else cfg
        self.model = model.to(self.device)

        seq_len = cfg.train.seq_len
        self.accum = accumulation(cfg.train, info.world_size)
        self.global_rows = cfg.train.batch_size * self.accum * info.world_size
        # One data source and sampler per part (a plain objective is one part).
        self.parts = Parts(self.objective, self.data, seq_len, self.tokens, family, self.global_rows, self.seed)

        self.totals = Totals()
        self.state = StateIO(saved_cfg, info, self.device, self.model,
                             {"tokenizer_hash": self.tokenizer_hash, "vocab_size": self.tokens.vocab_size})
        saved_optimizer: dict[str, torch.Tensor] | None = None
        if start is not None:
            self.totals, saved_optimizer = self.state.load(start, self.parts.load_sampler_state)
        elif self.branch is not None:
            self.totals, saved_optimizer = self.state.load(self.branch.path, self.parts.load_sampler_state)
            if info.is_main:
                branch.copy_history(self.branch, self.run_dir, self.budget)
            log.info("branching from %s at step %d: budget %s", self.branch.trunk, self.branch.step, self.budget)
        else:
            self.state.start_fresh(self.seed, dry_run)
        self.schedule = self._schedule(start is not None, last_budget)

        self.backbone_flops_per_token = backbone.flops_per_token(seq_len)
        if dry_run:
            return
        # A mixture step leaves the other parts' heads without gradients, which DDP must be told.
        self.wrapped = distributed.wrap(self.model, info, cfg.train.strategy, self.device,
                                        find_unused=self.parts.mixture is not None)
        # After wrapping: FSDP replaces parameters with sharded ones, which the optimiser must hold.
        self.optimizer = build_optimizer(self.model, cfg.optim, self.device)
        self.state.attach_optimizer(self.optimizer)
        if saved_optimizer is not None:
            self.state.load_optimizer(saved_optimizer, start or (self.branch.path if self.branch else None))
        # The fault injection of the reliability tests (``ZOO_FAULT``) wraps the model call and the step.
        hooks = faults.StepFaults(info.rank, lambda: self.totals.step)
        self.forward = hooks.around_loss(torch.compile(self.wrapped) if cfg.train.compile else self.wrapped)
        self.take_step = hooks.around_step(self._step)
        if info.is_main:
            # a branch names its parent, a run its --init source (run.json keeps both when it resumes)
            parent = self.branch.record(self.budget, cfg.optim.cooldown) if self.branch is not None else None
            init = self.init_record.to_dict() if self.init_record is not None else None
            rundir.write_config(self.run_dir, saved_cfg)
            rundir.write_run_info(self.run_dir, cfg, {
                "tokenizer_hash": self.tokenizer_hash, "vocab_size": self.tokens.vocab_size,
                "family": self.model.backbone.family, "backbone_config": to_dict(self.model.backbone.config),
                "parameters": sum(p.numel() for p in self.model.parameters()), "data": self.data.stats,
                "init": init, "schedule": self.schedule.to_state(),
                "precision": self.precision.record(), **({"branch": parent} if parent else {})})
        self.sinks = (Sinks.for_run(self.run_dir, cfg.train.reporters, self.callback, to_dict(saved_cfg))
                      if info.is_main else Sinks([]))  # only rank 0 logs
        self.peak = cfg.train.peak_flops or default_peak_flops(self.device)

    def _schedule(self, resumed: bool, last_budget: str | None) -> Schedule:
        """The run's learning-rate schedule: keyed to the budget it started with; a resume with another
        budget extends it (``zoo.train.schedule``), said in the log and recorded in every later checkpoint."""
        if not resumed:
            return Schedule.fresh(self.budget, self.cfg.optim)
        saved = self.state.loaded.get("schedule")
        if isinstance(saved, dict):
            try:
                schedule = Schedule.from_state(saved, self.cfg.optim)
            except (KeyError, TypeError, ValueError) as exc:
                raise CheckpointError(f"{self.run_dir}: trainer.json has an unusable schedule record ({exc})") from exc
        else:  # a checkpoint of an older version: its schedule was keyed to the last attempt's budget
            try:
                base = Budget.parse(last_budget) if last_budget else self.budget
            except ValueError:
                base = self.budget
            schedule = Schedule.fresh(base, self.cfg.optim)
        t = self.totals
        note = schedule.extend(self.budget, self._spent(t.step, t), str(self.run_dir), t.step)
        if note:
            log.info("%s", note)
        return schedule

    def _spent(self, steps: int, t: Totals) -> float:
        """How much of the budget's unit ``steps`` steps and the totals' tokens, FLOPs and time are."""
        return {"steps": steps, "tokens": t.tokens, "flops": t.flops, "time": t.train_time}[self.budget.kind]

    def plan(self) -> Plan:
        """FLOPs per step: a mixture's are the share-weighted mean over its parts."""
        tokens = self.global_rows * self.cfg.train.seq_len
        total_share = sum(part.share for part in self.parts)
        flops = sum(part.share / total_share * self._step_flops([part.peek(self.cfg.train.batch_size)])
                    for part in self.parts)
        resolved = to_dict(self.cfg)
        resolved["model"] = to_dict(self.model.backbone.config)
        resolved["objectives"] = {name: to_dict(from_dict(registry.load("objective", name).Config,
                                                          self.cfg.objectives.get(name), path=f"objectives.{name}"))
                                  for name in self.cfg.objective.names}
        return Plan(self.cfg, sum(p.numel() for p in self.model.parameters()),
                    self.model.backbone.num_parameters(exclude_embeddings=True),
                    flops * self.accum * self.dist.world_size, tokens, self.accum, self.budget, self.precision,
                    self.backbone_flops_per_token, resolved)

    # --- data ------------------------------------------------------------------------------------
    def _step_batches(self) -> StepBatches:
        """For each future step: the sampler state after it, and this rank's prepared micro-batches."""
        d = self.dist
        return self.parts.step_batches(self.totals.step, self.accum, d.world_size, d.rank, self.cfg.train.batch_size)

    def _prefetched(self) -> StepBatches:
        return prefetched(self._step_batches()) if self.cfg.train.prefetch else self._step_batches()

    # --- accounting ------------------------------------------------------------------------------
    def _step_flops(self, batches: list[Batch]) -> float:
        return self._step_flops_split(batches)[0]

    def _step_flops_split(self, batches: list[Batch]) -> tuple[float, float]:
        """Training FLOPs of ``batches`` and the part of them in the heads."""
        return self.parts.training_flops_split(batches, self.backbone_flops_per_token,
                                               getattr(self.model.backbone, "batch_flops", None))

    def _progress(self) -> float:
        t = self.totals
        return self.budget.progress(t.step, t.tokens, t.flops, t.train_time)

    # --- the loop ----------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        t = self.totals
        last_record: Record = {}
        last_eval: Record | None = None
        if self._progress() >= 1.0:
            log.info("budget %s already reached at step %d", self.budget, t.step)
        batches = self._prefetched()
        self.model.train()
        stop = interrupt.StopRequest().install()
        self.checkpointing.start()
        try:
            while self._progress() < 1.0:
                step = self.take_step(batches, stop)
                finished = self._progress() >= 1.0
                if self.logging.due(step.number, finished):
                    last_record = self._log()
                if self.evaluating.due(step.number, finished):
                    last_eval = self.evaluate()
                branch_point = self.checkpointing.branch_point(step)
                if self.checkpointing.due(step, finished, branch_point):
                    self.state.save(t, step.sampler_state, self.parts.mixture is not None,
                                    {"schedule": self.schedule.to_state(),
                                     **({"branch_point": True} if branch_point else {})})
                    self.checkpointing.saved()
                if step.stop and not finished:
                    raise interrupt.interrupted(stop, ckpt.step_name(step.number), self.run_dir, self.dist.rank)
        finally:
            stop.restore()
            batches.close()
            self.sinks.close()
        return TrainResult(self.run_dir, t.step, t.tokens, t.flops, t.train_time, last_record, last_eval,
                           sum(p.numel() for p in self.model.parameters()))

    def _step(self, batches: StepBatches, stop: interrupt.StopRequest) -> Step:
        """Take the next step and account for it. The ranks agree on its FLOPs, on the step time of a time
        budget, on a stop request and on a wall-time checkpoint."""
        t = self.totals
        t0 = time.perf_counter()
        sampler_state, micro = next(batches)
        t.step += 1
        out_metrics, (step_flops, step_head_flops), step_tokens = self._train_step(micro)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        dt = time.perf_counter() - t0
        timed = self.budget.kind == "time"
        flags = torch.tensor([step_flops, step_head_flops, dt if timed else 0.0,
                              stop.requested, self.checkpointing.clock_due()], dtype=torch.float64)
        distributed.all_reduce(flags[:2], self.dist, "sum")
        distributed.all_reduce(flags[2:], self.dist, "max")
        t.add(float(flags[0]), float(flags[1]), step_tokens, float(flags[2]) if timed else dt, dt, out_metrics,
              self.parts.at(t.step).label if self.parts.mixture is not None else None)
        return Step(t.step, sampler_state, float(flags[0]), step_tokens, self._spent(t.step, t), bool(flags[3]),
                    bool(flags[4]))

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _train_step(self, micro: list[tuple[np.ndarray, Batch]]
                    ) -> tuple[dict[str, float], tuple[float, float], int]:
        cfg = self.cfg
        t = self.totals  # the step being taken is counted already; tokens, FLOPs and time are not
        lr = self.schedule.lr(self._spent(t.step - 1, t), t.step - 1)
        set_lr(self.optimizer, lr)
        metrics = Averager()
        batches = []
        bad: Bad | None = None
        for k, (indices, cpu_batch) in enumerate(micro):
            batch = cpu_batch.to(self.device, non_blocking=True)
            batches.append(cpu_batch)
            sync = k == len(micro) - 1 or not self.dist.enabled or cfg.train.strategy != "ddp"
            ctx = contextlib.nullcontext() if sync else self.wrapped.no_sync()
            with ctx:
                with self._autocast():
                    out: LossOutput = self.forward(batch)
                value = float(out.loss.detach())
                if bad is None and not math.isfinite(value):
                    bad = (out, value, indices)
                if sync:  # before a backward with collectives: every rank stops together, none waits
                    what = None if bad is None else (cfg.objective.text, self.parts.at(self.totals.step).objective.unit,
                                                     self.seed)
                    check_finite(bad, self.dist, self.totals.step, self.run_dir, what)
                if bad is None:
                    (out.loss / len(micro)).backward()
            metrics.add({"loss": value, **{k2: float(v) for k2, v in out.metrics.items()}})
        clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")  # inf: the norm, not clipped
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        means = metrics.means()
        means["lr"] = lr
        means["grad_norm"] = float(gnorm)
        step_tokens = sum(b.slots() for b in batches) * self.dist.world_size
        return means, self._step_flops_split(batches), step_tokens

    def _log(self) -> Record:
        means = distributed.mean_over_ranks(self.totals.interval.means(), self.dist)
        tps = self.totals.interval_tokens / self.totals.interval_time if self.totals.interval_time > 0 else 0.0
        record: Record = {"kind": "train", "step": self.totals.step, "loss": means.pop("loss", float("nan"))}
        record.update({k: v for k, v in means.items() if k not in ("lr", "grad_norm")})
        record.update(self.objective.derived_metrics({"loss": record["loss"], **means}))
        if self.parts.mixture is not None:  # the part each step of the interval ran, in order
            record["parts"] = list(self.totals.interval_parts)
        record.update({
            "lr": means.get("lr", 0.0), "grad_norm": means.get("grad_norm", 0.0), "tokens": self.totals.tokens,
            "flops": self.totals.flops, "head_flops": self.totals.head_flops,
            "progress": min(1.0, self._progress()), "tokens_per_s": tps,
            "elapsed_s": self.totals.train_time,
        })
        if self.peak > 0 and self.totals.interval_time > 0:
            flops_per_s = self.totals.flops / max(self.totals.train_time, 1e-9)
            record["mfu"] = flops_per_s / (self.peak * self.dist.world_size)
        self.sinks.write(record)
        self.totals.reset_interval()
        return record

    def evaluate(self) -> Record:
        """Loss and metrics on the held-out split (``zoo.train.evaluate``), logged as an eval record."""
        t0 = time.perf_counter()
        model = self.wrapped if self.cfg.train.strategy == "fsdp" and self.dist.enabled else self.model
        result = evaluate_parts(model, self.parts, self.parts.mixture is not None, self.cfg.train.batch_size,
                                self.cfg.train.eval_batches, self.seed, self.device, self._autocast)
        if result is None:
            return {}
        loss, means = result
        record: Record = {"kind": "eval", "step": self.totals.step, "loss": loss}
        record.update(means)
        record.update(self.objective.derived_metrics({"loss": record["loss"], **means}))
        record.update({"tokens": self.totals.tokens, "flops": self.totals.flops, "head_flops": self.totals.head_flops})
        self.sinks.write(record)
        # Evaluation time is not training time: time budgets exclude it.
        log.debug("evaluation took %.2fs", time.perf_counter() - t0)
        return record


def train(cfg: RunConfig, *, resume: bool = False, resume_from: str | None = None,
          callback: Callable[[Record], None] | None = None, force: bool = False) -> TrainResult:
    """Check the settings, claim and lock the run directory, then build and train (or resume).
    ``force``: train a budget estimated to take longer than a year too."""
    setup_stop = interrupt.SetupStop().install()  # until training starts, a signal stops at once
    claim: rundir.RunClaim | None = None
    rank = 0
    try:
        validate(cfg, force)
        check_reporters(cfg.train.reporters)  # a missing logging package fails before any work
        trainer = Trainer(cfg, resume=resume, resume_from=resume_from, callback=callback)
        rank = trainer.dist.rank
        with rundir.claim(trainer.run_dir, cfg, trainer.dist.is_main) as claim:
            distributed.barrier(trainer.dist)
            trainer.setup()
            claim.started()
            setup_stop.restore()  # from here on the training loop's StopRequest answers signals
            result = trainer.fit()
            distributed.finish(trainer.dist)  # drains gloo's worker before teardown (a deadlock otherwise)
            return result
    except interrupt.SetupSignal as exc:
        removed = claim is not None and claim.created and not claim.run_dir.exists()
        raise interrupt.setup_interrupted(exc, Path(cfg.run_dir), removed, rank) from None
    finally:
        setup_stop.restore()
        distributed.shutdown()


def plan(cfg: RunConfig) -> Plan:
    """Everything ``--dry-run`` reports, without writing a run directory."""
    validate(cfg, check_time=False)  # the dry run reports the estimate instead of refusing
    trainer = Trainer(cfg)
    try:
        trainer.setup(dry_run=True)
        p = trainer.plan()
        cost = estimate.StepCost(p.tokens_per_step, p.flops_per_step, p.accum, trainer.dist.world_size)
        p.estimate = estimate.estimate(cfg, cost, estimate.measure(cfg, trainer.device, trainer.tokens.vocab_size))
        return p
    finally:
        distributed.shutdown()

