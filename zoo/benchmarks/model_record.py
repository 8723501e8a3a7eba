"""Which model a benchmark result belongs to: the fields every suite's per-model result starts with."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass
class ModelRecord:
    name: str
    path: str | None  # the run or exported directory (its results go there); None for an in-memory model
    backbone: str
    objective: str | None
    checkpoint_id: str
    from_scratch: bool

    def record(self) -> dict[str, Any]:
        """These fields as a ``bench.json`` model entry starts."""
        return {f.name: getattr(self, f.name) for f in fields(ModelRecord)}

    @staticmethod
    def read(entry: dict[str, Any]) -> list[Any]:
        """These fields of a ``bench.json`` model entry, in order (the first arguments of a result's constructor)."""
        return [entry[f.name] for f in fields(ModelRecord)]
