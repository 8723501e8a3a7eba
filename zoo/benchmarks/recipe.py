"""A fine-tuning recipe and what both ways of fine-tuning share (``finetune``: a task head;
``text_to_text``: the decoder writes the label): the result record, the progress protocol, the
optimiser and schedule, the device and autocast."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

import torch
from torch import nn

from zoo.errors import ConfigError
from zoo.typed_config import apply_overrides, from_dict

POOLINGS = ("auto", "cls", "last", "mean")
ATTENTIONS = ("auto", "bidirectional", "causal")
METHODS = ("auto", "head", "text-to-text")
DECODINGS = ("greedy", "rank")


@dataclass(frozen=True)
class Recipe:
    """Fine-tuning hyper-parameters: one global recipe, overridable per task.

    The defaults suit small models (tiny .. mini): AdamW, linear warmup over 10% of the steps then
    linear decay to zero, as in BERT's fine-tuning; a higher learning rate than BERT-base's 2e-5.
    """

    lr: float = 1e-4
    epochs: int = 3
    batch_size: int = 32
    eval_batch_size: int = 128
    warmup: float = 0.1  # fraction of the steps
    weight_decay: float = 0.01  # matrices only; biases and LayerNorm are not decayed
    dropout: float = 0.1  # head dropout (the backbone keeps its own)
    max_length: int = 128  # tokens, special tokens included
    pooling: str = "auto"  # auto (cls for encoders, last for decoders) | cls | last | mean
    # auto (what the run's objective implies, see ``finetune_attention``) | bidirectional | causal
    attention: str = "auto"
    grad_clip: float = 1.0  # 0 = off
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-6
    # auto (text-to-text for an encoder-decoder, as T5; head otherwise) | head | text-to-text
    method: str = "auto"
    decoding: str = "greedy"  # text-to-text predictions: greedy | rank (over the label words)

    def __post_init__(self) -> None:
        checks = {
            "lr": self.lr > 0, "epochs": self.epochs >= 1, "batch_size": self.batch_size >= 1,
            "eval_batch_size": self.eval_batch_size >= 1, "warmup": 0 <= self.warmup < 1,
            "weight_decay": self.weight_decay >= 0, "dropout": 0 <= self.dropout < 1,
            "max_length": self.max_length >= 4, "pooling": self.pooling in POOLINGS,
            "grad_clip": self.grad_clip >= 0, "attention": self.attention in ATTENTIONS,
            "method": self.method in METHODS, "decoding": self.decoding in DECODINGS,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            k = bad[0]
            extra = {"pooling": f" (one of {', '.join(POOLINGS)})",
                     "attention": f" (one of {', '.join(ATTENTIONS)})", "method": f" (one of {', '.join(METHODS)})",
                     "decoding": f" (one of {', '.join(DECODINGS)})"}.get(k, "")
            raise ConfigError(f"recipe: invalid {k} = {getattr(self, k)!r}{extra}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def hash(self) -> str:
        """Stable id of the hyper-parameters (part of the result-cache key). ``attention = "auto"``,
        ``method = "auto"`` and ``decoding = "greedy"`` are left out: they resolve from the checkpoint alone
        (already in the key; ``zoo bench`` records an encoder-decoder's resolved method), and results cached
        before the options existed stay valid."""
        d = neutral_recipe(self.to_dict())
        if d["attention"] == "auto":
            del d["attention"]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


NEUTRAL = {"method": "auto", "decoding": "greedy"}


def neutral_recipe(d: dict[str, Any]) -> dict[str, Any]:
    """A recipe dict without the options added later at their neutral values (``NEUTRAL``): what its ids
    hash, so ids of results recorded before those options existed stay the same."""
    return {k: v for k, v in d.items() if NEUTRAL.get(k, object()) != v}


def recipes_for(tasks: Sequence[str], base: Recipe | None = None, overrides: Sequence[str] = ()) -> dict[str, Recipe]:
    """Per-task recipes from a base recipe and ``key=value`` / ``task.key=value`` overrides."""
    base = base or Recipe()
    names = {f.name for f in fields(Recipe)}
    common: list[str] = []
    per_task: dict[str, list[str]] = {t: [] for t in tasks}
    for item in overrides:
        key, sep, value = item.partition("=")
        head, dot, rest = key.strip().partition(".")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected key=value or task.key=value")
        if dot and head in per_task:
            per_task[head].append(f"{rest}={value}")
        elif dot:
            raise ConfigError(f"--set {item!r}: {head!r} is not one of the tasks being run ({', '.join(tasks)})")
        else:
            common.append(item)
    out = {}
    for task in tasks:
        data = apply_overrides(base.to_dict(), [*common, *per_task[task]])
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"--set: unknown recipe key {unknown[0]!r}; recipe keys: {', '.join(sorted(names))}")
        out[task] = from_dict(Recipe, data, path=f"recipe[{task}]")
    return out


class Progress(Protocol):
    """What fine-tuning reports: one bar per fine-tune, advanced once per optimizer step."""

    def start(self, description: str, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def finish(self) -> None: ...


@dataclass
class FinetuneResult:
    scores: dict[str, float]  # ``spec.metric_names()`` -> value (fractions)
    train_examples: int
    eval_examples: dict[str, int]
    steps: int
    train_loss: float  # mean training loss over the last epoch
    seconds: float
    predictions: dict[str, list[float]] = field(default_factory=dict)  # eval split -> per-example prediction


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"--device {device!r}: {exc}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available here")
    return dev


def autocast(dev: torch.device) -> Any:
    enabled = dev.type == "cuda" and torch.cuda.is_bf16_supported()
    return torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=enabled)


def make_optimizer(model: nn.Module, recipe: Recipe, total: int) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW (matrices decayed, biases and norms not) and linear warmup then linear decay to 0 over ``total``
    steps."""
    warmup = int(recipe.warmup * total)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=recipe.lr, betas=(recipe.beta1, recipe.beta2), eps=recipe.eps)

    def lr_lambda(step: int) -> float:  # linear warmup, then linear decay to 0
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
