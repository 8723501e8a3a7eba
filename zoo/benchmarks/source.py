"""Where a benchmarked model comes from: a ``zoo train`` run, an exported Hugging Face directory,
a backbone object, or a random initialisation of any of these (the from-scratch baseline).

A ``ModelSource`` bundles the tokenizer, its special-token ids, a loader for the backbone and a
stable id of the weights (the result cache is keyed by it). Tokenizer and weights are checked
against each other before anything is fine-tuned.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from zoo.batch import SpecialTokens
from zoo.data.tokenizer import check_tokenizer_fits, special_tokens, tokenizer_hash
from zoo.errors import CheckpointError, ConfigError
from zoo.interop import HFDirectory, open_hf
from zoo.models.base import Backbone
from zoo.typed_config import to_dict

log = logging.getLogger(__name__)


def state_hash(module: torch.nn.Module) -> str:
    """sha256 over parameter names, shapes, dtypes and bytes (a stable id for in-memory weights)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}\n".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@dataclass
class ModelSource:
    """Everything fine-tuning needs about one model, and where its results are written."""

    name: str
    backbone_name: str
    tokenizer: Tokenizer
    special: SpecialTokens
    checkpoint_id: str
    tokenizer_hash: str
    loader: Callable[[int], Backbone]  # seed -> backbone (the seed matters only from scratch)
    path: Path | None = None  # results (bench.json, bench.md, bench-cache/) go here; None: not written
    objective: str | None = None
    from_scratch: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    implied_attention: str | None = None  # fine-tuning attention when no objective says (a baseline's)
    hf: HFDirectory | None = None  # a transformers directory: read through its backbone's adapter

    def backbone(self, seed: int = 0) -> Backbone:
        return self.loader(seed)

    def attention(self, requested: str, family: str) -> str:
        """The fine-tuning attention: ``requested`` unless "auto", then what the run's objective implies
        (``zoo.objectives.mixture.finetune_attention``); the family's default for a model without a run."""
        if requested != "auto":
            return requested
        from zoo.objectives.mixture import finetune_attention

        if self.implied_attention is not None:
            return self.implied_attention
        return finetune_attention(self.objective, family)

    def scratch(self) -> ModelSource:
        """The same architecture, randomly initialised per seed: the no-pretraining baseline."""
        template = self.loader(0)
        cls, config = type(template), copy.deepcopy(template.config)
        config_id = hashlib.sha256(json.dumps([self.backbone_name, to_dict(config)], sort_keys=True,
                                              default=str).encode()).hexdigest()

        def init(seed: int) -> Backbone:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return cls(copy.deepcopy(config))

        return replace(self, name=f"{self.name} (from scratch)", checkpoint_id=f"scratch-{config_id[:24]}",
                       loader=init, from_scratch=True, objective=None,
                       implied_attention=self.attention("auto", template.family))  # fine-tuned as its model


def from_backbone(backbone: Backbone, tokenizer: Tokenizer, special: SpecialTokens | None = None,
                  name: str = "model", path: str | Path | None = None, objective: str | None = None) -> ModelSource:
    """A source for a backbone object already in memory (checked against the tokenizer)."""
    special = special or special_tokens(tokenizer)
    thash = tokenizer_hash(tokenizer)
    check_tokenizer_fits(tokenizer.get_vocab_size(with_added_tokens=True), backbone.spec.vocab_size,
                    "the tokenizer", f"backbone {name}")
    frozen = copy.deepcopy(backbone).cpu()
    return ModelSource(name=name, backbone_name=backbone.name, tokenizer=tokenizer, special=special,
                       checkpoint_id=state_hash(frozen), tokenizer_hash=thash, loader=lambda seed: frozen,
                       path=Path(path) if path is not None else None, objective=objective)


def open_source(path: str | Path, step: int | None = None) -> ModelSource:
    """A run directory written by ``zoo train``, or an exported Hugging Face directory
    (``config.json`` of a model_type some backbone declares, ``model.safetensors``, ``tokenizer.json``)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"{p}: no such run or model directory")
    if (p / "config.json").is_file() and (p / "model.safetensors").is_file():
        if step is not None:
            raise ConfigError(f"--step {step}: {p} is an exported Hugging Face directory with one set of "
                              f"weights; --step selects a checkpoint of a run directory")
        return _open_hf(p)
    return _open_run(p, step)


def _open_run(p: Path, step: int | None) -> ModelSource:
    try:
        from zoo.runs import open_run
    except ImportError as exc:
        raise CheckpointError(f"{p}: not an exported Hugging Face directory (config.json + model.safetensors), "
                              f"and this installation cannot open run directories ({exc})") from exc
    run = open_run(p)
    tok = run.tokenizer()
    special = run.special_tokens()
    cache: dict[str, Backbone] = {}

    def load(seed: int) -> Backbone:
        if "bb" not in cache:
            bb = run.load_backbone(step)
            check_tokenizer_fits(tok.get_vocab_size(with_added_tokens=True), bb.spec.vocab_size,
                            f"{p}'s tokenizer", f"its checkpoint{'' if step is None else f' at step {step}'}")
            cache["bb"] = bb
        return cache["bb"]

    source = ModelSource(name=p.name, backbone_name=run.backbone_name, tokenizer=tok, special=special,
                         checkpoint_id=run.checkpoint_id(step), tokenizer_hash=run.tokenizer_hash(), loader=load,
                         path=p, objective=run.objective_name)
    load(0)  # refuse a mismatched tokenizer before any fine-tuning
    return source


def _open_hf(p: Path) -> ModelSource:
    hf = open_hf(p)
    tok = hf.tokenizer()
    check_tokenizer_fits(tok.get_vocab_size(with_added_tokens=True), hf.config.vocab_size, str(p / "tokenizer.json"),
                         f"{p / 'config.json'} (vocab_size)")
    digest = hashlib.sha256()
    for f in (p / "config.json", hf.weights):
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    cache: dict[str, Backbone] = {}

    def load(seed: int) -> Backbone:
        if "bb" not in cache:
            cache["bb"] = hf.load_backbone()
        return cache["bb"]

    source = ModelSource(name=p.name, backbone_name=hf.backbone, tokenizer=tok, special=special_tokens(tok),
                         checkpoint_id=f"hf-{digest.hexdigest()}", tokenizer_hash=tokenizer_hash(tok),
                         loader=load, path=p, info={"format": "huggingface", "model_type": hf.raw["model_type"]},
                         hf=hf)
    load(0)  # damaged or mismatched weights fail here, before any fine-tuning
    return source
