"""Where training metrics go: ``metrics.jsonl`` (always), TensorBoard (optional), a progress callback."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo import fileio
from zoo.errors import ConfigError

log = logging.getLogger(__name__)

Record = dict[str, Any]
# Dense (no sparsity) bf16 peak of known accelerators by device-name fragment, for model FLOPs
# utilisation; the first fragment found in the name wins, so the PCIe and NVL H100s come first.
PEAK_FLOPS = {"H100 PCIe": 756e12, "H100 NVL": 835e12, "H100": 989e12, "H200": 989e12, "A100": 312e12}
# Fields that measure the machine, not the computation; they differ between identical runs.
TIMING_FIELDS = ("tokens_per_s", "elapsed_s", "step_time_s", "mfu", "wall_time")


class JsonlSink:
    """``metrics.jsonl``: appended to, one durable write per record, never rewritten in place."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._log = fileio.AppendLog(self.path)

    def write(self, record: Record) -> None:
        self._log.append(json.dumps(record, sort_keys=False))

    def close(self) -> None:
        self._log.close()


def truncate_after(path: Path, step: int) -> int:
    """Drop records logged after ``step`` (written by a run that died before its next checkpoint), and
    lines cut by a kill mid-write. The file is replaced by a new one (atomically), and only when
    something is dropped."""
    path = Path(path)
    if not path.exists():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut by a kill mid-write
        if rec.get("step", 0) <= step:
            kept.append(line if line.endswith("\n") else line + "\n")
    if kept != lines:
        fileio.write_text(path, "".join(kept))
    return len(lines) - len(kept)


def read_records(path: Path, kind: str | None = None) -> list[Record]:
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if kind is None or rec.get("kind") == kind:
            out.append(rec)
    return out


class TensorBoardSink:
    def __init__(self, log_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ConfigError("train.tensorboard = true needs `pip install objective-zoo[tensorboard]`") from exc
        self._writer = SummaryWriter(str(log_dir))

    def write(self, record: Record) -> None:
        prefix = record.get("kind", "train")
        for key, value in record.items():
            if key not in ("kind", "step") and isinstance(value, (int, float)) and math.isfinite(value):
                self._writer.add_scalar(f"{prefix}/{key}", value, record["step"])

    def close(self) -> None:
        self._writer.close()


class Sinks:
    """Fan-out of records to every sink and to an optional callback (the CLI's progress display)."""

    def __init__(self, sinks: list[Any], callback: Callable[[Record], None] | None = None) -> None:
        self.sinks = sinks
        self.callback = callback

    @classmethod
    def for_run(cls, run_dir: Path, tensorboard: bool, callback: Callable[[Record], None] | None) -> Sinks:
        """The main process's sinks: ``metrics.jsonl``, TensorBoard when asked for, and ``callback``."""
        sinks: list[Any] = [JsonlSink(run_dir / "metrics.jsonl")]
        if tensorboard:
            sinks.append(TensorBoardSink(run_dir / "tensorboard"))
        return cls(sinks, callback)

    def write(self, record: Record) -> None:
        for sink in self.sinks:
            sink.write(record)
        if self.callback is not None:
            self.callback(record)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


class Averager:
    """Weighted means of metrics over several batches (weights: each batch's prediction count)."""

    def __init__(self, sums: dict[str, float] | None = None, weights: dict[str, float] | None = None) -> None:
        self.sums = dict(sums or {})
        self.weights = dict(weights or {})

    def add(self, metrics: dict[str, float], weight: float = 1.0, weights: dict[str, float] | None = None) -> None:
        """Add batch means; ``weights`` overrides ``weight`` per metric."""
        for k, v in metrics.items():
            w = float(weights[k]) if weights and k in weights else weight
            self.sums[k] = self.sums.get(k, 0.0) + float(v) * w
            self.weights[k] = self.weights.get(k, 0.0) + w

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.weights[k] for k in self.sums if self.weights[k] > 0}

    def state(self) -> dict[str, dict[str, float]]:
        return {"sums": dict(self.sums), "weights": dict(self.weights)}

    def reset(self) -> None:
        self.sums.clear()
        self.weights.clear()


def default_peak_flops(device: Any) -> float:
    """The bf16 peak of ``device`` (a ``torch.device``) when it is a known GPU, else 0 (no MFU)."""
    if device.type != "cuda":
        return 0.0
    import torch

    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), 0.0)
