"""What ``zoo list`` shows: every registered plugin, its origin, and objective x backbone compatibility."""

from __future__ import annotations

from dataclasses import dataclass

from zoo import registry
from zoo.errors import PluginError
from zoo.objectives import compat


@dataclass
class Listing:
    plugins: dict[str, list[tuple[str, str, str]]]  # kind -> (name, origin, note)
    matrix: dict[str, dict[str, str]]  # objective -> backbone -> "yes" | reason it is not


def compatibility(objective_name: str, backbone_name: str) -> str | None:
    """Why ``objective_name`` cannot train ``backbone_name`` (None if it can). Loads both plugins."""
    objective = registry.load("objective", objective_name)
    backbone = registry.load("backbone", backbone_name)
    return compat.incompatibility([(objective_name, objective)], backbone)


def describe(kind: str, name: str) -> str:
    """What ``zoo list`` notes about a plugin: an objective's attention, head and extra special tokens,
    a backbone's capabilities; "" when it cannot be loaded (the matrix shows why)."""
    try:
        cls = registry.load(kind, name)
        if kind == "backbone":
            return "capabilities: " + ", ".join(sorted(cls.capabilities))
        if kind == "suite":
            return f"zero-shot minimal pairs ({cls.language}), {cls.pattern} files"
        if kind == "scorer":
            return f"{cls.kind}: {cls.description}"
        if kind != "objective":
            return ""
        backbones = [registry.load("backbone", b) for b in registry.names("backbone")]
    except PluginError:
        return ""
    components = getattr(cls, "components", ())
    if components:  # a named mixture
        tokens = cls.declared_special_tokens(cls.Config())
        return (f"mixture of {', '.join(c.label for c in components)}"
                + (f", special tokens {' '.join(tokens)}" if tokens else ""))
    # an encoder-decoder's layout is always its encoder's; its column of the matrix says what fits
    layouts = {b.name: cls.layout_for(b.family) or "the rows'" for b in backbones if b.family != "encoder-decoder"}
    if len(set(layouts.values())) <= 1:
        attention = f"{next(iter(layouts.values()), 'the rows')} attention"
    else:
        attention = "; ".join(f"{v} attention on {b}" for b, v in layouts.items())
    parts = [attention]
    if cls.head_key:
        parts.append(f"{cls.head_key} head")
    if cls.special_tokens:
        parts.append(f"special tokens {' '.join(cls.special_tokens)}")
    if cls.encoder_decoder and any(b.family == "encoder-decoder" for b in backbones):
        parts.append("encoder-decoder form")
    return ", ".join(parts)


def listing() -> Listing:
    plugins: dict[str, list[tuple[str, str, str]]] = {}
    for kind in registry.GROUPS:
        rows = [(name, info.origin, describe(kind, name)) for name, info in registry.find(kind).items()]
        for name, infos in registry.conflicts(kind).items():
            rows.append((name, ", ".join(i.ref for i in infos), "conflict: registered twice"))
        plugins[kind] = sorted(rows)
    matrix: dict[str, dict[str, str]] = {}
    backbones = registry.names("backbone")
    for obj in registry.names("objective"):
        row = matrix.setdefault(obj, {})
        for bb in backbones:
            try:
                reason = compatibility(obj, bb)
                row[bb] = "yes" if reason is None else f"no: {reason}"
            except PluginError as exc:
                row[bb] = f"error: {exc}"
    return Listing(plugins, matrix)
