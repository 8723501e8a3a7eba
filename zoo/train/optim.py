"""AdamW with decoupled weight decay (not on biases and norms), budget-keyed LR schedule, and
optimiser state as plain tensors + JSON (so checkpoints need no pickle)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from zoo.train.config import OptimConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Matrices (linear and embedding weights) decay; biases and LayerNorm parameters do not."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: OptimConfig, device: torch.device) -> torch.optim.AdamW:
    kwargs: dict[str, Any] = {"lr": cfg.lr, "betas": tuple(cfg.betas), "eps": cfg.eps}
    impl = cfg.implementation
    if impl == "auto":
        impl = "fused" if device.type in ("cuda", "cpu") else "foreach"
    if impl == "fused":
        kwargs["fused"] = True
    elif impl == "foreach":
        kwargs["foreach"] = True
    else:
        kwargs["foreach"] = False
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), **kwargs)


def lr_at(progress: float, cfg: OptimConfig, steps: int | None = None) -> float:
    """Learning rate at ``progress`` in [0, 1], the fraction of the budget spent before the step:
    linear warmup, then the schedule. With a steps budget N, step k (0-based) is at k / N, which
    gives exactly transformers' ``get_linear/cosine_schedule_with_warmup`` (warmup = warmup x N).

    ``trapezoid`` holds the peak after warmup and decays linearly to the floor over the final
    ``cooldown`` fraction. ``linear`` with ``warmup = 0.5`` is cramming's one-cycle (Geiping &
    Goldstein 2023): a linear rise to the peak at half the budget, then a linear fall to zero.
    ``optim.warmup_steps`` (constant, trapezoid) warms up over that many steps, ``steps`` being those taken.
    """
    if cfg.warmup_steps > 0 and steps is not None and steps < cfg.warmup_steps:
        return cfg.lr * steps / cfg.warmup_steps
    progress = min(max(progress, 0.0), 1.0)
    if cfg.warmup > 0 and progress < cfg.warmup:
        return cfg.lr * progress / cfg.warmup
    if cfg.schedule == "constant":
        return cfg.lr
    floor = cfg.lr * cfg.min_lr_ratio
    if cfg.schedule == "trapezoid":
        t = max(0.0, (progress - (1.0 - cfg.cooldown)) / cfg.cooldown)  # 0 until the cooldown, then -> 1
        return cfg.lr - (cfg.lr - floor) * t
    t = (progress - cfg.warmup) / max(1e-12, 1.0 - cfg.warmup)  # 0 -> 1 after warmup
    if cfg.schedule == "cosine":
        return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * t))
    return floor + (cfg.lr - floor) * (1.0 - t)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def optimizer_tensors(optimizer: torch.optim.Optimizer, names: dict[int, str]) -> dict[str, torch.Tensor]:
    """Optimiser state as ``{"<param name>/<key>": tensor}``; ``names`` maps id(param) -> name."""
    out: dict[str, torch.Tensor] = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
                out[f"{names[id(p)]}/{key}"] = t.detach().cpu().contiguous()
    return out


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                           names: dict[int, str]) -> None:
    by_name: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        pname, _, skey = key.rpartition("/")
        by_name.setdefault(pname, {})[skey] = t
    known = set(names.values())
    unknown = sorted(set(by_name) - known)
    if unknown:
        raise ValueError(f"optimizer state has entries for unknown parameters {unknown[:3]}")
    fused = bool(optimizer.defaults.get("fused"))  # fused AdamW keeps "step" on the parameter's device
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = by_name.get(names[id(p)])
            if state is None:
                continue
            optimizer.state[p] = {
                k: v.clone() if (k == "step" and not fused) else v.to(p.device) for k, v in state.items()
            }
