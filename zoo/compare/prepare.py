"""What a study does before it trains or benchmarks anything, shared by ``runner`` and ``planning``: settings
with absolute paths, the benchmark options checked, one tokenizer per backbone family, and the wall time
of each phase recorded."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from zoo.compare.study import (
    BenchOptions,
    Grid,
    StudyFile,
    StudySettings,
    base_config,
    shared_tokenizer_config,
)
from zoo.errors import ConfigError
from zoo.train.resolve import resolve

log = logging.getLogger(__name__)


def absolute_paths(settings: StudySettings) -> StudySettings:
    """Local corpus and benchmark paths made absolute, so run configs do not depend on the directory
    the command runs from (``hf:`` sources are left alone)."""
    data = settings.data
    if data and not data.startswith("hf:") and Path(data).expanduser().exists():
        data = str(Path(data).expanduser().resolve())
    bench = settings.bench
    if bench.data_dir and Path(bench.data_dir).expanduser().exists():
        bench = replace(bench, data_dir=str(Path(bench.data_dir).expanduser().resolve()))
    return replace(settings, data=data, bench=bench)


def phase_time(study: StudyFile, phase: str, seconds: float) -> None:
    """Add ``seconds`` to the wall time spent in ``phase`` (study.json "plan" / "actual"), all invocations."""
    actual = study.data.setdefault("plan", {}).setdefault("actual", {})
    actual[phase] = actual.get(phase, 0.0) + seconds
    study.save()


def check_tasks(options: BenchOptions) -> None:
    from zoo.benchmarks.minimal_pairs import is_pair_suite
    from zoo.benchmarks.recipe import recipes_for
    from zoo.benchmarks.tasks import resolve_tasks

    for suite in options.suites:
        opts = options.for_suite(suite)
        if is_pair_suite(suite):
            check_minimal_pairs(opts)
            continue
        _, specs = resolve_tasks(suite, opts.tasks)  # a typo fails before hours of training
        recipes_for([s.name for s in specs], None, opts.overrides)


def check_minimal_pairs(options: BenchOptions) -> None:
    given = [f for f, v in (("--tasks", options.tasks), ("--bench-set", options.overrides),
                            ("--bench-seeds", options.seeds != 1), ("--max-train-examples", options.max_train_examples))
             if v]
    if given:
        raise ConfigError(f"{', '.join(given)}: fine-tuning options do not apply to the zero-shot suite {options.suite}")


def ensure_tokenizers(settings: StudySettings, grid: Grid, out: Path, study: StudyFile) -> dict[str, Path]:
    """One tokenizer per backbone family, trained on the study corpus into ``out/tokenizers/<family>/``;
    this also builds (and caches) the token stores every run of the family reads."""
    from zoo.data import build_datasets

    paths: dict[str, Path] = {}
    recorded = study.data.setdefault("tokenizers", {})
    for backbone, family in grid.families().items():
        if family in paths:
            continue
        directory = out / "tokenizers" / family
        path = directory / "tokenizer.json"
        tok_cfg = shared_tokenizer_config(settings, grid, family)
        if not path.is_file() or family not in recorded:
            cfg = resolve({**base_config(settings, backbone), "objective": grid.cells[0].objective})
            log.info("tokenizer for the %s family (%s): building it and the token stores", family, backbone)
            bundle = build_datasets(cfg.data, tok_cfg, family, directory)
            recorded[family] = {"path": str(path), "backbone": backbone, **{k: bundle.stats.get(k) for k in (
                "tokenizer_kind", "tokenizer_hash", "vocab_size", "source", "documents", "train_documents",
                "valid_documents", "train_tokens", "valid_tokens")}}
            if tok_cfg.special_tokens:  # absent otherwise, as in studies written before objectives declared any
                recorded[family]["special_tokens"] = list(tok_cfg.special_tokens)
            study.save()
        else:
            _check_reserved(path, family, tok_cfg.special_tokens)
        paths[family] = path
    return paths


def _check_reserved(path: Path, family: str, needed: list[str]) -> None:
    """A resumed study keeps its tokenizer: refuse objectives that need special tokens it lacks."""
    from zoo.data import load_tokenizer, special_tokens

    have = special_tokens(load_tokenizer(path)).extra
    missing = [t for t in needed if t not in have]
    if missing:
        raise ConfigError(f"{path}: the study's {family} tokenizer lacks the special token(s) {', '.join(missing)} "
                          f"that objectives of this grid declare (it has: {', '.join(have) or 'none'}); a study keeps "
                          f"the tokenizer its runs were trained with: train these objectives in a new --out")


@contextlib.contextmanager
def entered(factory: Callable[..., contextlib.AbstractContextManager] | None, *args: Any):  # noqa: ANN202
    """``factory(*args)`` entered, or None without a factory."""
    if factory is None:
        yield None
        return
    with factory(*args) as value:
        yield value
