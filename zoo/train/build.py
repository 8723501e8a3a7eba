"""Build a run's parts from its config: backbone, objective, model. Shared by training and loading."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import registry
from zoo.batch import SpecialTokens
from zoo.data.config import TokenizerConfig
from zoo.data.tokenizer import padded_vocab_sizes
from zoo.errors import ConfigError
from zoo.models.base import Backbone, config_for_size
from zoo.objectives.base import Objective
from zoo.train.config import RunConfig, TrainerConfig
from zoo.zoo_model import ZooModel

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from zoo.data import DataBundle
    from zoo.train.distributed import DistInfo


def backbone_class(cfg: RunConfig) -> type[Backbone]:
    return registry.load("backbone", cfg.backbone)


def backbone_config(cfg: RunConfig, vocab_size: int) -> Any:
    """Size preset + ``[model]`` overrides; vocabulary from the tokenizer; positions cover seq_len."""
    cls = backbone_class(cfg)
    overrides = dict(cfg.model)
    if "vocab_size" in overrides and overrides["vocab_size"] != vocab_size and not (
            cfg.init.source and overrides["vocab_size"] in padded_vocab_sizes(vocab_size)):  # a padded table
        raise ConfigError(f"model.vocab_size = {overrides['vocab_size']} but the tokenizer has {vocab_size} "
                          f"tokens; set tokenizer.vocab_size (--vocab-size) instead")
    overrides.setdefault("vocab_size", vocab_size)
    try:
        config = config_for_size(cls.Config, cfg.size, **overrides)
    except ValueError as exc:
        raise ConfigError(f"[model]: {exc}") from exc
    needed = cfg.train.seq_len
    if hasattr(config, "max_positions") and config.max_positions < needed:
        if "max_positions" in cfg.model:
            raise ConfigError(f"model.max_positions = {config.max_positions} is shorter than "
                              f"train.seq_len = {needed}")
        config.max_positions = needed
    return config


def build_backbone(cfg: RunConfig, vocab_size: int) -> Backbone:
    return backbone_class(cfg)(backbone_config(cfg, vocab_size))


def check_run_compatible(cfg: RunConfig) -> None:
    """Fail before anything is allocated if the objective cannot train the backbone."""
    from zoo.objectives.compose import check_compatible

    check_compatible(cfg.objective, backbone_class(cfg))


def tokenizer_config(cfg: RunConfig) -> TokenizerConfig:
    """``cfg.tokenizer`` with the special tokens the objective declares added to ``special_tokens``."""
    from zoo.objectives.compose import declared_special_tokens

    declared = declared_special_tokens(cfg.objective, cfg.objectives)
    extra = [*cfg.tokenizer.special_tokens, *(t for t in declared if t not in cfg.tokenizer.special_tokens)]
    return replace(cfg.tokenizer, special_tokens=extra)


def accumulation(train: TrainerConfig, world: int) -> int:
    """Micro-batches per optimiser step on each process: ``train.grad_accum``, else enough to reach
    ``train.batch_tokens``."""
    if train.grad_accum:
        return train.grad_accum
    if not train.batch_tokens:
        return 1
    return max(1, math.ceil(train.batch_tokens / (train.batch_size * train.seq_len * world)))


def build_data(cfg: RunConfig, family: str, dist: DistInfo, tokenizer: Tokenizer | None, dry_run: bool) -> DataBundle:
    """The run's tokenizer and token stores: rank 0 builds them in the run directory (a dry run only
    reads a tokenizer already there), the other ranks then load what it built."""
    from zoo.data import build_datasets
    from zoo.train import distributed

    run_dir, tok_cfg = Path(cfg.run_dir), tokenizer_config(cfg)
    data = None
    if dry_run:
        existing = (run_dir / "tokenizer.json").exists()
        data = build_datasets(cfg.data, tok_cfg, family, run_dir if existing else None, tokenizer)
    elif dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        data = build_datasets(cfg.data, tok_cfg, family, run_dir, tokenizer)
    distributed.barrier(dist)
    if data is None:  # tokenizer and shard cache now exist: loading is instant
        data = build_datasets(cfg.data, tok_cfg, family, run_dir, tokenizer)
    return data


def build_run_objective(cfg: RunConfig, tokens: SpecialTokens, backbone: Backbone) -> Objective:
    from zoo.objectives.compose import build_objective as build

    return build(cfg.objective, cfg.objectives, tokens, backbone.spec)


def build_model(cfg: RunConfig, tokens: SpecialTokens) -> ZooModel:
    backbone = build_backbone(cfg, tokens.vocab_size)
    return ZooModel(backbone, build_run_objective(cfg, tokens, backbone))
