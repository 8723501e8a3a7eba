"""What a directory is: a zoo run, a study, an export, empty, or something else.

A run and a study carry an identity marker (``.zoo-run``, ``.zoo-study``: JSON with ``kind`` and
``format``) written first, atomically, by the process holding the directory's lock; an export is
marked by its ``zoo_export.json`` (provenance, with ``format``), and is installed as a whole.
Directories written by versions that had no marker are recognised by their complete layout
(``legacy_run``, ``legacy_study``) and marked by the next writer that locks them. Nothing else
that is non-empty is ever written into.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo import fileio
from zoo.errors import ConfigError

MARKER_FORMAT = 1
RUN_MARKER = ".zoo-run"
STUDY_MARKER = ".zoo-study"
EXPORT_FILE = "zoo_export.json"
_MARKERS = {"run": RUN_MARKER, "study": STUDY_MARKER}

# Names a run directory of an earlier version may hold (besides its config.json).
_RUN_FILES = {"config.json", "config.toml", "run.json", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "vocab.txt", "tokenizer-origin.json", "metrics.jsonl", "latest",
              "tensorboard", "bench.json", "bench.md", "bench-cache", ".bench.lock", ".lock", ".latest.tmp"}
_RUN_PATTERNS = re.compile(r"^(step-\d{6,}|abandoned-step-\d{6,}-\d+(\.\d+)?|\.tmp-step-\d{6,}-\d+)$")
# What a study directory of an earlier version may hold (besides its study.json).
_STUDY_FILES = {"study.json", "results.json", "report.md", "runs", "tokenizers", "baselines", "curves.png",
                "scores.png", "pairs.png", "compute.png", ".lock"}


@dataclass
class Found:
    """What ``identify`` found: ``kind`` is one of empty, run, study, export, legacy-run, legacy-study,
    other (``what`` says it in words, for an error message) or files (``what`` lists them)."""

    kind: str
    what: str
    info: dict[str, Any] | None = None


def _entries(directory: Path) -> list[str]:
    return sorted(n for n in (p.name for p in directory.iterdir()) if not fileio.is_temp(n))


def refuse_dangling_link(path: Path, option: str = "--out") -> None:
    """Refuse ``path`` when it is a symbolic link to nothing (following it would create its target, or fail
    with "File exists"), naming the link and its target."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise ConfigError(f"{option} {path} is a symbolic link to {os.readlink(path)}, which does not exist; "
                          f"create that directory, or remove the link or choose another {option}")


def read_marker(directory: Path, kind: str) -> dict[str, Any] | None:
    """The marker of ``kind`` in ``directory`` (None when absent); an unreadable one or one of a newer
    format is an error naming it."""
    path = Path(directory) / _MARKERS[kind]
    if not path.exists():
        return None
    data = fileio.read_json(path)
    if not isinstance(data, dict) or data.get("kind") != kind or not isinstance(data.get("format"), int):
        raise ConfigError(f"{path}: not a zoo {kind} marker (expected JSON with kind {kind!r} and a format number)")
    if data["format"] > MARKER_FORMAT:
        raise ConfigError(f"{path}: a {kind} of format {data['format']}, written by a newer objective-zoo; this "
                          f"version reads format {MARKER_FORMAT}")
    return data


def write_marker(directory: Path, kind: str) -> None:
    """Mark ``directory`` as a zoo ``kind`` (call it holding the directory's lock)."""
    from zoo import __version__

    fileio.write_json(Path(directory) / _MARKERS[kind],
                      {"kind": kind, "format": MARKER_FORMAT, "zoo_version": __version__}, if_changed=True)


def _describe_config(data: Any) -> str:
    if isinstance(data, dict) and ("model_type" in data or "architectures" in data):
        kind = data.get("model_type") or ", ".join(data.get("architectures") or [])
        return f"a Hugging Face model ({kind}; config.json has no zoo run configuration)"
    return "a config.json that is not a zoo run configuration"


def is_run_config(data: Any) -> bool:
    return isinstance(data, dict) and {"objective", "backbone", "train"} <= set(data)


def legacy_run(directory: Path, entries: list[str]) -> bool:
    """A run written before markers: a zoo run ``config.json``, a ``run.json`` of the zoo's format if
    any, and nothing a run does not write."""
    if not is_run_config(fileio.read_json(directory / "config.json")):
        return False
    if "run.json" in entries:
        info = fileio.read_json(directory / "run.json")
        if not (isinstance(info, dict) and "format" in info and "zoo_version" in info):
            return False
    return all(n in _RUN_FILES or _RUN_PATTERNS.match(n) for n in entries)


def legacy_study(directory: Path, entries: list[str]) -> bool:
    """A study or comparison written before markers: a ``study.json`` of the zoo's format (settings
    and grid), or a ``results.json`` that is a comparison result beside nothing a comparison does not
    write (its per-suite figure folders aside)."""
    study = fileio.read_json(directory / "study.json") if "study.json" in entries else None
    if isinstance(study, dict) and {"format", "settings", "grid"} <= set(study):
        return True
    results = fileio.read_json(directory / "results.json") if "results.json" in entries else None
    if not (isinstance(results, dict) and {"format", "mode", "runs", "groups"} <= set(results)):
        return False
    return all(n in _STUDY_FILES or (directory / n).is_dir() for n in entries)


def _shown(names: list[str]) -> str:
    return ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")


def identify(directory: Path) -> Found:
    """What ``directory`` (an existing directory) is."""
    directory = Path(directory)
    entries = [n for n in _entries(directory) if n != ".lock"]
    if not entries:
        return Found("empty", "nothing")
    for kind in ("run", "study"):
        marker = read_marker(directory, kind)
        if marker is not None:
            return Found(kind, f"a zoo {kind}", marker)
    export = fileio.read_json(directory / EXPORT_FILE) if EXPORT_FILE in entries else None
    if isinstance(export, dict) and "format" in export and "checkpoint_sha256" in export:
        config = fileio.read_json(directory / "config.json")
        model = config.get("model_type", "?") if isinstance(config, dict) else "?"
        return Found("export", f"a Hugging Face model ({model}) exported by zoo export from {export.get('run', '?')} "
                               f"step {export.get('step', '?')}", export)
    if legacy_run(directory, entries):
        return Found("legacy-run", "a zoo run (written by an earlier version)")
    if legacy_study(directory, entries):
        return Found("legacy-study", "a zoo study (written by an earlier version)")
    if "config.json" in entries:
        config = fileio.read_json(directory / "config.json")
        if is_run_config(config):
            extra = [n for n in entries if not (n in _RUN_FILES or _RUN_PATTERNS.match(n))]
            return Found("other", f"a zoo run configuration without the run marker, beside files a run does not "
                                  f"write ({_shown(extra) or 'run.json of another program'})")
        return Found("other", _describe_config(config))
    return Found("files", _shown(entries))
