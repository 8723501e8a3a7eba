"""Span masking on a bidirectional model (SpanBERT, Joshi et al., 2020, with T5's span sampler).

The maskable tokens of each row (not special, not padding) are noised with T5's
``random_spans_noise_mask`` (``zoo.objectives.span``): ``round(n * noise_density)`` tokens in spans
of mean length ``mean_span_length``. A span cut by a special token becomes two spans. Each span is
replaced as SpanBERT does, decided per span: 80% all [MASK], 10% random ordinary tokens, 10%
unchanged; every noise token is predicted with the masked-LM head and loss (sparse, as ``mlm``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.batch import Batch
from zoo.objectives.common import IGNORE, special_mask_of
from zoo.objectives.mlm import MaskedLM, apply_kinds, check_ratios, draw_kinds
from zoo.objectives.noise import check_noise, noise_counts, random_spans_noise_mask


@dataclass
class SpanMaskConfig:
    noise_density: float = 0.15  # fraction of maskable tokens in noise spans
    mean_span_length: float = 3.0
    mask_ratio: float = 0.8  # spans replaced by [MASK]
    random_ratio: float = 0.1  # spans replaced by random tokens (the rest stay unchanged)
    chunk_rows: int = 8192  # rows of vocabulary logits computed at once

    def __post_init__(self) -> None:
        check_noise(self.noise_density, self.mean_span_length, self.chunk_rows)
        check_ratios(self.noise_density, self.mask_ratio, self.random_ratio)


def span_mask_row(ids: np.ndarray, special: np.ndarray, density: float, mean_span_length: float,
                  mask_ratio: float, random_ratio: float, mask_id: int, pool: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """Noise one row in place (``ids`` (T,) is modified); returns the sorted noised positions."""
    cand = np.flatnonzero(~special)
    if len(cand) < 2:
        return cand[:0]
    chosen = cand[random_spans_noise_mask(len(cand), density, mean_span_length, rng)]
    # spans in row coordinates: a noise span crossing a special token becomes two spans
    span_first = np.concatenate([[True], np.diff(chosen) != 1])
    lengths = np.diff(np.append(np.flatnonzero(span_first), len(chosen)))
    kinds = np.repeat(draw_kinds(len(lengths), mask_ratio, random_ratio, rng), lengths)
    apply_kinds(ids, chosen, kinds, mask_id, pool, rng)
    return chosen


class SpanMasking(MaskedLM):
    """SpanBERT-style span masking; bidirectional attention, head and loss as ``mlm``'s."""

    name = "span-mask"
    Config = SpanMaskConfig
    encoder_decoder = False  # no encoder-decoder form yet

    @classmethod
    def min_seq_len(cls, family: str) -> int:
        return 4  # [CLS], a span and a token around it, [SEP]

    def prepare(self, data: Batch | Any, rng: np.random.Generator) -> Batch:
        if not isinstance(data, Batch):
            raise TypeError(f"{self.name} prepares packed rows (a Batch), got {type(data).__name__}")
        c: SpanMaskConfig = self.config
        ids = np.array(data.input_ids, dtype=np.int64, copy=True)
        special = special_mask_of(data, self.tokens)
        batch_size, seq_len = ids.shape
        width = max(1, noise_counts(seq_len, c.noise_density, c.mean_span_length)[0])
        positions = np.zeros((batch_size, width), dtype=np.int64)
        labels = np.full((batch_size, width), IGNORE, dtype=np.int64)
        for b in range(batch_size):
            original = ids[b].copy()
            chosen = span_mask_row(ids[b], special[b], c.noise_density, c.mean_span_length, c.mask_ratio,
                                   c.random_ratio, self.tokens.mask, self.pool, rng)
            positions[b, :len(chosen)] = chosen
            labels[b, :len(chosen)] = original[chosen]
        targets = {**data.targets, self.name: {"positions": positions, "labels": labels}}
        return data.replace(input_ids=ids, special_mask=special, causal=False, prefix=None, targets=targets)
