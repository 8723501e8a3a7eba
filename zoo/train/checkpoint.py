"""Checkpoint directories: safetensors + JSON, sha256 manifest, atomic rename, keep-last-K.

Layout of ``<run>/step-NNNNNN/``::

    model.safetensors       backbone.* and heads.<objective>.* tensors
    optimizer.safetensors   optimiser state tensors, keyed "<param name>/<state key>"
    rng.safetensors         torch CPU (and CUDA) generator states of every rank
    trainer.json            step counters, sampler state, numpy/python RNG of every rank, metric accumulators
    manifest.json           sha256 and size of every file above (written last)

A step directory is written as ``.tmp-step-NNNNNN-<pid>`` and renamed when complete; then
``latest`` is replaced. A step written again (after a resume at that step) replaces the old one
only once it is complete, by ``fileio.replace_dir``; an old one a crash left moved aside is put back
by ``clean_temporaries``. Resuming from an older step moves the newer ones aside to
``abandoned-step-NNNNNN-<unix time>`` (never deleted, never resumed from). Nothing here
unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, load_file, save_file

from zoo import diskspace, fileio
from zoo.errors import CheckpointError
from zoo.train import faults

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LATEST = "latest"
_STEP = re.compile(r"^step-(\d{6,})$")
_MOVED_ASIDE = re.compile(r"^\.(step-\d{6,})\.old-\d+-[0-9a-f]{8}$")  # see ``fileio.replace_dir``
TENSOR_FILES = ("model.safetensors", "optimizer.safetensors", "rng.safetensors")


@dataclass(frozen=True)
class Counters:
    """What a checkpoint's ``trainer.json`` counts so far: optimiser steps, tokens, training FLOPs (of which
    ``head_flops`` in the objectives' heads) and training seconds. Read here, in one place."""

    step: int
    tokens: int
    flops: float
    train_time_s: float
    head_flops: float = 0.0  # 0: a checkpoint from before heads were counted apart

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Counters:
        return cls(int(state["step"]), int(state["tokens"]), float(state["flops"]), float(state["train_time_s"]),
                   float(state.get("head_flops", 0.0)))

    def spent(self, kind: str) -> float:
        """The spent budget in the unit of a budget of ``kind`` (steps, tokens, flops, time)."""
        return float({"steps": self.step, "tokens": self.tokens, "flops": self.flops, "time": self.train_time_s}[kind])


def read_counters(step_dir: Path) -> Counters:
    """The counters of the checkpoint ``step_dir`` (``OSError``, ``ValueError`` or ``KeyError`` when unreadable)."""
    return Counters.from_state(json.loads((Path(step_dir) / "trainer.json").read_text(encoding="utf-8")))


@dataclass
class Checkpoint:
    model: dict[str, torch.Tensor]
    optimizer: dict[str, torch.Tensor]
    rng: dict[str, torch.Tensor]
    state: dict[str, Any]  # trainer.json


def step_name(step: int) -> str:
    return f"step-{step:06d}"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    return [k for k, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]


