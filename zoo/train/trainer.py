"""The shared trainer. It serves every compatible (objective, backbone) pair, built-in or plugin,
and contains no objective-specific code: it asks the objective what data it needs, lets it
prepare each batch, and optimises whatever loss it returns.

One optimiser step = ``accum`` micro-batches on each of ``world`` processes. The sampler draws
the *global* step batch; micro-batch ``m = k * world + rank`` is chunk ``m`` of it, so a run on
2 processes sees exactly the rows of a 1-process run with 2 accumulation steps.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo import __version__, registry
from zoo.batch import Batch
from zoo.config import dump_toml, to_dict
from zoo.data import build_datasets, tokenizer_hash
from zoo.errors import CheckpointError, ConfigError, NonFiniteLossError
from zoo.model import ZooModel
from zoo.objectives.base import LossOutput
from zoo.train import checkpoint as ckpt
from zoo.train import distributed, faults, interrupt, rng, rundir
from zoo.train.build import build_backbone, build_objective, check_compatible, tokenizer_config
from zoo.train.config import Budget, RunConfig, config_changes
from zoo.train.init import apply_init, locate, recorded_init
from zoo.train.metrics import Averager, JsonlSink, Record, Sinks, TensorBoardSink, truncate_after
from zoo.train.optim import build_optimizer, load_optimizer_tensors, lr_at, optimizer_tensors, set_lr
from zoo.train.parts import Part, Parts
from zoo.train.validate import validate

log = logging.getLogger(__name__)

# Dense (no sparsity) bf16 peak of known accelerators by device-name fragment, for model FLOPs
# utilisation; the first fragment found in the name wins, so the PCIe and NVL H100s come first.
PEAK_FLOPS = {"H100 PCIe": 756e12, "H100 NVL": 835e12, "H100": 989e12, "H200": 989e12, "A100": 312e12}


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


def _precision(name: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype, or None for plain fp32."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return torch.bfloat16 if name == "bf16" else None


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
        self.autocast_dtype = _precision(cfg.train.precision, self.device)
        self.seed = cfg.train.seed

    # --- set-up --------------------------------------------------------------------------------
    def setup(self, dry_run: bool = False) -> None:
        """Build data, model and optimiser (resuming if a checkpoint exists). ``dry_run`` writes no run files."""
        cfg, info = self.cfg, self.dist
        check_compatible(cfg)  # before any allocation
        start = None if dry_run else self._resume_point()
        family = registry.load("backbone", cfg.backbone).family
        # --init is read on a fresh start only: a resumed run continues from its own checkpoint
        self.init = locate(cfg.init.source, cfg.init.revision) if cfg.init.source and start is None else None
        given = self.init.tokenizer if self.init is not None else None
        tok_cfg = tokenizer_config(cfg)
        if dry_run:
            existing = (self.run_dir / "tokenizer.json").exists()
            self.data = build_datasets(cfg.data, tok_cfg, family, self.run_dir if existing else None, given)
        elif info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.data = build_datasets(cfg.data, tok_cfg, family, self.run_dir, given)
        distributed.barrier(info)
        if not dry_run and not info.is_main:  # tokenizer and shard cache now exist: loading is instant
            self.data = build_datasets(cfg.data, tok_cfg, family, self.run_dir, given)
        self.tokens = self.data.special
        self.tokenizer_hash = tokenizer_hash(self.data.tokenizer)

        torch.manual_seed(self.seed)  # identical initial weights on every rank
        backbone = build_backbone(cfg, self.tokens.vocab_size)
        self.objective = build_objective(cfg, self.tokens, backbone)
        model = ZooModel(backbone, self.objective)
        self.init_record = apply_init(self.init, model, cfg.init) if self.init is not None and not dry_run else None
        self.model = model.to(self.device)

        seq_len = cfg.train.seq_len
        rows_per_micro = cfg.train.batch_size
        per_micro_tokens = rows_per_micro * seq_len * info.world_size
        self.accum = max(1, math.ceil(cfg.train.batch_tokens / per_micro_tokens)) if cfg.train.batch_tokens else 1
        self.global_rows = rows_per_micro * self.accum * info.world_size
        # One data source and sampler per part (a plain objective is one part).
        self.parts = Parts(self.objective, self.data, seq_len, self.tokens, family, self.global_rows, self.seed)

        self.step, self.tokens_seen, self.flops, self.train_time = 0, 0, 0.0, 0.0
        self.interval = Averager()
        self.interval_parts: list[str] = []  # labels of the mixture parts run since the last log
        self.interval_tokens, self.interval_time = 0, 0.0
        saved_optimizer: dict[str, torch.Tensor] | None = None
        if start is not None:
            saved_optimizer = self._load(start)
        else:
            torch.manual_seed(self.seed + 1 + info.rank)  # dropout streams differ per rank
            random.seed(self.seed + info.rank)  # global generators a plugin may use: saved and restored too
            np.random.seed((self.seed + info.rank) % 2**32)
            if not dry_run and info.is_main:  # lines of an attempt that died before its first checkpoint
                dropped = truncate_after(self.run_dir / "metrics.jsonl", 0)
                if dropped:
                    log.info("dropped %d metric records of an earlier attempt without a checkpoint", dropped)

        self.backbone_flops_per_token = backbone.flops_per_token(seq_len)
        if dry_run:
            return
        # A mixture step leaves the other parts' heads without gradients, which DDP must be told.
        self.wrapped = distributed.wrap(self.model, info, cfg.train.strategy, self.device,
                                        find_unused=self.parts.mixture is not None)
        # After wrapping: FSDP replaces parameters with sharded ones, which the optimiser must hold.
        self.optimizer = build_optimizer(self.model, cfg.optim, self.device)
        self.param_names = {id(p): n for n, p in self.model.named_parameters()}
        if saved_optimizer is not None:
            self._load_optimizer(saved_optimizer, start)
        self.forward = torch.compile(self.wrapped) if cfg.train.compile else self.wrapped
        if info.is_main:
            self._write_run_files()
        sinks: list[Any] = []
        if info.is_main:
            sinks.append(JsonlSink(self.run_dir / "metrics.jsonl"))
            if cfg.train.tensorboard:
                sinks.append(TensorBoardSink(self.run_dir / "tensorboard"))
        self.sinks = Sinks(sinks, self.callback if info.is_main else None)
        self.peak = cfg.train.peak_flops or self._default_peak()

    def _default_peak(self) -> float:
        if self.device.type != "cuda":
            return 0.0
        name = torch.cuda.get_device_name(self.device)
        return next((v for k, v in PEAK_FLOPS.items() if k in name), 0.0)

    def _resume_point(self) -> Path | None:
        """The verified checkpoint to continue from, or None for a fresh start."""
        if self.dist.is_main:
            ckpt.clean_temporaries(self.run_dir)
        distributed.barrier(self.dist)
        if self.resume_from is not None:
            given = Path(self.resume_from)
            path = next((p for p in (given, self.run_dir / given) if p.is_dir()), None)
            if path is None:
                have = ", ".join(p.name for _, p in ckpt.steps(self.run_dir)) or "none"
                raise CheckpointError(f"--resume-from {given}: no such checkpoint directory (neither {given} nor "
                                      f"{self.run_dir / given} exists); checkpoints in {self.run_dir}: {have}")
            manifest = ckpt.verify(path)  # an explicitly named bad checkpoint is an error, not a fallback
            self._check_same_config()
            step = manifest.get("step")
            if not isinstance(step, int):
                raise CheckpointError(f"checkpoint {path}: {ckpt.MANIFEST} has no step number")
            self._abandon_newer(step)
            return path
        path, problems = ckpt.newest_valid(self.run_dir)
        for problem in problems:
            log.warning("skipping damaged checkpoint: %s", problem)
        if path is None:
            if problems:  # never start over silently on top of a run whose checkpoints are all damaged
                names = ", ".join(p.name for _, p in ckpt.steps(self.run_dir))
                raise CheckpointError(
                    f"every checkpoint in {self.run_dir} is damaged ({names}); first problem: {problems[-1]}. "
                    f"Nothing was trained. To start over, choose another --out or remove {self.run_dir}")
            if self.resume_requested:
                raise CheckpointError(f"nothing to resume in {self.run_dir}: no complete checkpoint")
            return None
        self._check_same_config()
        return path

    def _abandon_newer(self, step: int) -> None:
        """Resuming from an older step starts a new branch: the newer step directories of the old one
        are moved aside (kept, never deleted), so that pruning and later resumes ignore them."""
        if self.dist.is_main:
            moved = ckpt.abandon_after(self.run_dir, step)
            if moved:
                log.warning("resuming from step %d: moved the newer checkpoints aside to %s (kept, no longer "
                            "used; the metrics they logged are in %s)", step, ", ".join(p.name for p in moved),
                            moved[-1] / "metrics.jsonl")
        distributed.barrier(self.dist)

    def _check_same_config(self) -> None:
        saved = self.run_dir / "config.json"
        if not saved.exists():
            return
        try:
            old = json.loads(saved.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{saved}: unreadable ({exc}); it records the run's configuration, which a "
                                  f"resumed run must match") from exc
        if not isinstance(old, dict):
            raise CheckpointError(f"{saved}: expected a JSON object (the run's configuration)")
        diffs = config_changes(old, self.cfg)
        if diffs:
            raise ConfigError(f"{self.run_dir} holds a run with a different configuration ({', '.join(diffs[:6])}); "
                              f"resume it with the same settings or choose another --out")

    def _write_run_files(self) -> None:
        (self.run_dir / "config.toml").write_text(dump_toml(to_dict(self.cfg)))
        (self.run_dir / "config.json").write_text(json.dumps(to_dict(self.cfg), indent=1))
        parts = self.cfg.spec.names
        versions = {f"objective:{p}": registry.info("objective", p).version for p in parts}
        versions[f"backbone:{self.cfg.backbone}"] = registry.info("backbone", self.cfg.backbone).version
        info = {
            "format": 1,
            "zoo_version": __version__,
            "objective": self.cfg.objective,
            "backbone": self.cfg.backbone,
            "plugins": versions,
            "tokenizer_hash": self.tokenizer_hash,
            "vocab_size": self.tokens.vocab_size,
            "family": self.model.backbone.family,
            "backbone_config": to_dict(self.model.backbone.config),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "data": self.data.stats,
            "init": self.init_record or recorded_init(self.run_dir),
        }
        (self.run_dir / "run.json").write_text(json.dumps(info, indent=1, default=str))

    def plan(self) -> Plan:
        """FLOPs per step: a mixture's are the share-weighted mean over its parts."""
        tokens = self.global_rows * self.cfg.train.seq_len
        total_share = sum(part.share for part in self.parts)
        flops = sum(part.share / total_share * self._step_flops([self._peek_batch(part)]) for part in self.parts)
        return Plan(self.cfg, sum(p.numel() for p in self.model.parameters()),
                    self.model.backbone.num_parameters(exclude_embeddings=True),
                    flops * self.accum * self.dist.world_size, tokens, self.accum, self.budget)

    def _peek_batch(self, part: Part) -> Batch:
        ids = np.arange(min(self.cfg.train.batch_size, len(part.train)))
        return part.prepare(part.train.get(ids), np.random.default_rng(0))

    # --- checkpoints -----------------------------------------------------------------------------
    def _state(self, sampler_state: dict[str, Any]) -> ckpt.Checkpoint:
        rng_tensors, rng_states = rng.capture(self.dist, self.device)
        model_state = {k: v.detach().cpu().contiguous() for k, v in self._full_model_state().items()}
        state = {
            "step": self.step, "tokens": self.tokens_seen, "flops": self.flops, "train_time_s": self.train_time,
            "sampler": sampler_state, "rng": rng_states, "interval": self.interval.state(),
            "interval_tokens": self.interval_tokens,
            "interval_time": self.interval_time, "objective": self.cfg.objective, "backbone": self.cfg.backbone,
            "tokenizer_hash": self.tokenizer_hash, "vocab_size": self.tokens.vocab_size,
            "world_size": self.dist.world_size, "zoo_version": __version__,
        }
        if self.parts.mixture is not None:
            state["interval_parts"] = list(self.interval_parts)
        return ckpt.Checkpoint(model_state, self._full_optimizer_state(), rng_tensors, state)

    @property
    def _sharded(self) -> bool:
        return self.dist.enabled and self.cfg.train.strategy == "fsdp"

    def _full_model_state(self) -> dict[str, torch.Tensor]:
        if self._sharded:  # a collective: every rank gathers, rank 0 receives the full tensors
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            return get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return self.model.state_dict()

    def _full_optimizer_state(self) -> dict[str, torch.Tensor]:
        if self._sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

            full = get_optimizer_state_dict(self.model, self.optimizer,
                                            options=StateDictOptions(full_state_dict=True, cpu_offload=True))
            return {f"{name}/{key}": t.detach().cpu().contiguous() if isinstance(t, torch.Tensor) else torch.tensor(t)
                    for name, entry in full.get("state", {}).items() for key, t in entry.items()}
        return optimizer_tensors(self.optimizer, self.param_names)

    def _load_optimizer(self, tensors: dict[str, torch.Tensor], path: Path | None) -> None:
        try:
            if self._sharded:
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

    def _save(self, sampler_state: dict[str, Any]) -> None:
        state = self._state(sampler_state)
        error: Exception | None = None
        if self.dist.is_main:
            try:
                path = ckpt.write(self.run_dir, self.step, state, self.cfg.train.keep_last)
                log.info("checkpoint %s", path.name)
            except Exception as exc:  # e.g. refused non-finite tensors: the other ranks must learn of it
                error = exc
        failed = distributed.failed_ranks(error is not None, self.dist)  # also the barrier after the write
        if error is not None:
            raise error
        if failed:
            raise CheckpointError(f"rank 0 could not write checkpoint {ckpt.step_name(self.step)} (its error is "
                                  f"printed above); rank {self.dist.rank} stops too")

    def _load(self, path: Path) -> dict[str, torch.Tensor]:
        """Restore weights, counters, sampler and RNG from ``path``; returns the optimiser tensors
        (loaded once the optimiser exists, after wrapping)."""
        saved = ckpt.read(path)
        st = saved.state
        missing = [k for k in _STATE_KEYS if k not in st]
        if missing:
            raise CheckpointError(f"{path / 'trainer.json'}: missing {', '.join(missing)} (written by another "
                                  f"program or an incompatible version)")
        for key, want in (("tokenizer_hash", self.tokenizer_hash), ("vocab_size", self.tokens.vocab_size)):
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
            self.parts.load_sampler_state(st["sampler"])
            rng.restore(saved.rng, st["rng"], self.dist, self.device)
            self.interval = Averager(st["interval"]["sums"], st["interval"]["weights"])
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
            raise CheckpointError(f"checkpoint {path}: sampler, RNG or metric state unusable "
                                  f"({type(exc).__name__}: {exc})") from exc
        self.step, self.tokens_seen = st["step"], st["tokens"]
        self.flops, self.train_time = st["flops"], st["train_time_s"]
        self.interval_tokens, self.interval_time = st["interval_tokens"], st["interval_time"]
        self.interval_parts = [str(label) for label in st.get("interval_parts", [])]
        if self.dist.is_main:
            dropped = truncate_after(self.run_dir / "metrics.jsonl", self.step)
            if dropped:
                log.info("dropped %d metric records logged after step %d", dropped, self.step)
        log.info("resuming from %s (step %d)", path.name, self.step)
        return saved.optimizer

    # --- data ------------------------------------------------------------------------------------
    def _step_batches(self) -> Iterator[tuple[dict[str, Any], list[tuple[np.ndarray, Batch]]]]:
        """For each future step: the sampler state after it, and this rank's prepared micro-batches."""
        step = self.step
        world, rank, rows = self.dist.world_size, self.dist.rank, self.cfg.train.batch_size
        while True:
            step += 1
            part = self.parts.at(step)  # every micro-batch and every rank: the same part
            indices = part.sampler.next_indices()
            state = self.parts.sampler_state()
            micro = []
            for k in range(self.accum):
                m = k * world + rank
                ids = indices[m * rows:(m + 1) * rows]
                rng = np.random.default_rng([self.seed, step, m])
                micro.append((ids, part.prepare(part.train.get(ids), rng).to("cpu")))
            yield state, micro

    def _prefetched(self) -> Iterator[tuple[dict[str, Any], list[tuple[np.ndarray, Batch]]]]:
        if not self.cfg.train.prefetch:
            yield from self._step_batches()
            return
        q: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()

        def produce() -> None:
            try:
                for item in self._step_batches():
                    while not stop.is_set():
                        try:
                            q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
            except BaseException as exc:  # surfaced in the training thread
                q.put(exc)

        thread = threading.Thread(target=produce, name="zoo-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            with contextlib.suppress(queue.Empty):
                while True:
                    q.get_nowait()
            thread.join()

    # --- accounting ------------------------------------------------------------------------------
    def _step_flops(self, batches: list[Batch]) -> float:
        """Training FLOPs (forward + backward = 3 x forward) of this rank's micro-batches."""
        total = 0.0
        for b in batches:  # a mixture's batches all come from the part that ran: charge that part
            objective = self.parts.of(b).objective
            rows, seq = b.shape
            total += self.backbone_flops_per_token * rows * seq * objective.backbone_passes() + objective.head_flops(b)
        return 3.0 * total

    def _progress(self) -> float:
        return self.budget.progress(self.step, self.tokens_seen, self.flops, self.train_time)

    # --- the loop ----------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        cfg, info = self.cfg, self.dist
        last_record: Record = {}
        last_eval: Record | None = None
        if self._progress() >= 1.0:
            log.info("budget %s already reached at step %d", self.budget, self.step)
        batches = self._prefetched()
        self.model.train()
        stop = interrupt.StopRequest().install()
        clock = interrupt.CheckpointClock(cfg.train.checkpoint_minutes)
        try:
            while self._progress() < 1.0:
                t0 = time.perf_counter()
                sampler_state, micro = next(batches)
                self.step += 1
                out_metrics, step_flops, step_tokens = self._train_step(micro)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                dt = time.perf_counter() - t0
                # Ranks agree on the step time of a time budget, on a stop request and on a wall-time checkpoint.
                flags = torch.tensor([step_flops, dt if self.budget.kind == "time" else 0.0, stop.requested,
                                      clock.due()], dtype=torch.float64)
                distributed.all_reduce(flags[:1], info, "sum")
                distributed.all_reduce(flags[1:], info, "max")
                self.flops += float(flags[0])
                self.tokens_seen += step_tokens
                self.train_time += float(flags[1]) if self.budget.kind == "time" else dt
                self.interval.add(out_metrics)
                if self.parts.mixture is not None:
                    self.interval_parts.append(self.parts.at(self.step).label)
                self.interval_tokens += step_tokens
                self.interval_time += dt
                faults.maybe_kill_at_step(self.step, info.rank)
                faults.maybe_hold_at_step(self.step)
                finished = self._progress() >= 1.0
                if self.step % cfg.train.log_every == 0 or finished:
                    last_record = self._log()
                if (cfg.train.eval_every and self.step % cfg.train.eval_every == 0) or finished:
                    last_eval = self.evaluate()
                stopping = bool(flags[2]) and not finished
                if (cfg.train.checkpoint_every and self.step % cfg.train.checkpoint_every == 0) or finished \
                        or stopping or bool(flags[3]):
                    self._save(sampler_state)
                    clock.reset()
                if stopping:
                    raise interrupt.interrupted(stop, ckpt.step_name(self.step), self.run_dir, info.rank)
        finally:
            stop.restore()
            batches.close()
            self.sinks.close()
        return TrainResult(self.run_dir, self.step, self.tokens_seen, self.flops, self.train_time, last_record,
                           last_eval, sum(p.numel() for p in self.model.parameters()))

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _train_step(self, micro: list[tuple[np.ndarray, Batch]]) -> tuple[dict[str, float], float, int]:
        cfg = self.cfg
        lr = lr_at(self._progress_before_step(), cfg.optim)
        set_lr(self.optimizer, lr)
        metrics = Averager()
        batches = []
        bad: tuple[LossOutput, float, np.ndarray] | None = None
        for k, (indices, cpu_batch) in enumerate(micro):
            batch = cpu_batch.to(self.device, non_blocking=True)
            batches.append(cpu_batch)
            sync = k == len(micro) - 1 or not self.dist.enabled or cfg.train.strategy != "ddp"
            ctx = contextlib.nullcontext() if sync else self.wrapped.no_sync()
            with ctx:
                with self._autocast():
                    out: LossOutput = self.forward(batch)
                loss = out.loss
                if faults.nan_at_step(self.step, self.dist.rank):
                    loss = loss * float("nan")
                value = float(loss.detach())
                if bad is None and not math.isfinite(value):
                    bad = (out, value, indices)
                if sync:  # before a backward with collectives: every rank stops together, none waits
                    self._check_finite(bad)
                if bad is None:
                    (loss / len(micro)).backward()
            metrics.add({"loss": value, **{k2: float(v) for k2, v in out.metrics.items()}})
        if cfg.optim.grad_clip > 0:
            gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
        else:
            gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), float("inf"))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        means = metrics.means()
        means["lr"] = lr
        means["grad_norm"] = float(gnorm)
        step_tokens = sum(b.shape[0] * b.shape[1] for b in batches) * self.dist.world_size
        return means, self._step_flops(batches), step_tokens

    def _progress_before_step(self) -> float:
        """Budget progress before the step being taken (``self.step`` already counts it): for a steps
        budget N, step s runs at (s - 1) / N, the 0-based step transformers' schedulers use."""
        if self.budget.kind == "steps":
            return (self.step - 1) / self.budget.value
        return self._progress()  # counters are updated after the step

    def _check_finite(self, bad: tuple[LossOutput, float, np.ndarray] | None) -> None:
        """Raise on every rank if any rank's loss is non-finite (one all-reduce with several processes)."""
        failed = distributed.failed_ranks(bad is not None, self.dist)
        if bad is not None:
            self._non_finite(*bad)
        if failed:
            raise NonFiniteLossError(
                f"non-finite loss at step {self.step} on rank {', '.join(map(str, failed))} (its error is printed "
                f"above); rank {self.dist.rank} stops too. No checkpoint was written for this step; the newest "
                f"checkpoint in {self.run_dir} is intact")

    def _non_finite(self, out: LossOutput, value: float, indices: np.ndarray) -> None:
        parts = {k: float(v) for k, v in out.metrics.items() if k.endswith("loss")}
        bad = [k for k, v in parts.items() if not math.isfinite(v)]
        which = f" ({', '.join(f'{k}={parts[k]}' for k in bad)})" if bad else ""
        rows = ", ".join(str(int(i)) for i in indices[:8]) + (" ..." if len(indices) > 8 else "")
        raise NonFiniteLossError(
            f"non-finite loss {value} at step {self.step}, objective {self.cfg.objective}{which}, "
            f"batch of training {self.parts.at(self.step).objective.unit} [{rows}] (seed {self.seed}); no checkpoint was written "
            f"for this step; the newest checkpoint in {self.run_dir} is intact. Try a lower optim.lr or "
            f"--precision fp32")

    def _log(self) -> Record:
        means = self.interval.means()
        if self.dist.enabled:  # average over ranks (every rank holds the same metric names)
            keys = sorted(means)
            values = torch.tensor([means[k] for k in keys], dtype=torch.float64)
            distributed.all_reduce(values, self.dist, "sum")
            means = {k: float(v) / self.dist.world_size for k, v in zip(keys, values, strict=True)}
        tps = self.interval_tokens / self.interval_time if self.interval_time > 0 else 0.0
        record: Record = {"kind": "train", "step": self.step, "loss": means.pop("loss", float("nan"))}
        record.update({k: v for k, v in means.items() if k not in ("lr", "grad_norm")})
        record.update(self.objective.derived_metrics({"loss": record["loss"], **means}))
        if self.parts.mixture is not None:  # the part each step of the interval ran, in order
            record["parts"] = list(self.interval_parts)
        record.update({
            "lr": means.get("lr", 0.0), "grad_norm": means.get("grad_norm", 0.0), "tokens": self.tokens_seen,
            "flops": self.flops, "progress": min(1.0, self._progress()), "tokens_per_s": tps,
            "elapsed_s": self.train_time,
        })
        if self.peak > 0 and self.interval_time > 0:
            flops_per_s = self.flops / max(self.train_time, 1e-9)
            record["mfu"] = flops_per_s / (self.peak * self.dist.world_size)
        self.sinks.write(record)
        self.interval.reset()
        self.interval_parts.clear()
        self.interval_tokens, self.interval_time = 0, 0.0
        return record

    @torch.no_grad()
    def evaluate(self) -> Record:
        """Loss and metrics on the held-out split: the same batches every time (the first
        ``eval_batches`` x ``batch_size`` rows, each at most once), weighted by count. A mixture
        evaluates every part on its own rows (``clm/loss``, ...); its ``loss`` is the share-weighted
        mean of the parts' losses, the expected loss of a training step."""
        t0 = time.perf_counter()
        model = self.wrapped if self.cfg.train.strategy == "fsdp" and self.dist.enabled else self.model
        model.eval()
        results = [(part, self._evaluate_part(model, part)) for part in self.parts]
        model.train()
        results = [(part, means) for part, means in results if means is not None]
        if not results:
            return {}
        if self.parts.mixture is None:
            means = results[0][1]
            loss = means.pop("loss")
        else:
            means = {k: v for _, m in results for k, v in m.items() if k != "loss"}
            total = sum(part.share for part, _ in results)
            loss = sum(part.share / total * m["loss"] for part, m in results)
        record: Record = {"kind": "eval", "step": self.step, "loss": loss}
        record.update(means)
        record.update(self.objective.derived_metrics({"loss": record["loss"], **means}))
        record.update({"tokens": self.tokens_seen, "flops": self.flops})
        self.sinks.write(record)
        # Evaluation time is not training time: time budgets exclude it.
        log.debug("evaluation took %.2fs", time.perf_counter() - t0)
        return record

    def _evaluate_part(self, model: torch.nn.Module, part: Part) -> dict[str, float] | None:
        n = len(part.valid)
        avg = Averager()
        rows = self.cfg.train.batch_size
        if n == 0:
            log.warning("the validation split yields no %s%s; skipping evaluation", part.objective.unit,
                        f" for mixture part {part.label}" if part.label else "")
            return None
        for i in range(self.cfg.train.eval_batches):
            if i * rows >= n:
                break  # the whole split has been seen: each row counts once
            ids = np.arange(i * rows, min((i + 1) * rows, n))  # the last batch may be partial
            batch = part.prepare(part.valid.get(ids), np.random.default_rng([self.seed, 1 << 20, i]))
            with self._autocast():
                out = model(batch.to(self.device))
            avg.add({"loss": float(out.loss), **{k: float(v) for k, v in out.metrics.items()}}, float(out.count),
                    {k: float(v) for k, v in out.metric_counts.items()})
        return avg.means()


