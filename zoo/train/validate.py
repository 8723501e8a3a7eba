"""Settings checked before any data or model work: sequence lengths the objective can fill, and a
lower bound on the memory one process needs against what the machine has, with the numbers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from zoo import registry
from zoo.errors import ConfigError
from zoo.train.config import RunConfig


def validate(cfg: RunConfig, force: bool = False, check_time: bool = True) -> None:
    """Raise ``ConfigError`` for a run that cannot work, before data is read or a model is built: a
    sequence too short for the objective, too little memory, and (``check_time``, one process) a budget
    that would take longer than a year here unless ``force`` (``zoo.train.estimate``)."""
    check_seq_len(cfg)
    check_warmup_steps(cfg)
    check_memory(cfg)
    if check_time and "WORLD_SIZE" not in os.environ:  # under torchrun, ``zoo train --nproc`` checked it
        check_budget_time(cfg, 1, force)


def check_warmup_steps(cfg: RunConfig) -> None:
    """An absolute warmup (``optim.warmup_steps``) of a trapezoid steps budget ends before its cooldown."""
    opt, budget = cfg.optim, cfg.budget
    if opt.warmup_steps == 0 or opt.schedule != "trapezoid" or budget.kind != "steps":
        return
    for b in [budget, *cfg.train.branch_budgets]:
        start = (1.0 - opt.cooldown) * b.value
        if opt.warmup_steps > start:
            raise ConfigError(f"optim.warmup_steps = {opt.warmup_steps} reaches into the cooldown of the "
                              f"{b.value:g}-step budget (it starts at step {start:g}, optim.cooldown = "
                              f"{opt.cooldown:g}); give a shorter warmup or a longer budget")


def check_budget_time(cfg: RunConfig, world: int = 1, force: bool = False) -> None:
    """Refuse a budget estimated to take longer than a year on ``world`` processes here, unless ``force``."""
    from zoo.train import estimate

    estimate.check_time(cfg, _device(cfg) or torch.device("cpu"), world, force)


def check_seq_len(cfg: RunConfig) -> None:
    """``train.seq_len`` must leave room for the tokens every part of the objective needs."""
    family = registry.load("backbone", cfg.backbone).family
    for name in cfg.objective.names:  # every part of a mixture draws rows of this length
        cls = registry.load("objective", name)
        need = cls.min_seq_len(family) if hasattr(cls, "min_seq_len") else 1
        if cfg.train.seq_len < need:
            raise ConfigError(f"train.seq_len = {cfg.train.seq_len} (--seq-len) is too short for {name} on "
                              f"{cfg.backbone}: its rows need at least {need} tokens")


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one training process needs at least (fp32 master weights, gradients, Adam state,
    saved activations, logits, and attention scores where the kernel materialises them)."""

    parameters: int
    state: float
    activations: float
    scores: float
    logits: float

    @property
    def total(self) -> float:
        return self.state + self.activations + self.scores + self.logits


def estimate_memory(cfg: RunConfig, device: torch.device) -> MemoryEstimate:
    from zoo.train.build import build_backbone

    vocab = cfg.tokenizer.vocab_size
    with torch.device("meta"):  # shapes only, nothing allocated
        backbone = build_backbone(cfg, vocab)
    spec = backbone.spec
    params = sum(p.numel() for p in backbone.parameters())
    rows, seq = cfg.train.batch_size, cfg.train.seq_len
    h, f, layers, heads = spec.hidden_size, spec.intermediate_size, spec.num_layers, spec.num_heads
    per_token_layer = 4 * (8 * h + 2 * f)  # fp32: layer inputs, q, k, v, context, output, norms; FFN in and out
    checkpointed = bool(getattr(backbone.config, "activation_checkpointing", False))
    activations = rows * seq * (4 * h * layers + per_token_layer * (1 if checkpointed else layers))
    kernel = getattr(backbone.config, "attention", "auto")
    materialised = device.type == "cpu" or kernel == "eager"  # CPU SDPA with a mask builds the score matrix
    scores = 4.0 * rows * heads * seq * seq * (1 if checkpointed else layers) if materialised else 0.0
    return MemoryEstimate(params, 16.0 * params, float(activations), scores, 4.0 * rows * seq * min(vocab, 1 << 20))


def machine_memory(device: torch.device) -> tuple[float, str]:
    """Bytes of memory ``device`` has, and what they are."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return float(props.total_memory), f"{props.name} memory"
    total = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    try:  # a container's limit
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            total = min(total, float(limit))
    except OSError:
        pass
    return total, "RAM"


def _device(cfg: RunConfig) -> torch.device | None:
    """The device a run will use, or None when that is not settled here (the trainer reports it)."""
    name = cfg.train.device
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        return None
    if dev.type == "cuda":
        return torch.device("cuda", dev.index or 0) if torch.cuda.is_available() else None
    return dev if dev.type == "cpu" else None


def check_memory(cfg: RunConfig) -> None:
    device = _device(cfg)
    if device is None:
        return
    est = estimate_memory(cfg, device)
    have, what = machine_memory(device)
    if est.total > have:
        gb = 1e9
        parts = (f"weights, gradients and Adam state of {est.parameters:,} parameters {est.state / gb:.1f} GB, "
                 f"activations {est.activations / gb:.1f} GB, attention scores {est.scores / gb:.1f} GB, "
                 f"logits {est.logits / gb:.1f} GB")
        raise ConfigError(
            f"this run needs at least ~{est.total / gb:.1f} GB per process ({parts}) at train.seq_len = "
            f"{cfg.train.seq_len} and train.batch_size = {cfg.train.batch_size}, more than the {have / gb:.1f} GB "
            f"of {what} here; lower --seq-len or --batch-size (train.batch_tokens keeps the tokens per step "
            f"through gradient accumulation), or use a smaller --size")
