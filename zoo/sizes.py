"""Model size presets, the one list of their names (``--size``, ``size =`` in a config, ``zoo compare``)."""

from __future__ import annotations

from typing import Literal

# name -> (layers, hidden); heads = hidden / 64, FFN = 4 x hidden.
SIZES: dict[str, tuple[int, int]] = {
    "tiny": (2, 128),
    # tiny's width at mini's depth: with a 2,048-entry vocabulary the output layer is 22% of a causal
    # LM's training FLOPs (docs/results/shape); the cpu-hour study's shape.
    "tiny-deep": (4, 128),
    # mini's depth at width 192: with a 4,096-entry vocabulary the output layer is under 30% of a
    # causal LM's training FLOPs (docs/results/shape), where tiny's is 69% at 8,192 entries.
    "mini-192": (4, 192),
    "mini": (4, 256),
    "small": (4, 512),
    "medium": (8, 512),
    "base": (12, 768),
}

Size = Literal[tuple(SIZES)]  # type: ignore[valid-type]  # the names above, checked by typed configs
