"""Masked next-token prediction (GPT-BERT; Charpentier & Samuel, 2024).

Masked language modelling with the output alignment of a causal LM: tokens are masked as BERT does
(``rate`` of the maskable tokens per row, exactly ``max(1, round(n * rate))``; 80% [MASK], 10% a
random ordinary token, 10% unchanged) and attention is bidirectional, but the prediction for the
token at position i is read from the hidden state at i - 1, through the same tied LM projection
``clm`` uses (``head_key = "lm"``). A mixture such as ``mntp|clm`` therefore trains one head whose
logits at t always mean "the token at t + 1", as in GPT-BERT.

GPT-BERT starts every document with a token that is never masked, so every real token has a
predecessor in its own document. Here a token is maskable only if the position before it holds the
same document (and it is not a special token or padding): the first token of a document that
starts without [CLS] (a decoder's rows) is never masked, and no prediction crosses a document
boundary. GPT-BERT anneals the rate from 30% to 15% over training and masks spans of up to three
tokens; this objective masks single tokens at a fixed ``rate`` (set ``rate = 0.3`` for the start).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.batch import Batch, SpecialTokens
from zoo.models.base import BackboneSpec
from zoo.objectives.clm import LanguageModelBase
from zoo.objectives.common import IGNORE, non_special_ids, require_tokens, special_mask_of
from zoo.objectives.mlm import apply_kinds, check_ratios, draw_kinds


@dataclass
class MNTPConfig:
    rate: float = 0.15  # fraction of maskable tokens to predict
    mask_ratio: float = 0.8  # of those: replaced by [MASK]
    random_ratio: float = 0.1  # replaced by a random ordinary token (the rest stay unchanged)
    chunk_rows: int = 8192  # rows of vocabulary logits computed at once

    def __post_init__(self) -> None:
        check_ratios(self.rate, self.mask_ratio, self.random_ratio)
        if self.chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {self.chunk_rows}")


def maskable_with_predecessor(special: np.ndarray, doc_ids: np.ndarray) -> np.ndarray:
    """(B, T) bool: not special, not padding, and the position before holds the same document."""
    ok = ~special.copy()
    ok[:, 0] = False
    ok[:, 1:] &= (doc_ids[:, 1:] == doc_ids[:, :-1]) & (doc_ids[:, 1:] >= 0)
    return ok


def shifted_labels(ids: np.ndarray, chosen: list[np.ndarray]) -> np.ndarray:
    """(B, T) labels: the original token at each chosen position p, placed at p - 1."""
    labels = np.full(ids.shape, IGNORE, dtype=np.int64)
    for b, pos in enumerate(chosen):
        labels[b, pos - 1] = ids[b, pos]
    return labels


class MaskedNextTokenPrediction(LanguageModelBase):
    """BERT masking, bidirectional attention, each masked token predicted at the position before it."""

    name = "mntp"
    Config = MNTPConfig
    requires = frozenset({"bidirectional"})
    attention = "bidirectional"
    corrupts_inputs = True
    read_offset = 1

    def __init__(self, config: MNTPConfig | None, tokens: SpecialTokens, spec: BackboneSpec,
                 name: str | None = None) -> None:
        super().__init__(config, tokens, spec, name)
        require_tokens(tokens, "mask", by=self.name)
        self.pool = non_special_ids(tokens)

    def prepare(self, data: Batch | Any, rng: np.random.Generator) -> Batch:
        if not isinstance(data, Batch):
            raise TypeError(f"{self.name} prepares packed rows (a Batch), got {type(data).__name__}")
        c: MNTPConfig = self.config
        original = np.asarray(data.input_ids, dtype=np.int64)
        ids = original.copy()  # (B, T)
        special = special_mask_of(data, self.tokens)
        maskable = maskable_with_predecessor(special, np.asarray(data.doc_ids))
        chosen = []
        for b in range(ids.shape[0]):
            cand = np.flatnonzero(maskable[b])
            if len(cand) == 0:
                chosen.append(cand)
                continue
            num = max(1, round(len(cand) * c.rate))
            pos = np.sort(rng.choice(cand, size=num, replace=False))
            apply_kinds(ids[b], pos, draw_kinds(num, c.mask_ratio, c.random_ratio, rng), self.tokens.mask,
                        self.pool, rng)
            chosen.append(pos)
        targets = {**data.targets, self.name: {"labels": shifted_labels(original, chosen)}}
        return data.replace(input_ids=ids, special_mask=special, causal=False, prefix=None, targets=targets)
