"""Fine-tune a backbone plus a task head on one task and score it with the official metrics.

The core is independent of where the backbone came from (a run, an exported Hugging Face
directory, a fresh random initialisation): ``finetune(backbone, tokenizer, special, data, recipe,
seed)``. The backbone is copied, never modified.

Heads
  cls   [CLS] hidden state -> dense + tanh (BERT's pooler) -> dropout -> linear   (encoders)
  last  hidden state of the last real token (GPT-1) -> dropout -> linear          (decoders)
  mean  mean over real tokens -> dropout -> linear
Classification uses cross-entropy over the label list; regression (STS-B) one output and MSE.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import Tensor, nn

from zoo.batch import SpecialTokens
from zoo.benchmarks.data import TaskData
from zoo.benchmarks.encoding import Encoded, TaskBatch, collate, encode, plain_tokenizer
from zoo.benchmarks.recipe import (
    FinetuneResult,
    Progress,
    Recipe,
    autocast,
    make_optimizer,
    resolve_device,
)
from zoo.benchmarks.scoring import compute_metrics
from zoo.benchmarks.text_to_text import (
    Verbalized,
    finetune_text_to_text,
    resolve_method,
    verbalize,
)
from zoo.errors import ConfigError, DataError, NonFiniteLossError
from zoo.family import Family
from zoo.models.base import Backbone

log = logging.getLogger(__name__)

# --- heads ---------------------------------------------------------------------------------------------

def pool(hidden: Tensor, lengths: Tensor, mode: str) -> Tensor:
    """hidden (B, T, h), lengths (B,) -> (B, h)."""
    if mode == "cls":
        return hidden[:, 0]
    if mode == "last":
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), lengths - 1]
    if mode == "mean":
        mask = (torch.arange(hidden.shape[1], device=hidden.device)[None] < lengths[:, None]).to(hidden.dtype)
        return (hidden * mask[..., None]).sum(1) / lengths[:, None].to(hidden.dtype)  # (B, h)
    raise ValueError(f"unknown pooling {mode!r}")


class TaskHead(nn.Module):
    def __init__(self, hidden: int, num_outputs: int, pooling: str, dropout: float, init_std: float) -> None:
        super().__init__()
        self.pooling = pooling
        self.pooler = nn.Linear(hidden, hidden) if pooling == "cls" else None
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_outputs)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=init_std)
                nn.init.zeros_(m.bias)

    def forward(self, hidden: Tensor, lengths: Tensor) -> Tensor:
        x = pool(hidden, lengths, self.pooling)  # (B, h)
        if self.pooler is not None:
            x = torch.tanh(self.pooler(x))
        return self.classifier(self.dropout(x))  # (B, num_outputs)


class TaskModel(nn.Module):
    """A backbone and one task head."""

    def __init__(self, backbone: Backbone, head: TaskHead, attention: str = "auto") -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.segments = "segments" in backbone.capabilities
        self.causal = resolve_attention(attention, backbone) == "causal"

    def forward(self, batch: TaskBatch) -> Tensor:
        hidden = self.backbone(batch.input_ids, batch.layout,
                               token_type_ids=batch.token_type_ids if self.segments else None)  # (B, T, h)
        return self.head(hidden, batch.lengths)  # (B, num_outputs)


def resolve_attention(attention: str, backbone: Backbone) -> str:
    """"bidirectional" or "causal"; "auto" here (no objective known) is the family's default."""
    if attention == "auto":
        return Family.of(backbone.family).default_attention
    if attention not in backbone.capabilities:
        raise ConfigError(f"--attention {attention}: backbone {backbone.name!r} cannot run {attention} attention "
                          f"(it offers {', '.join(sorted(backbone.capabilities))})")
    return attention


def resolve_pooling(pooling: str, backbone: Backbone, special: SpecialTokens) -> str:
    if pooling == "auto":
        return "cls" if backbone.family == Family.ENCODER and special.cls is not None else (
            "last" if backbone.family == Family.DECODER else "mean")
    if pooling == "cls" and backbone.family == Family.DECODER:
        raise ConfigError("--pooling cls needs a bidirectional backbone: a decoder's first token sees only "
                          "itself; use last or mean")
    if pooling == "cls" and special.cls is None:
        raise ConfigError("--pooling cls needs a [CLS] token, which the tokenizer lacks; use mean")
    return pooling


# --- fine-tuning ------------------------------------------------------------------------------------

@dataclass
class Prepared:
    """A task's splits encoded for one tokenizer and backbone family (shared by all seeds)."""

    train: Encoded
    evals: dict[str, Encoded]
    max_length: int


def prepare(data: TaskData, tokenizer: Tokenizer, special: SpecialTokens, backbone: Backbone,
            recipe: Recipe) -> Prepared | Verbalized:
    """Encode the training and evaluation splits (truncated to the recipe's / model's max length), in the
    layout of the recipe's method (``Verbalized`` for text-to-text)."""
    max_length = min(recipe.max_length, backbone.spec.max_positions)
    if max_length < recipe.max_length:
        log.warning("%s: max_length %d exceeds the model's %d positions; using %d", data.spec.name,
                    recipe.max_length, backbone.spec.max_positions, max_length)
    if resolve_method(recipe.method, backbone) == "text-to-text":
        return verbalize(data, tokenizer, special, max_length)
    tok = plain_tokenizer(tokenizer)
    segments = "segments" in backbone.capabilities
    regression = data.spec.is_regression

    def enc(split: Any) -> Encoded:
        e = encode(split.examples, tok, special, backbone.family, segments, max_length, regression)
        top = max(int(x.max()) for x in e.input_ids)
        if top >= backbone.spec.vocab_size:
            raise DataError(f"token id {top} is outside the model's vocabulary of {backbone.spec.vocab_size}: "
                            f"the tokenizer does not belong to this model")
        if e.truncated:
            log.info("%s %s: truncated %d of %d examples to %d tokens", data.spec.name, split.name,
                     e.truncated, len(e), max_length)
        return e

    return Prepared(enc(data.train), {k: enc(v) for k, v in data.evals.items()}, max_length)


