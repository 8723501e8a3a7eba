"""Where training metrics go: ``metrics.jsonl`` (always), TensorBoard and Weights & Biases (``train.report_to``,
optional extras), a progress callback."""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
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


# report_to name -> (module that must import, extra that installs it)
REPORTER_PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb")}


def check_reporters(names: list[str]) -> None:
    """A one-line error naming the extra to install when a reporter's package is missing (before any work)."""
    for name in names:
        module, extra = REPORTER_PACKAGES[name]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"--report-to {name} (train.report_to) needs the {module} package: "
                              f"pip install 'objective-zoo[{extra}]'")


def _scalars(record: Record) -> dict[str, float]:
    """``kind/key`` -> value for the finite numbers of a record (``train/loss``, ``eval/ppl``, ...)."""
    prefix = record.get("kind", "train")
    return {f"{prefix}/{key}": value for key, value in record.items()
            if key not in ("kind", "step") and isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value)}


class TensorBoardSink:
    """Scalars under ``<run>/tensorboard`` (``torch.utils.tensorboard``), tagged ``kind/key``."""

    def __init__(self, log_dir: Path) -> None:
        check_reporters(["tensorboard"])
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(str(log_dir))

    def write(self, record: Record) -> None:
        for tag, value in _scalars(record).items():
            self._writer.add_scalar(tag, value, record["step"])

    def close(self) -> None:
        self._writer.close()


class WandbSink:
    """A Weights & Biases run named after the run directory, its files under ``<run>/wandb``; the project is
    ``$WANDB_PROJECT`` (default ``objective-zoo``); ``WANDB_MODE=offline`` keeps everything local."""

    def __init__(self, run_dir: Path, config: dict[str, Any] | None = None) -> None:
        check_reporters(["wandb"])
        import wandb

        try:
            self._run = wandb.init(project=os.environ.get("WANDB_PROJECT", "objective-zoo"), name=Path(run_dir).name,
                                   dir=str(run_dir), config=config or {}, job_type="train")
        except Exception as exc:  # wandb's own errors (not logged in, no network) have no common base class
            raise ConfigError(f"--report-to wandb: W&B could not start a run ({exc}); log in with `wandb login` or "
                              "set WANDB_MODE=offline") from exc

    def write(self, record: Record) -> None:
        self._run.log(_scalars(record), step=int(record["step"]))

    def close(self) -> None:
        self._run.finish()


class Sinks:
    """Fan-out of records to every sink and to an optional callback (the CLI's progress display)."""

    def __init__(self, sinks: list[Any], callback: Callable[[Record], None] | None = None) -> None:
        self.sinks = sinks
        self.callback = callback

    @classmethod
    def for_run(cls, run_dir: Path, report_to: list[str], callback: Callable[[Record], None] | None,
                config: dict[str, Any] | None = None) -> Sinks:
        """The main process's sinks: ``metrics.jsonl``, the ``report_to`` ones (``tensorboard``, ``wandb``;
        ``config``: the run's, recorded by W&B) and ``callback``."""
        check_reporters(report_to)
        sinks: list[Any] = [JsonlSink(run_dir / "metrics.jsonl")]
        for name in report_to:
            sinks.append(TensorBoardSink(run_dir / "tensorboard") if name == "tensorboard" else WandbSink(run_dir, config))
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
