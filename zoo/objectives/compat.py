"""Which objective fits which backbone: the one rule that ``zoo list``, composition, training and the
conformance kit all apply.

An objective here is a ``+`` composition: a sequence of ``(name, Objective class)`` parts (one part
for a single objective). It fits a backbone when every part accepts the backbone's capabilities
(``Objective.incompatibility``, which by default checks ``requires``) and the parts can share one
forward pass (``conflicts``). The attention pattern is the objective's choice: a backbone declares
the patterns it can run, and a standard transformer runs them all, so the answer is "no" only where
something is truly missing, such as segment embeddings for sentence-pair objectives. On an
encoder-decoder backbone an objective must also say what the encoder reads and what the decoder
predicts (``Objective.encoder_decoder``); the others are refused there.

A mixture ``a|b`` runs its parts on separate steps: call ``incompatibility`` once per ``|`` part.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from zoo.objectives.base import Objective

Part = tuple[str, "type[Objective]"]


class Architecture(Protocol):
    """What the rule reads of a backbone: a ``Backbone`` class or a ``BackboneSpec``."""

    capabilities: frozenset[str]
    family: str


def incompatibility(parts: Sequence[Part], backbone: Architecture) -> str | None:
    """Why the composition of ``parts`` cannot train ``backbone`` (a Backbone class or spec), or None.

    The reason names the part it is about (``"nsp needs ..."``) or the parts that conflict.
    """
    caps, family = frozenset(backbone.capabilities), backbone.family
    for name, cls in parts:
        reason = _encoder_decoder(cls, caps, family) if str(family) == "encoder-decoder" \
            else cls.incompatibility(caps, family)
        if reason:
            return f"{name} {reason}"
    return conflicts(parts, family)


def _encoder_decoder(cls: type[Objective], capabilities: frozenset[str], family: str) -> str | None:
    """The rule on an encoder-decoder backbone. Each example is split into what the encoder reads and what
    the decoder reads and predicts; an objective that defines that split (``encoder_decoder``) fits, and
    its ``requires`` (the layouts of its single-stack form) do not apply. The others cannot train one.
    Named mixtures are judged by their components."""
    if getattr(cls, "components", ()):
        return cls.incompatibility(capabilities, family)
    if cls.encoder_decoder:
        return None
    return ("has no encoder-decoder form: it does not say what the encoder reads and what the decoder "
            "predicts (span-lm, prefix, clm, deshuffle and mlm do)")


def compatible(parts: Sequence[Part], backbone: Architecture) -> bool:
    return incompatibility(parts, backbone) is None


def conflicts(parts: Sequence[Part], family: str) -> str | None:
    """Why these parts cannot share one batch and forward pass (on a backbone of ``family``), or None."""
    names = [n for n, _ in parts]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        return f"objective {dup!r} appears twice"
    mixtures = [n for n, cls in parts if getattr(cls, "components", ())]  # named mixtures (zoo.objectives.mixture)
    if mixtures and len(parts) > 1:
        return (f"{mixtures[0]} is a mixture whose parts take turns by step; it cannot share a batch and "
                f"forward pass with {' and '.join(n for n in names if n != mixtures[0])}")
    pairs = [n for n, cls in parts if cls.role == "pairs"]
    if len(pairs) > 1:
        return (f"{' and '.join(pairs)} both build sentence pairs from the data; a composition can "
                f"hold one pair builder")
    corrupt = [n for n, cls in parts if cls.corrupts_inputs]
    if len(corrupt) > 1:
        return (f"{' and '.join(corrupt)} both corrupt the input ids (masking / span corruption); "
                f"a composition can hold one of them")
    rebuild = [n for n, cls in parts if cls.rebuilds_rows_for(family)]
    if rebuild and len(parts) > 1:
        others = [n for n in names if n != rebuild[0]]
        return (f"{rebuild[0]} rebuilds every row (new width, positions and attention layout), so the "
                f"targets and layout of {' and '.join(others)} would no longer match the rows; train "
                f"{rebuild[0]} alone")
    layouts = {n: cls.layout_for(family) for n, cls in parts}
    prefix = [n for n, v in layouts.items() if v == "prefix"]
    if len(prefix) > 1:
        return (f"{' and '.join(prefix)} both draw the bidirectional prefix of a prefix-LM layout; the later "
                f"draw would replace the earlier, making tokens the earlier part predicts visible to the "
                f"positions that predict them")
    set_layouts = {v for v in layouts.values() if v is not None}
    if len(set_layouts) > 1:
        detail = ", ".join(f"{n} {v}" for n, v in layouts.items() if v is not None)
        return (f"the parts need different attention layouts ({detail}); one forward pass cannot serve them")
    return None
