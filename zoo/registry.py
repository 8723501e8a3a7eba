"""One registry for objectives, backbones, tasks, zero-shot suites and scorers, built on Python entry points.

*Finding* reads entry-point metadata only (nothing is imported); *loading* imports just the
plugin that was named. Built-ins are declared in objective-zoo's own ``pyproject.toml`` exactly
like third-party plugins, so both go through this module.
"""

from __future__ import annotations

import difflib
import importlib.metadata as md
import logging
import os
from dataclasses import dataclass
from typing import Any

from zoo.errors import PluginError

log = logging.getLogger(__name__)

GROUPS: dict[str, str] = {
    "objective": "zoo.objectives",
    "backbone": "zoo.backbones",
    "task": "zoo.tasks",
    "suite": "zoo.suites",
    "scorer": "zoo.scorers",
}
BUILTIN_DISTRIBUTION = "objective-zoo"
DISABLE_ENV = "ZOO_DISABLE_PLUGIN_AUTOLOAD"


@dataclass(frozen=True)
class PluginInfo:
    """What the metadata says about one registered plugin (no import needed)."""

    kind: str
    name: str
    value: str  # "module:attribute"
    distribution: str
    version: str

    @property
    def builtin(self) -> bool:
        return _normalise(self.distribution) == _normalise(BUILTIN_DISTRIBUTION)

    @property
    def origin(self) -> str:
        return "built-in" if self.builtin else f"{self.distribution} {self.version}"

    @property
    def ref(self) -> str:
        """``distribution[entry-point]``, the way errors name a plugin."""
        return f"{self.distribution}[{self.name}]"


def _normalise(dist: str) -> str:
    return dist.lower().replace("_", "-").replace(".", "-")


_found: dict[tuple[str, bool], tuple[dict[str, PluginInfo], dict[str, list[PluginInfo]]]] = {}
_loaded: dict[tuple[str, str, str], Any] = {}


def clear_cache() -> None:
    """Forget what was found and loaded (tests install fake distributions at run time)."""
    _found.clear()
    _loaded.clear()


def _group(kind: str) -> str:
    if kind not in GROUPS:
        raise ValueError(f"unknown plugin kind {kind!r}; expected one of {sorted(GROUPS)}")
    return GROUPS[kind]


def _scan(kind: str) -> tuple[dict[str, PluginInfo], dict[str, list[PluginInfo]]]:
    autoload = os.environ.get(DISABLE_ENV, "") in ("", "0")
    key = (kind, autoload)
    if key in _found:
        return _found[key]
    by_name: dict[str, list[PluginInfo]] = {}
    for ep in md.entry_points(group=_group(kind)):
        dist = ep.dist
        info = PluginInfo(
            kind=kind,
            name=ep.name,
            value=ep.value,
            distribution=dist.metadata["Name"] if dist is not None else "<unknown>",
            version=dist.version if dist is not None else "?",
        )
        if not autoload and not info.builtin:
            continue
        same = by_name.setdefault(ep.name, [])
        # The same distribution can be visible twice (e.g. an editable install plus a build dir).
        if not any(_normalise(o.distribution) == _normalise(info.distribution) for o in same):
            same.append(info)
    unique = {n: infos[0] for n, infos in by_name.items() if len(infos) == 1}
    conflicts = {n: sorted(infos, key=lambda i: _normalise(i.distribution))
                 for n, infos in by_name.items() if len(infos) > 1}
    _found[key] = (unique, conflicts)
    return unique, conflicts


def find(kind: str) -> dict[str, PluginInfo]:
    """Every usable plugin of ``kind`` by name, from metadata only. Conflicting names are left out."""
    return dict(sorted(_scan(kind)[0].items()))


def conflicts(kind: str) -> dict[str, list[PluginInfo]]:
    """Names registered by more than one distribution."""
    return dict(sorted(_scan(kind)[1].items()))


def names(kind: str) -> list[str]:
    return sorted(find(kind))


def info(kind: str, name: str) -> PluginInfo:
    """Metadata of one plugin; a clear error for unknown or conflicting names."""
    unique, clashing = _scan(kind)
    if name in clashing:
        dists = " and ".join(i.ref for i in clashing[name])
        raise PluginError(
            f"{kind} {name!r} is registered by more than one distribution: {dists}; "
            f"uninstall one of them"
        )
    if name not in unique:
        known = sorted(unique)
        msg = f"unknown {kind} {name!r}; known: {', '.join(known) or '(none)'}"
        lower = {k.lower(): k for k in known}
        close = [lower[name.lower()]] if name.lower() in lower else difflib.get_close_matches(name, known, n=1)
        if close:
            msg += f". Did you mean {close[0]!r}?"
        raise PluginError(msg)
    return unique[name]


# What a plugin of each kind must be: (the base, as "module:qualname", resolved when a plugin is loaded, so
# the registry imports none of the modules that use it; whether it is a subclass (True) or an instance).
BASES: dict[str, tuple[str, bool]] = {
    "objective": ("zoo.objectives.base:Objective", True),
    "backbone": ("zoo.models.base:Backbone", True),
    "task": ("zoo.benchmarks.tasks:TaskSpec", False),
    "suite": ("zoo.benchmarks.minimal_pairs:PairSuite", False),
    "scorer": ("zoo.benchmarks.lm_scoring:Reading", False),
}


def _expected_type(kind: str) -> tuple[type, bool]:
    """The base a plugin must derive from, and whether it must be a class (True) or an instance."""
    import importlib

    path, want_class = BASES[kind]
    module, _, qualname = path.partition(":")
    return getattr(importlib.import_module(module), qualname), want_class


def load(kind: str, name: str) -> Any:
    """Import and return the plugin registered as ``name`` (a class; a TaskSpec, PairSuite or Reading
    instance for tasks, suites and scorers)."""
    plugin = info(kind, name)
    key = (kind, name, plugin.distribution)
    if key in _loaded:
        return _loaded[key]
    module_name, _, attr = plugin.value.partition(":")
    try:
        module = __import__(module_name, fromlist=["_"])
        obj: Any = module
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
    except Exception as exc:  # any failure inside third-party code
        raise PluginError(
            f"{kind} plugin {plugin.ref} ({plugin.value}) failed to load: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    base, want_class = _expected_type(kind)
    ok = isinstance(obj, type) and issubclass(obj, base) if want_class else isinstance(obj, base)
    if not ok:
        what = f"a subclass of {base.__module__}.{base.__qualname__}" if want_class else (
            f"an instance of {base.__module__}.{base.__qualname__}"
        )
        raise PluginError(f"{kind} plugin {plugin.ref} ({plugin.value}) must be {what}, got {obj!r}")
    if want_class and getattr(obj, "name", None) not in (None, name):
        log.debug("%s registers %s under the entry-point name %r", plugin.ref, obj, name)
    _loaded[key] = obj
    log.debug("loaded %s plugin %s", kind, plugin.ref)
    return obj
