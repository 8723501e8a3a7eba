"""From raw settings to a checked ``RunConfig`` (``resolve``), and what may differ when a run resumes.

``--init`` and ``--branch-from`` complete the settings from their source first (``zoo.train.init``,
``zoo.train.branch``); then every section is checked, the backbone's and the objectives' against the
plugins' own Config dataclasses, before anything is allocated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo import fileio, markers
from zoo.errors import CheckpointError, ConfigError
from zoo.train.config import RunConfig
from zoo.typed_config import from_dict, to_dict


def resolve(data: dict[str, Any], read_init: bool = True) -> RunConfig:
    """Typed, fully checked run config (plugin sections are checked against the plugins' Configs).
    With ``init.source`` the backbone, its sizes and the tokenizer come from that checkpoint."""
    if read_init and isinstance(data.get("branch"), dict) and data["branch"].get("source"):
        data = branch_settings(data)
    located = None
    if read_init and isinstance(data.get("init"), dict) and data["init"].get("source"):
        from zoo.train.init import init_settings

        data, located = init_settings(data)
    cfg = from_dict(RunConfig, data)
    cfg.located_init = located  # the trainer loads from it: --init is located once
    from zoo import registry
    from zoo.models.base import config_for_size

    backbone_cls = registry.load("backbone", cfg.backbone)
    try:
        config_for_size(backbone_cls.Config, cfg.size, **cfg.model)
    except ValueError as exc:
        raise ConfigError(f"[model]: {exc}") from exc
    from_dict(backbone_cls.Config, cfg.model, path="model")
    _check_objectives(cfg)
    return cfg


# What may differ between a run's saved configuration and a command resuming it: none of it changes
# what is computed (docs/training.md lists them).
RESUMABLE_CHANGES = ("out", "train.budget", "train.log_every", "train.eval_every", "train.checkpoint_every",
                     "train.checkpoint_minutes", "train.keep_last", "train.tensorboard", "train.report_to", "train.prefetch",
                     "train.dist_timeout_s", "data.cache_dir", "train.branch_budgets")


def _differences(saved: dict[str, Any], cfg: RunConfig, allowed: tuple[str, ...]) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (saved value, ``cfg`` value) where they differ, except ``allowed`` keys."""
    try:
        old: Any = to_dict(resolve(saved, read_init=False))  # a saved run never re-reads its --init
    except ConfigError:  # a key this version no longer knows: compare as written
        old = saved
    out: dict[str, tuple[Any, Any]] = {}

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in set(a) | set(b):
                walk(a.get(k), b.get(k), f"{path}.{k}" if path else k)
        elif a != b:
            out[path] = (a, b)

    walk(old, to_dict(cfg), "")
    return {k: v for k, v in sorted(out.items()) if k not in allowed}


def config_diffs(saved: dict[str, Any], cfg: RunConfig, allowed: tuple[str, ...] = RESUMABLE_CHANGES) -> list[str]:
    """Dotted keys where a run's saved ``config.json`` differs from ``cfg``, except ``allowed`` ones.

    The saved configuration is resolved first, so a setting it lacks (one added by a later version)
    takes its default, which reproduces what the older version did: upgrading does not orphan runs.
    """
    return list(_differences(saved, cfg, allowed))


def config_changes(saved: dict[str, Any], cfg: RunConfig, allowed: tuple[str, ...] = RESUMABLE_CHANGES) -> list[str]:
    """``config_diffs`` with the values: ``"train.seed 0 -> 1"`` (saved value first)."""
    return [f"{k} {a!r} -> {b!r}" for k, (a, b) in _differences(saved, cfg, allowed).items()]


def _check_objectives(cfg: RunConfig) -> None:
    """Each ``[objectives.NAME]`` names a part of ``cfg.objective`` and holds only its Config's keys."""
    parts = cfg.objective.names
    unknown = sorted(set(cfg.objectives) - set(parts))
    if unknown:
        raise ConfigError(f"[objectives.{unknown[0]}] configures an objective that is not part of "
                          f"{cfg.objective.text!r}; parts: {', '.join(parts)}")
    from zoo import registry

    for name in parts:
        if name in cfg.objectives:
            from_dict(registry.load("objective", name).Config, cfg.objectives[name], path=f"objectives.{name}")


# --- --branch-from: the trunk's settings under the branch's own (zoo.train.branch) -----------------

def saved_trunk_config(trunk: Path) -> dict[str, Any]:
    """The saved configuration of the run ``--branch-from`` names, checked to be a zoo run's."""
    if not trunk.is_dir():
        raise ConfigError(f"--branch-from {trunk}: no such run directory")
    found = markers.identify(trunk)
    if found.kind not in ("run", "legacy-run"):
        raise ConfigError(f"--branch-from {trunk}: not a zoo run directory (it holds {found.what})")
    try:
        saved = fileio.read_json(trunk / "config.json")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"--branch-from {trunk}: {trunk / 'config.json'} unreadable ({exc})") from exc
    if not isinstance(saved, dict) or not markers.is_run_config(saved):
        raise CheckpointError(f"--branch-from {trunk}: {trunk / 'config.json'} is not a zoo run configuration")
    return saved


def branch_settings(data: dict[str, Any]) -> dict[str, Any]:
    """The settings of a branch: the trunk's saved configuration under those given (``data``), which
    must name a budget; the trunk's ``out`` and ``branch_budgets`` are not inherited."""
    from zoo.typed_config import merge

    trunk = Path(data["branch"]["source"])
    if not (isinstance(data.get("train"), dict) and data["train"].get("budget")):
        raise ConfigError(f"--branch-from {trunk}: give the branch's own --budget (the model's total budget, "
                          f"the trunk's steps up to the branch point included)")
    saved = saved_trunk_config(trunk)
    base = {k: v for k, v in saved.items() if k not in ("out", "branch")}
    if isinstance(base.get("train"), dict):
        base["train"] = {k: v for k, v in base["train"].items() if k != "branch_budgets"}
    return merge(base, data)
