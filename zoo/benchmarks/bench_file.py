"""A model directory's benchmark files: ``bench.json`` (every suite's results, merged), ``bench.md`` (the same
as Markdown) and the result cache under ``bench-cache/``. Each suite entry's ``kind`` says which result type
reads it back (``KINDS``), so this module writes either without knowing how they were computed."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo import fileio
from zoo.benchmarks.accumulate import merge_suite, recipe_label
from zoo.benchmarks.finetune_results import bench_result_from_dict
from zoo.benchmarks.pairs_results import KIND as PAIRS_KIND
from zoo.benchmarks.pairs_results import pairs_result_from_dict
from zoo.benchmarks.tasks import get_task, task_names
from zoo.train.lock import BenchLock

log = logging.getLogger(__name__)

CACHE_DIR = "bench-cache"
CACHE_VERSION = 1


def hash_key(parts: dict[str, Any]) -> str:
    """sha256 of what a cached result depends on (JSON, sorted keys)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def write_result_json(path: Path, data: Any) -> None:
    """Write atomically: a temporary file renamed over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fileio.write_json(path, data, indent=2, ensure_ascii=False)


def merge_suite_report(directory: Path, suite: str, entry: dict[str, Any]) -> list[Path]:
    """Merge ``entry`` into ``directory/bench.json`` under ``suite`` (other suites kept; fine-tuning results
    accumulate per task and recipe, see ``accumulate.merge_suite``) and rewrite
    ``bench.md`` from all of them. Returns the files written (none when the directory is read-only)."""
    with BenchLock(directory):  # two benchmarks of one model merge one after the other
        return _merge_suite_report(directory, suite, entry)


def _merge_suite_report(directory: Path, suite: str, entry: dict[str, Any]) -> list[Path]:
    target = directory / "bench.json"
    suites: dict[str, Any] = {}
    if target.is_file():
        try:
            suites = json.loads(target.read_text(encoding="utf-8")).get("suites", {})
        except (OSError, json.JSONDecodeError, AttributeError):
            log.warning("%s is unreadable; rewriting it", target)
    previous = suites.get(suite)
    suites[suite] = suite_kind(entry).merge(previous if isinstance(previous, dict) else {}, entry, suite)
    try:
        write_result_json(target, {"suites": suites})
        md = directory / "bench.md"
        fileio.write_text(md, "# Benchmark results\n\n" + "\n".join(_markdown_of(d) for d in suites.values()))
    except OSError as exc:
        log.warning("cannot write results into %s (%s)", directory, exc)
        return []
    return [target, md]


def _markdown_of(suite_dict: dict[str, Any]) -> str:
    try:
        return suite_kind(suite_dict).markdown(suite_dict)
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("bench.json: skipping an unreadable suite entry in bench.md (%s)", exc)
        return ""


# --- the kinds of suite result ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SuiteKind:
    """How a ``bench.json`` suite entry of one ``kind`` is merged with the one before it and rendered."""

    merge: Callable[[dict[str, Any], dict[str, Any], str], dict[str, Any]]  # (previous, entry, suite) -> merged
    markdown: Callable[[dict[str, Any]], str]


def _finetune_markdown(suite_dict: dict[str, Any]) -> str:
    text = bench_result_from_dict(suite_dict).markdown()
    others = [(m["name"], t) for m in suite_dict["models"] for t in m.get("other_recipes", [])]
    if others:
        text += "\nEarlier results with other recipes (kept, not in the table):\n\n" + "".join(
            f"- {name}, {get_task(t['task']).title}: {100 * t['score']:.1f} with {recipe_label(t['recipe'])}\n"
            for name, t in others)
    return text


FINETUNE = SuiteKind(lambda previous, entry, suite: merge_suite(previous, entry, task_names(suite)),
                     _finetune_markdown)  # results accumulate per task and recipe
# zero-shot suites have no recipes: the newest scoring replaces the last
PAIRS = SuiteKind(lambda previous, entry, suite: entry, lambda d: pairs_result_from_dict(d).markdown())
KINDS = {PAIRS_KIND: PAIRS}


def suite_kind(entry: dict[str, Any]) -> SuiteKind:
    """The kind of a suite entry: its ``kind`` field (fine-tuning entries have none)."""
    return KINDS.get(str(entry.get("kind")), FINETUNE)
