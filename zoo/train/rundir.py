"""Claiming a run directory for a training: refuse foreign directories and files, lock it
against a second training, and leave nothing behind when a new run fails before it trains.

A directory is a zoo run when its ``config.json`` is a run configuration (``objective``,
``backbone``, ``train``), or when it holds nothing but the files a run writes before its
configuration (the tokenizer of a run that stopped while building its data).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from zoo.errors import CheckpointError, ConfigError
from zoo.train import checkpoint as ckpt
from zoo.train.config import RunConfig, config_changes
from zoo.train.lock import LOCK_FILE, RunLock
from zoo.typed_config import dump_toml, to_dict

log = logging.getLogger(__name__)

# Files a run writes before config.json (or beside it) that do not make a directory foreign.
_EARLY_FILES = {LOCK_FILE, "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                "tokenizer-origin.json", "metrics.jsonl"}


def _is_run_config(data: Any) -> bool:
    return isinstance(data, dict) and {"objective", "backbone", "train"} <= set(data)


def _describe(config: Path) -> str:
    """What a foreign ``config.json`` seems to be, for the error message."""
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError):
        return "a config.json that is not a zoo run configuration"
    if isinstance(data, dict) and ("model_type" in data or "architectures" in data):
        kind = data.get("model_type") or ", ".join(data.get("architectures") or [])
        return f"a Hugging Face model ({kind}; config.json has no zoo run configuration)"
    return "a config.json that is not a zoo run configuration"


def check_out(run_dir: Path, cfg: RunConfig, compare: bool = True) -> None:
    """Refuse ``--out`` when it is a file, a non-empty directory that is not a zoo run, or (with
    ``compare``) a zoo run of another configuration (naming the settings that differ, old and new)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir} is a file, not a directory; a run directory holds the configuration, "
                          f"tokenizer, logs and checkpoints: choose a new or empty directory")
    if not run_dir.is_dir():
        return
    entries = sorted(p.name for p in run_dir.iterdir())
    config = run_dir / "config.json"
    if not config.is_file():
        if "run.json" in entries or (run_dir / "latest").is_file() or ckpt.steps(run_dir):
            return  # a run whose config.json was lost: the trainer checks its checkpoints
        foreign = [n for n in entries if n not in _EARLY_FILES]
        if foreign:
            shown = ", ".join(foreign[:4]) + (", ..." if len(foreign) > 4 else "")
            raise ConfigError(f"--out {run_dir} is not empty and not a zoo run directory (it holds {shown}); "
                              f"choose a new or empty directory so that nothing in it is overwritten")
        return
    try:
        saved = json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        if "run.json" in entries or ckpt.steps(run_dir):
            raise CheckpointError(f"{config}: unreadable ({exc}); it records the run's configuration, which a "
                                  f"resumed run must match") from exc
        saved = None
    if not _is_run_config(saved):
        raise ConfigError(f"--out {run_dir} is not a zoo run directory: it holds {_describe(config)}; choose a new "
                          f"or empty directory so that nothing in it is overwritten")
    changes = config_changes(saved, cfg) if compare else []
    if changes:
        raise ConfigError(f"{run_dir} holds a run with a different configuration ({', '.join(changes[:6])}); "
                          f"resume it with the same settings or choose another --out")


def write_config(run_dir: Path, cfg: RunConfig) -> None:
    """``config.toml`` (to read and edit) and ``config.json`` (what resuming compares against)."""
    (run_dir / "config.toml").write_text(dump_toml(to_dict(cfg)))
    (run_dir / "config.json").write_text(json.dumps(to_dict(cfg), indent=1))


def saved_budget(run_dir: Path) -> str | None:
    """``train.budget`` of the configuration saved in ``run_dir`` (the last attempt's), if readable."""
    try:
        saved = json.loads((run_dir / "config.json").read_text())
        budget = saved["train"]["budget"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return budget if isinstance(budget, str) else None


def write_run_info(run_dir: Path, cfg: RunConfig, info: dict[str, Any]) -> None:
    """``run.json``: ``info`` (what the trainer built) after the format, version and plugin versions."""
    from zoo import __version__, registry

    versions = {f"objective:{p}": registry.info("objective", p).version for p in cfg.spec.names}
    versions[f"backbone:{cfg.backbone}"] = registry.info("backbone", cfg.backbone).version
    head = {"format": 1, "zoo_version": __version__, "objective": cfg.objective, "backbone": cfg.backbone,
            "plugins": versions}
    (run_dir / "run.json").write_text(json.dumps({**head, **info}, indent=1, default=str))


@contextmanager
def claim(run_dir: Path, cfg: RunConfig, main: bool) -> Iterator[RunClaim]:
    """Check and lock ``run_dir`` (on the main process); on an error before ``started()``, remove
    the directory if this call created it."""
    c = RunClaim(run_dir, cfg, main)
    try:
        yield c.open()
    except BaseException:
        c.abort()
        raise
    finally:
        c.close()


class RunClaim:
    def __init__(self, run_dir: Path, cfg: RunConfig, main: bool) -> None:
        self.run_dir, self.cfg, self.main = Path(run_dir), cfg, main
        self.created = False
        self.before: set[str] = set()
        self.training = False
        self.lock: RunLock | None = None

    def open(self) -> RunClaim:
        if not self.main:
            return self
        check_out(self.run_dir, self.cfg, compare=False)  # a file or a foreign directory: touch nothing
        self.created = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.before = set(os.listdir(self.run_dir))
        self.lock = RunLock(self.run_dir).acquire()  # a second training is refused here, naming the first
        check_out(self.run_dir, self.cfg)  # under the lock: the configuration it holds is final
        if not (self.run_dir / "config.json").exists():  # marks the directory as this run's from the start
            write_config(self.run_dir, self.cfg)
        return self

    def started(self) -> None:
        """Training has begun: from now on the directory holds work worth keeping."""
        self.training = True

    def abort(self) -> None:
        """A run that failed before training leaves the directory as it found it."""
        if not self.main or self.training or self.lock is None:
            return
        if self.created:
            log.info("removing %s: the run failed before training", self.run_dir)
            shutil.rmtree(self.run_dir, ignore_errors=True)
            return
        for name in set(os.listdir(self.run_dir)) - self.before - {LOCK_FILE}:
            path = self.run_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None