def write(run_dir: Path, step: int, ckpt: Checkpoint, keep_last: int) -> Path:
    """Write ``step-NNNNNN`` atomically, point ``latest`` at it, prune old steps. Returns its path."""
    bad = _non_finite(ckpt.model) + _non_finite(ckpt.optimizer)
    if bad:
        raise CheckpointError(f"refusing to write checkpoint {step_name(step)}: non-finite values in {bad[:5]}")
    run_dir = Path(run_dir)
    final = run_dir / step_name(step)
    tmp = run_dir / f".tmp-{step_name(step)}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        _write_files(tmp, step, ckpt)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)  # never leave a partial checkpoint behind
        if not isinstance(exc, (OSError, SafetensorError)):
            raise
        if not diskspace.is_full(exc):
            err = fileio.explain(exc, tmp, _size(ckpt))  # "file too large", naming the file
            if err is exc:
                raise
            raise CheckpointError(f"checkpoint {step_name(step)} not written: {err}; the partial files were "
                                  f"removed") from exc
        previous = steps(run_dir)
        kept = (f"the previous checkpoint {previous[-1][1].name} is intact" if previous
                else "no earlier checkpoint exists")
        raise CheckpointError(f"{diskspace.no_space(run_dir, _size(ckpt), f'checkpoint {step_name(step)}')}; "
                              f"{kept} and the partial files were removed. Free some space (or lower "
                              f"train.keep_last) and run the same command again to resume") from exc
    faults.maybe_kill_in_checkpoint("before-rename")
    try:
        if final.exists():  # re-written after a resume at the same step: the old one stays until the new is in
            fileio.replace_dir(tmp, final)
        else:
            fileio.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fileio.fsync_dir(run_dir)
    try:
        fileio.write_text(run_dir / LATEST, step_name(step) + "\n", if_changed=True)
    except OSError as exc:  # the step is complete; ``latest`` is only a pointer for people and scripts
        if not diskspace.is_full(exc):
            raise
        log.warning("could not update %s: %s", run_dir / LATEST, exc)
    prune(run_dir, keep_last, keep=final)
    return final


def _size(ckpt: Checkpoint) -> float:
    tensors = [*ckpt.model.values(), *ckpt.optimizer.values(), *ckpt.rng.values()]
    return float(sum(t.numel() * t.element_size() for t in tensors)) + len(json.dumps(ckpt.state))


def _write_files(tmp: Path, step: int, ckpt: Checkpoint) -> None:
    """Every file of a step directory, into ``tmp``."""
    tmp.mkdir(parents=True)
    save_file(ckpt.model, str(tmp / "model.safetensors"), metadata={"format": "objective-zoo"})
    faults.maybe_kill_in_checkpoint("after-weights")
    save_file(ckpt.optimizer, str(tmp / "optimizer.safetensors"))
    faults.maybe_kill_in_checkpoint("after-optimizer")
    save_file(ckpt.rng, str(tmp / "rng.safetensors"))
    fileio.write_text(tmp / "trainer.json", json.dumps(ckpt.state, indent=1, sort_keys=True))
    files = {}
    for name in TENSOR_FILES:
        fileio.fsync_file(tmp / name)
    for name in (*TENSOR_FILES, "trainer.json"):
        files[name] = {"sha256": sha256_file(tmp / name), "bytes": (tmp / name).stat().st_size}
    manifest = {"format": FORMAT_VERSION, "step": step, "files": files}
    fileio.write_text(tmp / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))


