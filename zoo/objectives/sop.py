"""Sentence-order prediction as in ALBERT (Lan et al., 2020).

A and B are two consecutive segments of one chunk (split at a random sentence boundary); with
probability ``swap_rate`` they are swapped (label 1), otherwise kept in order (label 0). A chunk
that cannot be split (a single token) yields a row without an order label (-100, ignored by the
loss) that still carries its tokens for a masking objective composed with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoo.batch import Chunk, DocumentSource
from zoo.objectives.common import IGNORE
from zoo.objectives.pairs import Pair, PairObjective, Piece, split_chunk, whole_chunk

IN_ORDER, SWAPPED = 0, 1


@dataclass
class SOPConfig:
    swap_rate: float = 0.5  # fraction of pairs presented in swapped order

    def __post_init__(self) -> None:
        if not 0.0 <= self.swap_rate <= 1.0:
            raise ValueError(f"swap_rate must be in [0, 1], got {self.swap_rate}")


class SentenceOrderPrediction(PairObjective):
    """ALBERT sentence-order prediction on ``[CLS] A [SEP] B [SEP]`` rows."""

    name = "sop"
    Config = SOPConfig
    task = "sentence-order prediction"

    def make_pair(self, chunk: Chunk, source: DocumentSource, max_tokens: int,
                  rng: np.random.Generator) -> Pair:
        split = split_chunk(chunk, rng)
        if split is None:
            empty = Piece(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool))
            return Pair(whole_chunk(chunk), empty, IGNORE)
        a, b = split
        if rng.random() < self.config.swap_rate:
            return Pair(b, a, SWAPPED)
        return Pair(a, b, IN_ORDER)
