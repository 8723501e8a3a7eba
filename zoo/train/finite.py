"""Stopping on a non-finite loss: every rank together, before a backward with collectives."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from zoo.errors import NonFiniteLossError
from zoo.objectives.base import LossOutput
from zoo.train import distributed

# (the loss output, its value, the rows of the batch) of this rank's first non-finite micro-batch
Bad = tuple[LossOutput, float, np.ndarray]


def check_finite(bad: Bad | None, dist: distributed.DistInfo, step: int, run_dir: Path,
                 what: tuple[str, str, int] | None) -> None:
    """Raise on every rank if any rank's loss is non-finite (one all-reduce with several processes).
    ``what`` describes the training (objective, unit of its batches, seed) for this rank's own error."""
    failed = distributed.failed_ranks(bad is not None, dist)
    if bad is not None and what is not None:
        out, value, indices = bad
        parts = {k: float(v) for k, v in out.metrics.items() if k.endswith("loss")}
        nonfinite = [k for k, v in parts.items() if not math.isfinite(v)]
        which = f" ({', '.join(f'{k}={parts[k]}' for k in nonfinite)})" if nonfinite else ""
        rows = ", ".join(str(int(i)) for i in indices[:8]) + (" ..." if len(indices) > 8 else "")
        objective, unit, seed = what
        raise NonFiniteLossError(
            f"non-finite loss {value} at step {step}, objective {objective}{which}, batch of training {unit} "
            f"[{rows}] (seed {seed}); no checkpoint was written for this step; the newest checkpoint in {run_dir} "
            f"is intact. Try a lower optim.lr or --precision fp32")
    if failed:
        raise NonFiniteLossError(
            f"non-finite loss at step {step} on rank {', '.join(map(str, failed))} (its error is printed "
            f"above); rank {dist.rank} stops too. No checkpoint was written for this step; the newest "
            f"checkpoint in {run_dir} is intact")
