"""Objective specs, parsed once into a typed tree.

Grammar (``+`` binds tighter than ``|``; whitespace around names and operators is ignored)::

    mixture     := mix_part ("|" mix_part)*
    mix_part    := composition [":" share]           a share on a single name: "clm:1"
                 | "(" composition ")" [":" share]    a share on a composition: "(mlm+sop):3"
    composition := term ("+" term)*
    term        := NAME [":" weight]                  a loss weight inside a composition

``mlm+nsp`` is one composition (losses added with weights), ``mntp:15|clm:1`` a mixture whose
shares are the probabilities (after normalising) with which a step draws each part. On a part
that is a single name the number after ``:`` is its share; inside a composition of several names
it is a loss weight, and the composition's share is written after parentheses.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from zoo.errors import ConfigError, IncompatibleError

EXAMPLE = "e.g. 'mlm', 'mlm+nsp', 'mlm:1.0+nsp:0.5', 'mntp:15|clm:1' or 'mlm+sop|clm'"


@dataclass(frozen=True)
class Term:
    """One objective inside a composition, with its loss weight."""

    name: str
    weight: float = 1.0

    def __str__(self) -> str:
        return self.name if self.weight == 1.0 else f"{self.name}:{self.weight:g}"


@dataclass(frozen=True)
class Composition:
    """Objectives trained on one batch and one forward pass, losses added (``mlm+nsp``)."""

    terms: tuple[Term, ...]

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.terms]

    @property
    def label(self) -> str:
        """The part's name in a mixture: its objective names joined by ``+`` (metric namespace)."""
        return "+".join(self.names)

    @property
    def single(self) -> bool:
        """One objective with the default weight: built as that objective itself."""
        return len(self.terms) == 1 and self.terms[0].weight == 1.0

    def __str__(self) -> str:
        return "+".join(str(t) for t in self.terms)


@dataclass(frozen=True)
class MixturePart:
    """One part of a mixture and its sampling share."""

    composition: Composition
    share: float = 1.0

    @property
    def label(self) -> str:
        return self.composition.label


@dataclass(frozen=True)
class Spec:
    """A parsed objective spec: one part (a plain objective or a composition) or a mixture of several."""

    parts: tuple[MixturePart, ...]
    text: str

    @classmethod
    def from_text(cls, text: str) -> Spec:
        """A config field's value from its text (``typed_config``; ``ConfigError`` for a bad spec)."""
        return parse_spec(text)

    def to_text(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text

    @property
    def is_mixture(self) -> bool:
        return len(self.parts) > 1

    @property
    def names(self) -> list[str]:
        """Every objective name, in order of appearance (each appears once)."""
        return [n for p in self.parts for n in p.composition.names]

    @property
    def composition(self) -> Composition:
        """The single composition of a spec that is not a mixture."""
        if self.is_mixture:
            raise ConfigError(f"objective spec {self.text!r} is a mixture of {len(self.parts)} parts, not one "
                              f"composition")
        return self.parts[0].composition


def _number(text: str, what: str, owner: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"objective spec {spec!r}: {what} {text.strip()!r} of {owner!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"objective spec {spec!r}: {what} of {owner!r} must be a positive finite number, "
                          f"got {text.strip()}")
    return value


def _composition(text: str, spec: str, where: str, number: str = "weight") -> Composition:
    terms = []
    for raw in text.split("+"):
        name, sep, weight = raw.strip().partition(":")
        name = name.strip()
        if not name:
            raise ConfigError(f"objective spec {spec!r} has an empty part around '+'{where}; expected {EXAMPLE}")
        if any(c in name for c in "()|"):
            raise ConfigError(f"objective spec {spec!r}: {name!r} is not an objective name; expected {EXAMPLE}")
        terms.append(Term(name, _number(weight, number, name, spec) if sep else 1.0))
    return Composition(tuple(terms))


def parse_spec(spec: str) -> Spec:
    """Parse ``spec`` (see the module docstring); every malformed spec is a one-line ``ConfigError``
    and a name appearing twice an ``IncompatibleError``, both naming the offending part."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"objective spec is empty; expected {EXAMPLE}")
    depth, inside = 0, False
    for ch in spec:
        depth += (ch == "(") - (ch == ")")
        inside = inside or (ch == "|" and depth > 0)
        if inside and depth == 0:  # a '|' between a '(' and its ')'
            raise ConfigError(f"objective spec {spec!r}: '|' cannot sit inside parentheses: a mixture is the top "
                              f"level and parentheses group a composition, e.g. 'mlm|clm' or '(mlm+sop):3|clm'")
    pieces = spec.split("|")
    mixture = len(pieces) > 1
    parts = []
    for raw in pieces:
        item = raw.strip()
        if not item:
            raise ConfigError(f"objective spec {spec!r} has an empty part around '|'; expected {EXAMPLE}")
        where = f" in mixture part {item!r}" if mixture else ""
        share = 1.0
        if item.startswith("("):
            body, close, rest = item[1:].partition(")")
            rest = rest.strip()
            if not close or (rest and not rest.startswith(":")):
                raise ConfigError(f"objective spec {spec!r}: mixture part {item!r} must be '(a+b)' or "
                                  f"'(a+b):SHARE'")
            composition = _composition(body, spec, where)
            if rest:
                share = _number(rest[1:], "share", composition.label, spec)
        else:
            single = mixture and "+" not in item
            composition = _composition(item, spec, where, "share" if single else "weight")
            if single:  # "clm:15" in a mixture: the share of the part
                share, composition = composition.terms[0].weight, Composition((Term(composition.terms[0].name),))
        parts.append(MixturePart(composition, share))
    seen: set[str] = set()
    for part in parts:
        for name in part.composition.names:
            if name in seen:
                hint = (f"use a share such as {name}:2 to draw it more often" if mixture
                        else f"use a weight such as {name}:2.0 to scale it")
                raise IncompatibleError(f"objective {name!r} appears twice in {spec!r}; list each part once ({hint})")
            seen.add(name)
    return Spec(tuple(parts), spec)


def require_spec(spec: Spec, where: str) -> Spec:
    """``spec`` when it is a parsed ``Spec``; a ``TypeError`` naming ``where`` otherwise (text is parsed once,
    by whoever holds it, with ``parse_spec``)."""
    if not isinstance(spec, Spec):
        raise TypeError(f"{where} takes a parsed objective Spec (zoo.objectives.parse_spec(text)), "
                        f"got {type(spec).__name__} {spec!r}")
    return spec


def path_name(spec: str) -> str:
    """``spec`` as part of a portable file name: ``|`` becomes ``_or_``, any other character that is not a
    letter, digit or one of ``+._-`` becomes ``_`` (``mntp:15|clm:1`` -> ``mntp_15_or_clm_1``; no ``:``,
    which Windows paths and ``scp`` treat specially). ``zoo train`` and ``zoo compare`` name runs with it."""
    return re.sub(r"[^A-Za-z0-9+._-]", "_", spec.replace(" ", "").replace("|", "_or_"))
