"""Claiming a run directory for a training: refuse foreign directories and files, lock it
against a second training, and leave nothing behind when a new run fails before it trains.

A directory is a zoo run when it carries the run marker (``.zoo-run``, written first by the
training that holds the lock), or when it has the complete layout of a run written by an earlier
version (``zoo.markers.legacy_run``; it is marked then). An empty directory becomes a run; anything
else is refused, naming what was found, and left untouched.
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

from zoo import fileio, markers
from zoo.errors import CheckpointError, ConfigError
from zoo.train import checkpoint as ckpt
from zoo.train.config import RunConfig
from zoo.train.lock import LOCK_FILE, RunLock
from zoo.train.resolve import config_changes
from zoo.typed_config import dump_toml, to_dict

log = logging.getLogger(__name__)


def check_out(run_dir: Path, cfg: RunConfig, compare: bool = True) -> markers.Found | None:
    """Refuse ``--out`` when it is a file, a non-empty directory that is not a zoo run, or (with
    ``compare``) a zoo run of another configuration (naming the settings that differ, old and new).
    Returns what the directory is (None when it does not exist)."""
    markers.refuse_dangling_link(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir} is a file, not a directory; a run directory holds the configuration, "
                          f"tokenizer, logs and checkpoints: choose a new or empty directory")
    if not run_dir.is_dir():
        return None
    found = markers.identify(run_dir)
    if found.kind not in ("empty", "run", "legacy-run"):
        if found.kind == "files":
            raise ConfigError(f"--out {run_dir} is not empty and not a zoo run directory (it holds {found.what}); "
                              f"choose a new or empty directory so that nothing in it is overwritten")
        raise ConfigError(f"--out {run_dir} is not a zoo run directory: it holds {found.what}; choose a new "
                          f"or empty directory so that nothing in it is overwritten")
    config = run_dir / "config.json"
    if compare and config.is_file():
        try:
            saved = json.loads(config.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{config}: unreadable ({exc}); it records the run's configuration, which a "
                                  f"resumed run must match") from exc
        if not markers.is_run_config(saved):
            raise CheckpointError(f"{config}: not a zoo run configuration; it records the run's configuration, "
                                  f"which a resumed run must match")
        changes = config_changes(saved, cfg)
        if changes:
            raise ConfigError(f"{run_dir} holds a run with a different configuration ({', '.join(changes[:6])}); "
                              f"resume it with the same settings or choose another --out")
    return found


def write_config(run_dir: Path, cfg: RunConfig) -> None:
    """``config.toml`` (to read and edit) and ``config.json`` (what resuming compares against)."""
    fileio.write_text(run_dir / "config.toml", dump_toml(to_dict(cfg)), if_changed=True)
    fileio.write_json(run_dir / "config.json", to_dict(cfg), if_changed=True)


def saved_budget(run_dir: Path) -> str | None:
    """``train.budget`` of the configuration saved in ``run_dir`` (the last attempt's), if readable."""
    try:
        budget = fileio.read_json(run_dir / "config.json")["train"]["budget"]
    except (KeyError, TypeError):
        return None
    return budget if isinstance(budget, str) else None


def write_run_info(run_dir: Path, cfg: RunConfig, info: dict[str, Any]) -> None:
    """``run.json``: ``info`` (what the trainer built) after the format, version and plugin versions;
    rewritten (atomically) only when that changed. A resumed run keeps how its data was first built and,
    when ``info`` has none, its ``init`` and ``branch`` records (what it started from)."""
    from zoo import __version__, registry

    versions = {f"objective:{p}": registry.info("objective", p).version for p in cfg.objective.names}
    versions[f"backbone:{cfg.backbone}"] = registry.info("backbone", cfg.backbone).version
    head = {"format": 1, "zoo_version": __version__, "objective": cfg.objective.text, "backbone": cfg.backbone,
            "plugins": versions}
    record = {**head, **info}
    old = fileio.read_json(run_dir / "run.json")
    if isinstance(old, dict) and "data" in record and "data" in old:
        record["data"] = old["data"]  # how the data was first built (a resume times its cache reads)
    for key in ("init", "branch"):
        if isinstance(old, dict) and record.get(key) is None and old.get(key) is not None:
            record[key] = old[key]
    fileio.write_json(run_dir / "run.json", record, default=str, if_changed=True)


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
        if not self.run_dir.is_dir() and (self.run_dir.exists() or self.run_dir.is_symlink()):
            check_out(self.run_dir, self.cfg)  # a file or a dangling link: refused, untouched
        self.created = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.before = set(os.listdir(self.run_dir))
        # First the lock (it writes nothing): a second training is refused here, naming the first,
        # whatever the first has written so far; then, under the lock, what the directory holds is
        # final, and a foreign one is refused untouched.
        self.lock = RunLock(self.run_dir).acquire()
        found = check_out(self.run_dir, self.cfg)
        self.lock.record()
        if found is None or found.kind != "run":
            if found is not None and found.kind == "legacy-run":
                log.info("%s: a run of an earlier version; marking it as a zoo run", self.run_dir)
            markers.write_marker(self.run_dir, "run")  # first: the directory is this run's from now on
        for name in os.listdir(self.run_dir):
            owner = fileio.temp_owner(name)
            # A write interrupted by a kill; not one in progress (a ``zoo bench`` merging into bench.json,
            # which takes no run lock).
            if owner is not None and not fileio.process_alive(owner):
                (self.run_dir / name).unlink(missing_ok=True)
        has_checkpoints = bool(ckpt.steps(self.run_dir))
        if not (self.run_dir / "config.json").exists() and not has_checkpoints:
            # a run with checkpoints recovers its settings from them (``state.check_same_config``)
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
