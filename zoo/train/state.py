"""A run's training state and checkpoints: which checkpoint a run continues from, what a checkpoint
holds (the full model and optimiser state, gathered from FSDP shards when sharded; the trainer's
totals, sampler and RNG state) and how it is written and read back.

The trainer calls four things: ``resume_point`` (before building), ``StateIO.save`` (at a
checkpoint), ``StateIO.load`` (restores weights and totals, returns the optimiser tensors) and
``StateIO.load_optimizer`` (once the optimiser exists, after wrapping).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo import __version__
from zoo.errors import CheckpointError, ConfigError
from zoo.train import checkpoint as ckpt
from zoo.train import distributed, rng
from zoo.train.config import RunConfig
from zoo.train.metrics import Averager, truncate_after
from zoo.train.optim import load_optimizer_tensors, optimizer_tensors
from zoo.train.resolve import config_changes
from zoo.typed_config import to_dict

log = logging.getLogger(__name__)

# Keys of trainer.json that resuming needs (checkpoints of older versions may hold more).
STATE_KEYS = ("step", "tokens", "flops", "train_time_s", "sampler", "rng", "interval", "interval_tokens",
              "interval_time")


@dataclass
class Totals:
    """What the trainer counts: optimiser steps, tokens, FLOPs and training time so far, and the
    metrics, mixture parts, tokens and time of the interval since the last log record."""

    step: int = 0
    tokens: int = 0
    flops: float = 0.0
    train_time: float = 0.0
    interval: Averager = field(default_factory=Averager)
    interval_parts: list[str] = field(default_factory=list)  # labels of the mixture parts run since the last log
    interval_tokens: int = 0
    interval_time: float = 0.0
    head_flops: float = 0.0  # the part of ``flops`` spent in the objectives' heads

    def to_state(self, mixture: bool) -> dict[str, Any]:
        state: dict[str, Any] = {"step": self.step, "tokens": self.tokens, "flops": self.flops,
                                 "train_time_s": self.train_time, "interval": self.interval.state(),
                                 "interval_tokens": self.interval_tokens, "interval_time": self.interval_time,
                                 "head_flops": self.head_flops}
        if mixture:
            state["interval_parts"] = list(self.interval_parts)
        return state

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> Totals:
        c = ckpt.Counters.from_state(st)
        return cls(c.step, c.tokens, c.flops, c.train_time_s, Averager(st["interval"]["sums"], st["interval"]["weights"]),
                   [str(label) for label in st.get("interval_parts", [])], st["interval_tokens"], st["interval_time"],
                   c.head_flops)

    def add(self, flops: float, head_flops: float, tokens: int, train_time: float, wall: float,
            metrics: dict[str, float], part: str | None) -> None:
        """Count a step: ``train_time`` is what it adds to the training time, ``wall`` its own duration,
        ``part`` the mixture part it ran (None: not a mixture)."""
        self.flops += flops
        self.head_flops += head_flops
        self.tokens += tokens
        self.train_time += train_time
        self.interval.add(metrics)
        if part is not None:
            self.interval_parts.append(part)
        self.interval_tokens += tokens
        self.interval_time += wall

    def reset_interval(self) -> None:
        self.interval.reset()
        self.interval_parts.clear()
        self.interval_tokens, self.interval_time = 0, 0.0


# --- where a run continues from --------------------------------------------------------------------

def resume_point(cfg: RunConfig, dist: distributed.DistInfo, resume_from: str | None,
                 resume_requested: bool) -> Path | None:
    """The verified checkpoint to continue from, or None for a fresh start."""
    run_dir = Path(cfg.run_dir)
    if dist.is_main:
        ckpt.clean_temporaries(run_dir)
    distributed.barrier(dist)
    if resume_from is not None:
        given = Path(resume_from)
        path = next((p for p in (given, run_dir / given) if p.is_dir()), None)
        if path is None:
            have = ", ".join(p.name for _, p in ckpt.steps(run_dir)) or "none"
            raise CheckpointError(f"--resume-from {given}: no such checkpoint directory (neither {given} nor "
                                  f"{run_dir / given} exists); checkpoints in {run_dir}: {have}")
        manifest = ckpt.verify(path)  # an explicitly named bad checkpoint is an error, not a fallback
        check_same_config(cfg, path)
        step = manifest.get("step")
        if not isinstance(step, int):
            raise CheckpointError(f"checkpoint {path}: {ckpt.MANIFEST} has no step number")
        _abandon_newer(run_dir, dist, step)
        return path
    path, problems = ckpt.newest_valid(run_dir)
    for problem in problems:
        log.warning("skipping damaged checkpoint: %s", problem)
    if path is None:
        if problems:  # never start over silently on top of a run whose checkpoints are all damaged
            names = ", ".join(p.name for _, p in ckpt.steps(run_dir))
            raise CheckpointError(
                f"every checkpoint in {run_dir} is damaged ({names}); first problem: {problems[-1]}. "
                f"Nothing was trained. To start over, choose another --out or remove {run_dir}")
        if resume_requested:
            raise CheckpointError(f"nothing to resume in {run_dir}: no complete checkpoint")
        return None
    check_same_config(cfg, path)
    return path


def _abandon_newer(run_dir: Path, dist: distributed.DistInfo, step: int) -> None:
    """Resuming from an older step starts a new branch: the newer step directories of the old one
    are moved aside (kept, never deleted), so that pruning and later resumes ignore them."""
    if dist.is_main:
        moved = ckpt.abandon_after(run_dir, step)
        if moved:
            log.warning("resuming from step %d: moved the newer checkpoints aside to %s (kept, no longer "
                        "used; the metrics they logged are in %s)", step, ", ".join(p.name for p in moved),
                        moved[-1] / "metrics.jsonl")
    distributed.barrier(dist)


def check_same_config(cfg: RunConfig, checkpoint: Path | None = None) -> None:
    """A run directory's saved ``config.json`` must match ``cfg`` up to the settings a resume may change.
    Without ``config.json``, the settings recorded in ``checkpoint`` (its ``trainer.json``) take its
    place; a checkpoint that records none is refused rather than continued with unknown settings."""
    run_dir = Path(cfg.run_dir)
    saved = run_dir / "config.json"
    if not saved.exists():
        old = _recorded_config(checkpoint) if checkpoint is not None else None
        if checkpoint is not None and old is None:
            raise CheckpointError(
                f"{saved} is missing and checkpoint {checkpoint} does not record the run's settings, so a resume "
                f"cannot be checked against them; restore config.json (its settings are also in "
                f"{run_dir / 'config.toml'}) or choose another --out")
        if old is None:
            return
        log.warning("%s is missing: checking the settings against those recorded in %s", saved, checkpoint)
        source = f"{checkpoint / 'trainer.json'}"
    else:
        try:
            old = json.loads(saved.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{saved}: unreadable ({exc}); it records the run's configuration, which a "
                                  f"resumed run must match") from exc
        source = str(saved)
    if not isinstance(old, dict):
        raise CheckpointError(f"{source}: expected a JSON object (the run's configuration)")
    diffs = config_changes(old, cfg)
    if diffs:
        raise ConfigError(f"{run_dir} holds a run with a different configuration ({', '.join(diffs[:6])}); "
                          f"resume it with the same settings or choose another --out")


def _recorded_config(checkpoint: Path) -> dict[str, Any] | None:
    """The settings a checkpoint's ``trainer.json`` records (None for checkpoints of earlier versions)."""
    try:
        state = json.loads((checkpoint / "trainer.json").read_text())
    except (OSError, ValueError):
        return None
    config = state.get("config") if isinstance(state, dict) else None
    return config if isinstance(config, dict) else None


