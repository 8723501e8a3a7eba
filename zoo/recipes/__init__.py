"""Run configs shipped with zoo: training recipes as TOML files beside this module.

``zoo train --config cpu-hour`` reads ``cpu-hour.toml`` from here (a path to a file of your own works as
well); the ``zoo compare`` presets take their recipe from the same files (``as_overrides``), so each
recipe is written once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from zoo.errors import ConfigError
from zoo.typed_config import load_toml, parse_value, toml_value

HERE = Path(__file__).parent


def names() -> list[str]:
    """The shipped recipes (``cpu-hour``)."""
    return sorted(p.stem for p in HERE.glob("*.toml"))


def locate(given: str) -> Path:
    """``--config``'s file: ``given`` itself when it is a file, else the shipped recipe of that name."""
    path = Path(given)
    if path.is_file() or path.suffix == ".toml" or len(path.parts) > 1:
        return path  # a path (load_toml says when it cannot be read)
    if given in names():
        return HERE / f"{given}.toml"
    raise ConfigError(f"--config {given}: no such file, and not a shipped recipe ({', '.join(names())}); give a "
                      "TOML file or one of those names")


def load(given: str) -> dict[str, Any]:
    """The run config of ``--config given`` (a TOML file or a shipped recipe's name), as a nested dict."""
    return load_toml(locate(given))


def as_overrides(data: Mapping[str, Any], keys: Iterable[str]) -> list[str]:
    """``key.path=value`` overrides (``--set``) for ``keys`` of a run config: a section name (``model``)
    gives each of its keys, in the file's order; a dotted key (``train.precision``) gives that one."""
    out: list[str] = []
    for key in keys:
        node: Any = data
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise KeyError(f"the recipe has no {key!r}")
            node = node[part]
        items = node.items() if isinstance(node, Mapping) else [("", node)]
        out.extend(f"{key}.{k}={_text(v)}" if k else f"{key}={_text(v)}" for k, v in items)
    return out


def _text(value: Any) -> str:
    """A value as ``--set`` reads it back (``zoo.typed_config.parse_value``): TOML, a string bare when unambiguous."""
    return value if isinstance(value, str) and parse_value(value) == value else toml_value(value)