# Keys of trainer.json that resuming needs (checkpoints of older versions may hold more).
_STATE_KEYS = ("step", "tokens", "flops", "train_time_s", "sampler", "rng", "interval", "interval_tokens",
               "interval_time")


def train(cfg: RunConfig, *, resume: bool = False, resume_from: str | None = None,
          callback: Callable[[Record], None] | None = None) -> TrainResult:
    """Check the settings, claim and lock the run directory, then build and train (or resume)."""
    validate(cfg)
    trainer = Trainer(cfg, resume=resume, resume_from=resume_from, callback=callback)
    try:
        with rundir.claim(trainer.run_dir, cfg, trainer.dist.is_main) as claim:
            distributed.barrier(trainer.dist)
            trainer.setup()
            claim.started()
            result = trainer.fit()
            # Drain gloo's worker thread before teardown: it frees each finished collective's tensors
            # under the GIL, and the DDP reducer's destructor joins that thread while holding the GIL,
            # which deadlocks when a free is still pending (a rank then hangs after its run finished).
            distributed.barrier(trainer.dist)
            return result
    finally:
        distributed.shutdown()


def plan(cfg: RunConfig) -> Plan:
    """Everything ``--dry-run`` reports, without writing a run directory."""
    validate(cfg)
    trainer = Trainer(cfg)
    try:
        trainer.setup(dry_run=True)
        return trainer.plan()
    finally:
        distributed.shutdown()