# --- checkpoint contents ------------------------------------------------------------------------------

class StateIO:
    """Writes and reads a run's checkpoints for one process: the full model and optimiser state
    (gathered from and scattered to FSDP shards with ``sharded``), RNG streams and ``trainer.json``."""

    def __init__(self, cfg: RunConfig, dist: distributed.DistInfo, device: torch.device, model: nn.Module,
                 identity: dict[str, Any]) -> None:
        self.cfg, self.dist, self.device, self.model = cfg, dist, device, model
        self.run_dir = Path(cfg.run_dir)
        self.sharded = dist.enabled and cfg.train.strategy == "fsdp"
        # tokenizer_hash and vocab_size: checked on load; saved with the names of the plugins and versions
        self.identity = identity
        self.optimizer: torch.optim.Optimizer | None = None
        self.param_names: dict[int, str] = {}
        self.loaded: dict[str, Any] = {}  # trainer.json of the checkpoint resumed from

    def attach_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """After wrapping (FSDP replaces parameters with sharded ones, which the optimiser holds)."""
        self.optimizer = optimizer
        self.param_names = {id(p): n for n, p in self.model.named_parameters()}

    def start_fresh(self, seed: int, dry_run: bool) -> None:
        """A run without a checkpoint: seed the generators, drop the metric lines of an earlier
        attempt that died before its first checkpoint."""
        rng.seed_fresh(seed, self.dist.rank)
        if not dry_run and self.dist.is_main:
            dropped = truncate_after(self.run_dir / "metrics.jsonl", 0)
            if dropped:
                log.info("dropped %d metric records of an earlier attempt without a checkpoint", dropped)

    # --- write ----------------------------------------------------------------------------------
    def save(self, totals: Totals, sampler_state: dict[str, Any], mixture: bool,
             extra: dict[str, Any] | None = None) -> None:
        """Write the checkpoint of step ``totals.step`` with ``extra`` in ``trainer.json`` (rank 0 writes;
        every rank gathers and learns whether the write worked)."""
        rng_tensors, rng_states = rng.capture(self.dist, self.device)
        # Each rank's metric sums since the last log record (their means are averaged over ranks when logged).
        intervals = distributed.all_gather_blobs(json.dumps(totals.interval.state()).encode(), self.dist)
        model_state = {k: v.detach().cpu().contiguous() for k, v in self._full_model_state().items()}
        state = {
            **totals.to_state(mixture), "sampler": sampler_state, "rng": rng_states,
            "objective": self.cfg.objective.text, "backbone": self.cfg.backbone, **self.identity,
            "world_size": self.dist.world_size, "zoo_version": __version__, **(extra or {}),
            "config": to_dict(self.cfg),  # what resuming checks against when config.json is lost
        }
        if self.dist.enabled:
            state["interval_ranks"] = {f"rank{r}": json.loads(blob) for r, blob in enumerate(intervals)}
        checkpoint = ckpt.Checkpoint(model_state, self._full_optimizer_state(), rng_tensors, state)
        error: Exception | None = None
        if self.dist.is_main:
            try:
                path = ckpt.write(self.run_dir, totals.step, checkpoint, self.cfg.train.keep_last)
                log.info("checkpoint %s", path.name)
            except Exception as exc:  # e.g. refused non-finite tensors: the other ranks must learn of it
                error = exc
        failed = distributed.failed_ranks(error is not None, self.dist)  # also the barrier after the write
        if error is not None:
            raise error
        if failed:
            raise CheckpointError(f"rank 0 could not write checkpoint {ckpt.step_name(totals.step)} (its error is "
                                  f"printed above); rank {self.dist.rank} stops too")

    def _full_model_state(self) -> dict[str, torch.Tensor]:
        if self.sharded:  # a collective: every rank gathers, rank 0 receives the full tensors
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            return get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return self.model.state_dict()

    def _full_optimizer_state(self) -> dict[str, torch.Tensor]:
        assert self.optimizer is not None
        if self.sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

            full = get_optimizer_state_dict(self.model, self.optimizer,
                                            options=StateDictOptions(full_state_dict=True, cpu_offload=True))
            return {f"{name}/{key}": t.detach().cpu().contiguous() if isinstance(t, torch.Tensor) else torch.tensor(t)
                    for name, entry in full.get("state", {}).items() for key, t in entry.items()}
        return optimizer_tensors(self.optimizer, self.param_names)

    # --- read -----------------------------------------------------------------------------------
    def load(self, path: Path, restore_sampler: Any) -> tuple[Totals, dict[str, torch.Tensor]]:
        """Restore weights, sampler (``restore_sampler(state)``) and RNG from ``path``; returns the totals
        and the optimiser tensors (loaded with ``load_optimizer`` once the optimiser exists)."""
        saved = ckpt.read(path)
        st = saved.state
        self.loaded = st
        missing = [k for k in STATE_KEYS if k not in st]
        if missing:
            raise CheckpointError(f"{path / 'trainer.json'}: missing {', '.join(missing)} (written by another "
                                  f"program or an incompatible version)")
        for key, want in self.identity.items():
            if st.get(key) != want:
                raise CheckpointError(f"checkpoint {path} was trained with {key} {st.get(key)!r}, but the run's "
                                      f"tokenizer ({self.run_dir / 'tokenizer.json'}) has {want!r}")
        if st.get("world_size", 1) != self.dist.world_size:
            log.warning("resuming a %d-process checkpoint on %d processes: the data order is kept, "
                        "dropout streams are not", st.get("world_size", 1), self.dist.world_size)
        try:
            missing, unexpected = self.model.load_state_dict(saved.model, strict=False)
        except RuntimeError as exc:  # shape mismatches raise even with strict=False
            detail = "; ".join(line.strip().rstrip(".") for line in str(exc).splitlines()[1:4])
            raise CheckpointError(f"checkpoint {path} does not fit this model: {detail}") from exc
        if missing or unexpected:
            raise CheckpointError(f"checkpoint {path} does not fit this model: missing {missing[:3]}, "
                                  f"unexpected {unexpected[:3]}")
        try:
            restore_sampler(st["sampler"])
            rng.restore(saved.rng, st["rng"], self.dist, self.device)
            totals = Totals.from_state(st)
            own = st.get("interval_ranks", {}).get(f"rank{self.dist.rank}")
            if own is not None and st.get("world_size", 1) == self.dist.world_size:
                totals.interval = Averager(own["sums"], own["weights"])
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
            raise CheckpointError(f"checkpoint {path}: sampler, RNG or metric state unusable "
                                  f"({type(exc).__name__}: {exc})") from exc
        if self.dist.is_main:
            dropped = truncate_after(self.run_dir / "metrics.jsonl", totals.step)
            if dropped:
                log.info("dropped %d metric records logged after step %d", dropped, totals.step)
        log.info("resuming from %s (step %d)", path.name, totals.step)
        return totals, saved.optimizer

    def load_optimizer(self, tensors: dict[str, torch.Tensor], path: Path | None) -> None:
        assert self.optimizer is not None
        try:
            if self.sharded:
                from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

                state: dict[str, dict[str, torch.Tensor]] = {}
                for key, t in tensors.items():
                    name, _, skey = key.rpartition("/")
                    state.setdefault(name, {})[skey] = t
                groups = [{**{k: v for k, v in g.items() if k != "params"},
                           "params": [self.param_names[id(p)] for p in g["params"]]}
                          for g in self.optimizer.param_groups]
                set_optimizer_state_dict(self.model, self.optimizer, {"state": state, "param_groups": groups},
                                         options=StateDictOptions(full_state_dict=True))
            else:
                load_optimizer_tensors(self.optimizer, tensors, self.param_names)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"checkpoint {path}: optimizer state does not fit: {exc}") from exc