def finetune(backbone: Backbone, tokenizer: Tokenizer, special: SpecialTokens, data: TaskData,
             recipe: Recipe | None = None, seed: int = 0, device: str | torch.device = "auto",
             progress: Progress | None = None, prepared: Prepared | Verbalized | None = None,
             label: str | None = None) -> FinetuneResult:
    """Fine-tune a copy of ``backbone`` on ``data.train`` with the recipe's method (a new head on its
    states, or text-to-text: ``zoo.benchmarks.text_to_text``); score it on ``data.evals``.

    Deterministic on CPU given ``seed`` (head init, dropout, shuffling); the global RNG state is
    restored afterwards.
    """
    recipe = recipe or Recipe()
    dev = resolve_device(device)
    spec = data.spec
    if resolve_method(recipe.method, backbone) == "text-to-text":
        prepared = prepared or prepare(data, tokenizer, special, backbone, recipe)
        assert isinstance(prepared, Verbalized)
        return finetune_text_to_text(backbone, tokenizer, special, data, recipe, seed, dev, progress, prepared,
                                     label or f"{spec.name} seed {seed}")
    pooling = resolve_pooling(recipe.pooling, backbone, special)
    prepared = prepared or prepare(data, tokenizer, special, backbone, recipe)
    assert isinstance(prepared, Prepared)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        head = TaskHead(backbone.spec.hidden_size, spec.num_outputs, pooling, recipe.dropout,
                        backbone.spec.initializer_range)
        model = TaskModel(copy.deepcopy(backbone), head, recipe.attention).to(dev)
        steps, loss = _train(model, prepared.train, spec.is_regression, recipe, seed, dev, special.pad,
                             progress, label or f"{spec.name} seed {seed}")
        scores: dict[str, float] = {}
        predictions: dict[str, list[float]] = {}
        for split, enc in prepared.evals.items():
            preds = predict(model, enc, spec.is_regression, recipe.eval_batch_size, dev, special.pad)
            predictions[split] = preds.tolist()
            assert enc.labels is not None
            metrics = compute_metrics(spec, preds, enc.labels)
            prefix = f"{split}/" if len(spec.eval_splits) > 1 else ""
            scores.update({prefix + k: v for k, v in metrics.items()})
    return FinetuneResult(scores, len(prepared.train), {k: len(v) for k, v in prepared.evals.items()},
                          steps, loss, time.perf_counter() - start, predictions)


def _train(model: TaskModel, enc: Encoded, regression: bool, recipe: Recipe, seed: int, dev: torch.device,
           pad_id: int, progress: Progress | None, description: str) -> tuple[int, float]:
    if enc.labels is None:
        raise DataError("the training split has no labels")
    n = len(enc)
    total = math.ceil(n / recipe.batch_size) * recipe.epochs
    opt, sched = make_optimizer(model, recipe, total)
    shuffle = torch.Generator().manual_seed(seed)
    causal = model.causal
    if progress is not None:
        progress.start(description, total)
    model.train()
    step, epoch_losses = 0, []
    try:
        for _ in range(recipe.epochs):
            order = torch.randperm(n, generator=shuffle).numpy()
            epoch_losses = []
            for i in range(0, n, recipe.batch_size):
                batch = collate(enc, order[i:i + recipe.batch_size], pad_id, causal, dev)
                with autocast(dev):
                    logits = model(batch).float()  # (B, C)
                if regression:
                    loss = F.mse_loss(logits.squeeze(-1), batch.labels.float())  # type: ignore[union-attr]
                else:
                    loss = F.cross_entropy(logits, batch.labels)  # type: ignore[arg-type]
                if not torch.isfinite(loss):
                    raise NonFiniteLossError(f"{description}: non-finite fine-tuning loss at step {step}; "
                                             f"lower the learning rate (--lr, now {recipe.lr})")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if recipe.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
                opt.step()
                sched.step()
                step += 1
                epoch_losses.append(loss.item())
                if progress is not None:
                    progress.advance()
    finally:
        if progress is not None:
            progress.finish()
    return step, float(np.mean(epoch_losses))


@torch.no_grad()
def predict(model: TaskModel, enc: Encoded, regression: bool, batch_size: int, dev: torch.device,
            pad_id: int) -> np.ndarray:
    """Class ids (N,) int64, or predicted values (N,) float64 for regression."""
    model.eval()
    causal = model.causal
    out = []
    for i in range(0, len(enc), batch_size):
        batch = collate(enc, np.arange(i, min(i + batch_size, len(enc))), pad_id, causal, dev)
        with autocast(dev):
            logits = model(batch).float()  # (B, C)
        out.append(logits.squeeze(-1).double().cpu().numpy() if regression else logits.argmax(-1).cpu().numpy())
    model.train()
    return np.concatenate(out)