def steps(run_dir: Path) -> list[tuple[int, Path]]:
    """Step directories (complete by construction, not yet verified), oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if p.is_dir() and (m := _STEP.match(p.name))]
    return sorted(found)


def prune(run_dir: Path, keep_last: int, keep: Path | None = None) -> None:
    """Remove all but the newest ``keep_last`` steps, except ``keep`` and the branch points (kept for
    cooldown branches, ``zoo.train.branch``)."""
    for _, path in steps(run_dir)[:-keep_last] if keep_last > 0 else []:
        if path != keep and not is_branch_point(path):
            shutil.rmtree(path, ignore_errors=True)


def is_branch_point(step_dir: Path) -> bool:
    """Whether the checkpoint was kept as the start of a budget's cooldown."""
    try:
        state = json.loads((step_dir / "trainer.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and state.get("branch_point") is True


def abandon_after(run_dir: Path, step: int) -> list[Path]:
    """Move the step directories newer than ``step`` aside to ``abandoned-step-NNNNNN-<unix time>``
    (with the run's ``metrics.jsonl`` as it was, in the newest), point ``latest`` at the newest
    remaining step; returns the new paths, oldest first."""
    run_dir = Path(run_dir)
    newer = [p for s, p in steps(run_dir) if s > step]
    if not newer:
        return []
    stamp = int(time.time())
    moved = []
    for path in newer:
        dest = run_dir / f"abandoned-{path.name}-{stamp}"
        n = 1
        while dest.exists():
            dest = run_dir / f"abandoned-{path.name}-{stamp}.{n}"
            n += 1
        os.replace(path, dest)
        moved.append(dest)
    if (run_dir / "metrics.jsonl").is_file():
        fileio.write_bytes(moved[-1] / "metrics.jsonl", (run_dir / "metrics.jsonl").read_bytes())
    remaining = steps(run_dir)
    if remaining:
        fileio.write_text(run_dir / LATEST, remaining[-1][1].name + "\n")
    else:
        (run_dir / LATEST).unlink(missing_ok=True)
    return moved


def clean_temporaries(run_dir: Path) -> int:
    """Remove leftovers of interrupted checkpoint writes; returns how many. A step that was being
    replaced by a rewrite of itself (``fileio.replace_dir`` moves it aside as ``.step-NNNNNN.old-*``
    first) is put back when the new one never arrived."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return 0
    leftovers = [p for p in run_dir.glob(".tmp-step-*") if p.is_dir()]
    for p in leftovers:
        log.warning("removing incomplete checkpoint %s (interrupted write)", p.name)
        shutil.rmtree(p, ignore_errors=True)
    for p in sorted(run_dir.glob(".step-*.old-*")):
        m = _MOVED_ASIDE.match(p.name)
        if m is None or not p.is_dir():
            continue
        final = run_dir / m.group(1)
        if final.exists():  # the rewrite finished; only the deletion of the old one was cut short
            shutil.rmtree(p, ignore_errors=True)
        else:
            log.warning("restoring checkpoint %s (its rewrite was interrupted)", final.name)
            os.replace(p, final)
            fileio.fsync_dir(run_dir)
        leftovers.append(p)
    return len(leftovers)


def verify(step_dir: Path) -> dict[str, Any]:
    """Check every file against the manifest; raise ``CheckpointError`` naming the bad file."""
    step_dir = Path(step_dir)
    manifest_path = step_dir / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"checkpoint {step_dir}: {MANIFEST} is missing (incomplete or not a checkpoint)")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {step_dir}: {MANIFEST} is unreadable: {exc}") from exc
    if manifest.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {step_dir}: format {manifest.get('format')!r}, "
                              f"this version reads format {FORMAT_VERSION}")
    for name, meta in sorted(files.items()):
        path = step_dir / name
        if not path.is_file():
            raise CheckpointError(f"checkpoint {step_dir}: file {name} is missing")
        size = path.stat().st_size
        if size != meta["bytes"]:
            raise CheckpointError(f"checkpoint {step_dir}: file {name} has {size} bytes, "
                                  f"manifest expects {meta['bytes']} (truncated or replaced)")
        actual = sha256_file(path)
        if actual != meta["sha256"]:
            raise CheckpointError(f"checkpoint {step_dir}: file {name} sha256 {actual} does not match "
                                  f"manifest {meta['sha256']}")
    return manifest


def newest_valid(run_dir: Path) -> tuple[Path | None, list[str]]:
    """The newest verified step directory and the problems found with newer ones."""
    problems: list[str] = []
    for _, path in reversed(steps(run_dir)):
        try:
            verify(path)
            return path, problems
        except CheckpointError as exc:
            problems.append(str(exc))
    return None, problems


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """safetensors only; anything else (a pickle, an oversized header) is refused with the file named."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def tensors_from_bytes(data: bytes, path: Path) -> dict[str, torch.Tensor]:
    """``load_tensors`` of a file already read into memory (``path`` names it in errors)."""
    try:
        return load(data)
    except (SafetensorError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def read(step_dir: Path, verified: bool = True) -> Checkpoint:
    step_dir = Path(step_dir)
    if verified:
        verify(step_dir)
    try:
        state = json.loads((step_dir / "trainer.json").read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{step_dir / 'trainer.json'}: unreadable ({exc})") from exc
    return Checkpoint(
        model=load_tensors(step_dir / "model.safetensors"),
        optimizer=load_tensors(step_dir / "optimizer.safetensors"),
        rng=load_tensors(step_dir / "rng.safetensors"),
        state=state,
    )
