"""Typed configuration: dataclasses <- dicts <- TOML files and ``--set key.path=value`` overrides.

Config flows one way: CLI flags / TOML / --set build a plain dict, ``from_dict`` turns it into
the typed dataclass tree (checking every key and value), and components receive their own
dataclass. Errors name the full key path and what was allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from zoo.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")
_MISSING = object()


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def from_dict(cls: type[T], data: Mapping[str, Any] | None, path: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad values raise ``ConfigError``."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(data) - set(names))
    if unknown:
        where = f"in [{path}]" if path else "at the top level"
        raise ConfigError(f"unknown config key {_join(path, unknown[0])!r} {where}; allowed keys: {', '.join(names)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for k, v in data.items():
        key_path = _join(path, k)
        allowed = fields[k].metadata.get("range")
        values[k] = coerce(v, hints[k], key_path, fields[k].metadata.get("finite", True), allowed)
        if allowed is not None:
            allowed.check(values[k], key_path)
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid config {path or cls.__name__}: {exc}") from exc


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a numeric config field allows (each item of a tuple field): bounds, open or closed."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def __str__(self) -> str:
        def num(x: float) -> str:
            return str(x) if isinstance(x, int) else f"{x:g}"

        lo = f"({num(self.gt)}" if self.gt is not None else f"[{num(self.ge)}" if self.ge is not None else ""
        hi = f"{num(self.lt)})" if self.lt is not None else f"{num(self.le)}]" if self.le is not None else ""
        if lo and hi:
            return f"in {lo}, {hi}"
        if lo:
            return f"> {num(self.gt)}" if self.gt is not None else f">= {num(self.ge)}"  # type: ignore[arg-type]
        return f"< {num(self.lt)}" if self.lt is not None else f"<= {num(self.le)}"  # type: ignore[arg-type]

    def allows(self, x: float) -> bool:
        return not ((self.gt is not None and not x > self.gt) or (self.ge is not None and not x >= self.ge)
                    or (self.lt is not None and not x < self.lt) or (self.le is not None and not x <= self.le))

    def check(self, value: Any, path: str) -> None:
        """Raise ``ConfigError`` naming ``path`` and this range when ``value`` (or an item of it) is outside."""
        items = value if isinstance(value, (list, tuple)) else [value]
        for i, x in enumerate(items):
            if isinstance(x, (int, float)) and not isinstance(x, bool) and not self.allows(x):
                where = f"{path}[{i}]" if isinstance(value, (list, tuple)) else path
                raise ConfigError(f"{where} must be {self}, got {x!r}")


def bounded(default: Any, *, gt: float | None = None, ge: float | None = None, lt: float | None = None,
            le: float | None = None) -> Any:
    """A dataclass field with ``default`` whose values ``from_dict`` checks against the given bounds."""
    return dataclasses.field(default=default, metadata={"range": Range(gt, ge, lt, le)})


def not_finite(default: Any) -> Any:
    """A float dataclass field that may hold inf or nan (every other float field must be finite)."""
    return dataclasses.field(default=default, metadata={"finite": False})


def check_fields(obj: Any, path: str = "") -> None:
    """Check a built dataclass's numeric fields as ``from_dict`` does: floats finite (unless declared
    ``not_finite``), values inside their declared ``bounded`` range. For ``__post_init__``, so that a
    config built in Python is held to the same rules as one read from TOML or ``--set``."""
    for f in dataclasses.fields(obj):
        value, where = getattr(obj, f.name), _join(path, f.name)
        items = value if isinstance(value, (list, tuple)) else [value]
        if f.metadata.get("finite", True):
            for i, x in enumerate(items):
                if isinstance(x, float) and not math.isfinite(x):
                    allowed = f.metadata.get("range")
                    expected = f"a finite number {allowed}" if allowed is not None else "a finite number"
                    at = f"{where}[{i}]" if isinstance(value, (list, tuple)) else where
                    raise ConfigError(f"{at} must be {expected}, got {x!r}")
        if "range" in f.metadata:
            f.metadata["range"].check(value, where)


def coerce(value: Any, tp: Any, path: str, finite: bool = True, allowed: Range | None = None) -> Any:
    """Check (and where lossless, convert) ``value`` against type ``tp``. Floats must be finite unless
    ``finite`` is false (a field declared with ``not_finite``); ``allowed`` is named in that error."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{path} = {value!r} is not allowed; allowed values: {', '.join(map(repr, allowed))}")
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, path, finite, allowed)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path} = {value!r} matches none of: {'; '.join(errors)}")
    if isinstance(tp, type) and callable(getattr(tp, "from_text", None)):  # a value written as text (a Budget)
        if isinstance(value, tp):
            return value
        if not isinstance(value, str):
            raise ConfigError(f"{path} must be text, got {value!r}")
        try:
            return tp.from_text(value)
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a table of keys ({tp.__name__}), got {value!r}")
        return from_dict(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:  # fixed length, e.g. tuple[float, float]
            if len(value) != len(args):
                raise ConfigError(f"{path} must be a list of {len(args)} values, got {value!r}")
            return tuple(coerce(v, a, f"{path}[{i}]", finite, allowed) for i, (v, a) in enumerate(zip(value, args, strict=True)))
        item = args[0] if args else Any
        items = [coerce(v, item, f"{path}[{i}]", finite, allowed) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a table, got {value!r}")
        vt = get_args(tp)[1] if get_args(tp) else Any
        return {str(k): coerce(v, vt, _join(path, str(k)), finite, allowed) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{path} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond the float range
                number = math.inf
            if finite and not math.isfinite(number):
                expected = f"a finite number {allowed}" if allowed is not None else "a finite number"
                raise ConfigError(f"{path} must be {expected}, got {value!r}")
            return number
        raise ConfigError(f"{path} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path} must be a string, got {value!r}")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{path} must be of type {tp.__name__}, got {value!r}")
    return value


def to_dict(obj: Any) -> Any:
    """Dataclass tree -> plain dict (tuples become lists), suitable for JSON and TOML; a value with
    ``to_text`` (a field whose type parses ``from_text``) is written back as that text."""
    if callable(getattr(obj, "to_text", None)) and not isinstance(obj, type):
        return obj.to_text()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not f.metadata.get("transient")}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def parse_value(text: str) -> Any:
    """A ``--set`` value: a TOML value when it parses as one (3, 1e-4, true, "x", [1, 2]), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides to a nested dict (in place) and return it."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is a value, not a table")
            node = child
        node[parts[-1]] = parse_value(raw.strip())
    return data


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``extra`` wins."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from exc


def toml_value(v: Any) -> str:
    """A scalar or list as TOML writes it (``true``, ``0.004``, ``"linear"``, ``[1, 2]``)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def dump_toml(data: Mapping[str, Any]) -> str:
    """Write a nested dict of scalars / lists / tables as TOML (``None`` values are left out)."""
    lines: list[str] = []

    def key(k: str) -> str:
        return k if k and all(c.isalnum() or c in "-_" for c in k) else json.dumps(k)

    def table(prefix: str, d: Mapping[str, Any]) -> None:
        plain = {k: v for k, v in d.items() if v is not None and not isinstance(v, Mapping)}
        subs = {k: v for k, v in d.items() if isinstance(v, Mapping)}
        if prefix and (plain or not subs):
            lines.append(f"\n[{prefix}]")
        for k, v in plain.items():
            lines.append(f"{key(k)} = {toml_value(v)}")
        for k, v in subs.items():
            table(_join(prefix, key(k)), v)

    table("", data)
    return "\n".join(lines).lstrip("\n") + "\n"
