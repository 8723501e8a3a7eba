"""Reading run directories written by ``zoo train``: config, tokenizer, verified checkpoints.

A run directory holds ``config.toml``/``config.json`` (resolved config), ``run.json`` (names,
plugin versions, tokenizer hash), ``tokenizer.json``, ``metrics.jsonl`` and ``step-NNNNNN/``
checkpoints (see ``zoo.train.checkpoint``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from zoo.batch import SpecialTokens
from zoo.errors import CheckpointError
from zoo.models.base import Backbone
from zoo.train import checkpoint as ckpt
from zoo.train.config import RunConfig
from zoo.train.metrics import Record, read_records
from zoo.typed_config import from_dict
from zoo.zoo_model import ZooModel

log = logging.getLogger(__name__)

READ_ATTEMPTS = 5  # a training that prunes old steps can remove the one chosen: take the newer one


@dataclass
class Snapshot:
    """One checkpoint's weights and trainer state, read into memory and checked against its manifest,
    so that a training writing and pruning the run meanwhile cannot mix two steps."""

    path: Path
    step: int
    model_sha256: str
    tensors: dict[str, Any]
    state: dict[str, Any]


def _read_snapshot(path: Path) -> Snapshot:
    manifest = json.loads((path / ckpt.MANIFEST).read_text())
    data = {}
    for name in ("model.safetensors", "trainer.json"):
        data[name] = (path / name).read_bytes()
        actual = hashlib.sha256(data[name]).hexdigest()
        if actual != manifest["files"][name]["sha256"]:
            raise CheckpointError(f"checkpoint {path}: file {name} sha256 {actual} does not match manifest "
                                  f"{manifest['files'][name]['sha256']}")
    try:
        state = json.loads(data["trainer.json"])
    except ValueError as exc:
        raise CheckpointError(f"{path / 'trainer.json'}: unreadable ({exc})") from exc
    return Snapshot(path, int(manifest["step"]), manifest["files"]["model.safetensors"]["sha256"],
                    ckpt.tensors_from_bytes(data["model.safetensors"], path / "model.safetensors"), state)


class Run:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        for name in ("config.json", "run.json", "tokenizer.json"):
            if not (self.path / name).is_file():
                raise CheckpointError(f"{self.path} is not a zoo run directory: {name} is missing")
        try:
            self.info: dict[str, Any] = json.loads((self.path / "run.json").read_text())
            raw = json.loads((self.path / "config.json").read_text())
        except ValueError as exc:
            raise CheckpointError(f"{self.path}: run.json or config.json is not valid JSON ({exc})") from exc
        self.config: RunConfig = from_dict(RunConfig, raw)
        self._check_names()
        self._snapshots: dict[int | None, Snapshot] = {}

    def _check_names(self) -> None:
        """The objective and backbone named by config.json are registered plugins (found from metadata,
        nothing imported): an edited or foreign config is refused before anything is built."""
        from zoo import registry
        from zoo.errors import ZooError
        try:
            registry.info("backbone", self.config.backbone)
            for part in self.config.objective.names:
                registry.info("objective", part)
        except ZooError as exc:
            raise CheckpointError(f"{self.path / 'config.json'}: {exc}") from exc

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def backbone_name(self) -> str:
        return self.config.backbone

    @property
    def objective_name(self) -> str:
        return self.config.objective.text

    # --- tokenizer ----------------------------------------------------------------------------
    @cached_property
    def _tokenizer(self) -> Any:
        from zoo.data import load_tokenizer

        return load_tokenizer(self.path / "tokenizer.json")

    def tokenizer(self) -> Any:
        return self._tokenizer

    def special_tokens(self) -> SpecialTokens:
        from zoo.data import special_tokens

        return special_tokens(self._tokenizer)

    def tokenizer_hash(self) -> str:
        from zoo.data import tokenizer_hash

        return tokenizer_hash(self._tokenizer)

    # --- checkpoints --------------------------------------------------------------------------
    def steps(self) -> list[int]:
        return [s for s, _ in ckpt.steps(self.path)]

    def checkpoint(self, step: int | None = None) -> Path:
        """A verified step directory: ``step`` exactly (error if damaged), or the newest intact one."""
        if step is not None:
            path = self.path / ckpt.step_name(step)
            if not path.is_dir():
                raise CheckpointError(f"{self.path} has no checkpoint for step {step}; it has {self.steps()}")
            ckpt.verify(path)
            return path
        path, problems = ckpt.newest_valid(self.path)
        if path is None:
            detail = f": {problems[0]}" if problems else ""
            raise CheckpointError(f"{self.path} has no complete, intact checkpoint{detail}")
        if problems:  # never silently evaluate older weights than the run's newest
            step = int(path.name.removeprefix("step-"))
            raise CheckpointError(f"the newest checkpoint of {self.path} is damaged: {problems[0]}. The newest "
                                  f"intact one is step {step}; pass --step {step} to use it")
        return path

    def snapshot(self, step: int | None = None) -> Snapshot:
        """The weights and state of ``step`` (default: the newest intact step, chosen once per ``Run``:
        every later call returns the same one), read into memory and checked."""
        if step in self._snapshots:
            return self._snapshots[step]
        for _ in range(READ_ATTEMPTS):
            before = self.steps()
            path = None
            try:
                path = self.checkpoint(step)
                snap = _read_snapshot(path)
            except (FileNotFoundError, CheckpointError) as exc:
                # A training of this run pruned the chosen step meanwhile: choose again.
                vanished = isinstance(exc, FileNotFoundError) or self.steps() != before
                if step is None and vanished:
                    continue
                if isinstance(exc, CheckpointError):
                    raise
                raise CheckpointError(f"checkpoint {path or self.path} was removed while it was being read (a "
                                      f"training of {self.path} pruned it); choose a newer --step") from None
            except (KeyError, TypeError, ValueError) as exc:
                raise CheckpointError(f"checkpoint {path}: {ckpt.MANIFEST} is unreadable: {exc}") from exc
            self._snapshots[step] = snap
            return snap
        raise CheckpointError(f"{self.path}: its checkpoints kept being replaced while being read; try again")

    def checkpoint_id(self, step: int | None = None) -> str:
        """Stable id of the weights: the sha256 of ``model.safetensors`` from the manifest."""
        return self.snapshot(step).model_sha256

    def _checked_state(self, step: int | None) -> tuple[Path, dict[str, Any]]:
        snap = self.snapshot(step)
        path, state = snap.path, snap.state
        mine = self.tokenizer_hash()
        if state.get("tokenizer_hash") != mine or state.get("vocab_size") != self.special_tokens().vocab_size:
            raise CheckpointError(
                f"checkpoint {path} was trained with tokenizer {state.get('tokenizer_hash', '?')[:12]} "
                f"(vocab {state.get('vocab_size')}), but {self.path / 'tokenizer.json'} is "
                f"{mine[:12]} (vocab {self.special_tokens().vocab_size})")
        return path, state

    def build_model(self) -> ZooModel:
        """The run's model with freshly initialised weights (same config, same tokenizer)."""
        from zoo.train.build import build_model

        return build_model(self.config, self.special_tokens())

    def build_backbone(self) -> Backbone:
        from zoo.train.build import build_backbone

        return build_backbone(self.config, self.special_tokens().vocab_size)

    def load_model(self, step: int | None = None) -> ZooModel:
        path, _ = self._checked_state(step)
        model = self.build_model()
        tensors = self.snapshot(step).tensors
        self._check_shapes(model, tensors, path)
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{path}: weights do not fit the run's model (missing {missing[:3]}, "
                                  f"unexpected {unexpected[:3]})")
        return model

    def load_backbone(self, step: int | None = None) -> Backbone:
        path, _ = self._checked_state(step)
        backbone = self.build_backbone()
        tensors = self.snapshot(step).tensors
        state = {k.removeprefix("backbone."): v for k, v in tensors.items() if k.startswith("backbone.")}
        self._check_shapes(backbone, state, path, "backbone.")
        missing, unexpected = backbone.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{path}: backbone weights do not fit (missing {missing[:3]}, "
                                  f"unexpected {unexpected[:3]})")
        return backbone

    def _check_shapes(self, module: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path,
                      prefix: str = "") -> None:
        """One line naming the tensors whose shapes differ between the checkpoint and the model that
        ``config.json`` describes (an edited or replaced configuration)."""
        own = module.state_dict()
        wrong = [f"{prefix}{k} {tuple(tensors[k].shape)} in the checkpoint, {tuple(v.shape)} in the model"
                 for k, v in own.items() if k in tensors and tuple(tensors[k].shape) != tuple(v.shape)]
        if wrong:
            more = f" and {len(wrong) - 3} more" if len(wrong) > 3 else ""
            raise CheckpointError(f"{path}: the weights do not fit the model that {self.path / 'config.json'} "
                                  f"describes: {'; '.join(wrong[:3])}{more}; that file no longer matches the "
                                  f"run's checkpoints")

    # --- logs ---------------------------------------------------------------------------------
    def records(self, kind: str | None = None) -> list[Record]:
        return read_records(self.path / "metrics.jsonl", kind)


def open_run(path: str | Path) -> Run:
    return Run(Path(path))
