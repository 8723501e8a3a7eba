"""Which model a benchmark result belongs to: the fields every suite's per-model result starts with."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModelRecord:
    name: str
    path: str | None  # the run or exported directory (its results go there); None for an in-memory model
    backbone: str
    objective: str | None
    checkpoint_id: str
    from_scratch: bool
