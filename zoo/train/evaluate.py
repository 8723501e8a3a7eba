"""Held-out evaluation during training: the same rows every time, each counted once."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable

import numpy as np
import torch

from zoo.train.metrics import Averager
from zoo.train.parts import Part

log = logging.getLogger(__name__)


@torch.no_grad()
def evaluate_parts(model: torch.nn.Module, parts: Iterable[Part], mixture: bool, rows: int, batches: int, seed: int,
                   device: torch.device, autocast: Callable[[], contextlib.AbstractContextManager],
                   ) -> tuple[float, dict[str, float]] | None:
    """(loss, other metrics) on the first ``batches`` x ``rows`` validation rows of each part, weighted
    by count; None when no part has validation rows. A mixture evaluates every part on its own rows
    (``clm/loss``, ...); its loss is the share-weighted mean of the parts' losses, the expected loss
    of a training step. ``model`` is left in training mode."""
    model.eval()
    results = [(part, _evaluate_part(model, part, rows, batches, seed, device, autocast)) for part in parts]
    model.train()
    results = [(part, means) for part, means in results if means is not None]
    if not results:
        return None
    if not mixture:
        means = results[0][1]
        return means.pop("loss"), means
    means = {k: v for _, m in results for k, v in m.items() if k != "loss"}
    total = sum(part.share for part, _ in results)
    return sum(part.share / total * m["loss"] for part, m in results), means


def _evaluate_part(model: torch.nn.Module, part: Part, rows: int, batches: int, seed: int, device: torch.device,
                   autocast: Callable[[], contextlib.AbstractContextManager]) -> dict[str, float] | None:
    n = len(part.valid)
    avg = Averager()
    if n == 0:
        log.warning("the validation split yields no %s%s; skipping evaluation", part.objective.unit,
                    f" for mixture part {part.label}" if part.label else "")
        return None
    for i in range(batches):
        if i * rows >= n:
            break  # the whole split has been seen: each row counts once
        ids = np.arange(i * rows, min((i + 1) * rows, n))  # the last batch may be partial
        batch = part.prepare(part.valid.get(ids), np.random.default_rng([seed, 1 << 20, i]))
        with autocast():
            out = model(batch.to(device))
        avg.add({"loss": float(out.loss), **{k: float(v) for k, v in out.metrics.items()}}, float(out.count),
                {k: float(v) for k, v in out.metric_counts.items()})
    return avg.means()
