"""Span corruption as in T5 (Raffel et al., 2020), on a decoder or an encoder backbone.

The noise mask is T5's ``random_spans_noise_mask``: exactly ``round(L * density)`` noise tokens in
``round(noise / mean_span_length)`` spans, span lengths from a uniformly random segmentation,
alternating non-noise / noise starting with non-noise (float32 rounding as in T5's TensorFlow code).

Decoder (needs 'prefix'): the whole raw row is one text. It becomes a single prefix-LM row
``corrupted input, eos | <extra_id_0> span_0 <extra_id_1> span_1 ... eos``: each noise span is
replaced in the input by the next unique sentinel; the input part is a bidirectional prefix, the
target part is predicted token by token. ``row_length(seq_len)`` is the longest raw length whose
prepared row fits ``seq_len`` (T5's compute_input_and_target_lengths for a single row).

Encoder (needs 'bidirectional'): the maskable tokens of each row are noised with the same sampler;
each span is replaced as in SpanBERT (80% all [MASK], 10% random tokens, 10% unchanged, decided
per span) and every noise token is predicted with the masked-LM head and loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor, nn

from zoo.batch import Batch, SpecialTokens
from zoo.errors import ConfigError
from zoo.models.base import Backbone, BackboneSpec
from zoo.objectives.base import LossOutput, Objective, TiedLinear, perplexity
from zoo.objectives.clm import lm_head_flops, lm_loss
from zoo.objectives.common import IGNORE, non_special_ids, require_tokens, special_mask_of
from zoo.objectives.mlm import (
    MaskedLMHead,
    apply_kinds,
    check_ratios,
    check_vocab,
    draw_kinds,
    masked_lm_loss,
    mlm_head_flops,
)


@dataclass
class SpanConfig:
    noise_density: float = 0.15  # fraction of tokens in noise spans
    mean_span_length: float = 3.0
    mask_ratio: float = 0.8  # encoder: spans replaced by [MASK]
    random_ratio: float = 0.1  # encoder: spans replaced by random tokens (the rest stay unchanged)
    chunk_rows: int = 8192  # rows of vocabulary logits computed at once

    def __post_init__(self) -> None:
        if not 0.0 < self.noise_density <= 0.5:
            raise ValueError(f"noise_density must be in (0, 0.5], got {self.noise_density}")
        if self.mean_span_length < 1.0:
            raise ValueError(f"mean_span_length must be >= 1, got {self.mean_span_length}")
        check_ratios(self.noise_density, self.mask_ratio, self.random_ratio)
        if self.chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {self.chunk_rows}")


def noise_counts(length: int, density: float, mean_span_length: float) -> tuple[int, int]:
    """(noise tokens, noise spans) of a text of ``length`` tokens, exactly as T5 computes them."""
    length = max(length, 2)
    num_noise = int(np.round(np.float32(length) * np.float32(density)))
    num_noise = min(max(num_noise, 1), length - 1)
    num_spans = int(np.round(np.float32(num_noise) / np.float32(mean_span_length)))
    # T5 leaves more spans than non-noise tokens undefined (possible only for tiny texts with
    # mean_span_length < 2); cap them so that every non-noise span stays non-empty.
    return num_noise, min(max(num_spans, 1), length - num_noise)


def _random_segmentation(num_items: int, num_segments: int, rng: np.random.Generator) -> np.ndarray:
    """Random partition of ``num_items`` into ``num_segments`` non-empty segments (their lengths)."""
    first = rng.permutation(np.arange(num_items - 1) < num_segments - 1)
    segment_id = np.cumsum(np.concatenate([[False], first]))
    return np.bincount(segment_id, minlength=num_segments)


def random_spans_noise_mask(length: int, density: float, mean_span_length: float,
                            rng: np.random.Generator) -> np.ndarray:
    """T5's noise mask: (length,) bool, True on noise tokens."""
    if length == 0:
        return np.zeros(0, dtype=bool)
    orig_length, length = length, max(length, 2)
    num_noise, num_spans = noise_counts(length, density, mean_span_length)
    noise_lengths = _random_segmentation(num_noise, num_spans, rng)
    nonnoise_lengths = _random_segmentation(length - num_noise, num_spans, rng)
    interleaved = np.stack([nonnoise_lengths, noise_lengths], axis=1).reshape(-1)
    starts = np.zeros(length, dtype=np.int64)
    starts[np.cumsum(interleaved)[:-1]] = 1
    return (np.cumsum(starts) % 2 == 1)[:orig_length]


def prepared_length(raw_length: int, density: float, mean_span_length: float) -> int:
    """Decoder row length for a raw text of ``raw_length``: input + eos + target + eos."""
    num_noise, num_spans = noise_counts(raw_length, density, mean_span_length)
    return (raw_length - num_noise + num_spans + 1) + (num_noise + num_spans + 1)


def span_starts(noise: np.ndarray) -> np.ndarray:
    """First token of each noise span."""
    prev = np.concatenate([[False], noise[:-1]])
    return noise & ~prev


class SpanCorruption(Objective):
    """T5 span corruption: sentinel prefix LM on decoders, SpanBERT-style span masking on encoders."""

    name = "span"
    Config = SpanConfig
    corrupts_inputs = True
    rebuilds_rows = True  # on a decoder; ``rebuilds_rows_for`` says False on an encoder

    def __init__(self, config: SpanConfig | None, tokens: SpecialTokens, spec: BackboneSpec,
                 name: str | None = None) -> None:
        super().__init__(config, tokens, spec, name)
        self.encoder = spec.family == "encoder"
        if self.encoder:
            require_tokens(tokens, "mask", by=f"{self.name} on an encoder")
            self.pool = non_special_ids(tokens)
        else:
            require_tokens(tokens, "eos", "sentinels", by=f"{self.name} on a decoder")
        check_vocab(tokens, spec, self.name)

    @classmethod
    def min_seq_len(cls, family: str) -> int:
        return 4  # room for a span beside the tokens kept (and, on a decoder, its sentinel)

    @classmethod
    def incompatibility(cls, capabilities: frozenset[str], family: str) -> str | None:
        if family == "encoder":
            if "bidirectional" not in capabilities:
                return "on an encoder needs bidirectional attention, which this backbone lacks"
            return None
        if "prefix" not in capabilities:
            return (f"on a {family} needs prefix-LM attention (capability 'prefix', a bidirectional "
                    f"prefix); this backbone offers {', '.join(sorted(capabilities))}")
        return None

    @classmethod
    def layout_for(cls, family: str) -> str | None:
        return "bidirectional" if family == "encoder" else "prefix"

    @classmethod
    def rebuilds_rows_for(cls, family: str) -> bool:
        return family != "encoder"  # one new prefix-LM row of another width per raw row

    # --- data ----------------------------------------------------------------------------------
    def row_length(self, seq_len: int) -> int:
        if self.encoder:
            return seq_len
        c: SpanConfig = self.config
        length = seq_len
        while length > 0 and prepared_length(length, c.noise_density, c.mean_span_length) > seq_len:
            length -= 1
        if length < 2:
            raise ConfigError(f"{self.name}: rows of {seq_len} tokens are too short for span corruption")
        self._check_sentinels(noise_counts(length, c.noise_density, c.mean_span_length)[1], length)
        return length

    def _check_sentinels(self, num_spans: int, length: int) -> None:
        if num_spans > len(self.tokens.sentinels):
            raise ConfigError(
                f"{self.name}: a text of {length} tokens gets {num_spans} noise spans, each needing its own "
                f"sentinel, but the tokenizer has {len(self.tokens.sentinels)}; use shorter rows, a "
                f"larger mean_span_length, or a tokenizer with more sentinels")

    def prepare(self, data: Batch | Any, rng: np.random.Generator) -> Batch:
        if not isinstance(data, Batch):
            raise TypeError(f"{self.name} prepares packed rows (a Batch), got {type(data).__name__}")
        return self._prepare_encoder(data, rng) if self.encoder else self._prepare_decoder(data, rng)

    def _prepare_decoder(self, data: Batch, rng: np.random.Generator) -> Batch:
        c: SpanConfig = self.config
        raw = np.asarray(data.input_ids, dtype=np.int64)
        real = np.asarray(data.doc_ids) >= 0
        batch_size, raw_len = raw.shape
        width = prepared_length(raw_len, c.noise_density, c.mean_span_length)
        sentinels = np.asarray(self.tokens.sentinels, dtype=np.int64)
        eos = self.tokens.eos
        ids = np.full((batch_size, width), self.tokens.pad, dtype=np.int64)
        doc_ids = np.full((batch_size, width), -1, dtype=np.int32)
        prefix = np.zeros((batch_size, width), dtype=bool)
        labels = np.full((batch_size, width), IGNORE, dtype=np.int64)
        special = np.ones((batch_size, width), dtype=bool)
        for b in range(batch_size):
            text = raw[b][real[b]]  # the whole row is one text
            noise = random_spans_noise_mask(len(text), c.noise_density, c.mean_span_length, rng)
            first = span_starts(noise)
            num_spans = int(first.sum())
            self._check_sentinels(num_spans, len(text))
            span_id = np.cumsum(first) - 1
            # input: non-noise tokens, one sentinel per span, eos
            keep = ~noise | first
            inputs = np.where(first, sentinels[np.maximum(span_id, 0)], text)[keep]
            inputs = np.append(inputs, eos)
            # target: <sentinel k> span k ... , eos
            noise_idx = np.flatnonzero(noise)
            is_first = first[noise_idx]
            slot = np.arange(len(noise_idx)) + np.cumsum(is_first)  # each span start shifts by its sentinel
            target = np.empty(len(noise_idx) + num_spans, dtype=np.int64)
            target[slot] = text[noise_idx]
            target[slot[is_first] - 1] = sentinels[:num_spans]
            target = np.append(target, eos)
            row = np.concatenate([inputs, target])
            n, a = len(row), len(inputs)
            ids[b, :n] = row
            doc_ids[b, :n] = 0
            prefix[b, :a] = True
            labels[b, a - 1:n - 1] = row[a:]  # position t predicts t + 1, over the target part
            special[b, :n] = np.isin(row, sentinels) | (row == eos)
        positions = np.broadcast_to(np.arange(width, dtype=np.int64), (batch_size, width)).copy()
        targets = {**data.targets, self.name: {"labels": labels}}
        return Batch(input_ids=ids, doc_ids=doc_ids, position_ids=positions, special_mask=special,
                     causal=True, prefix=prefix, targets=targets)

    def _prepare_encoder(self, data: Batch, rng: np.random.Generator) -> Batch:
        c: SpanConfig = self.config
        ids = np.array(data.input_ids, dtype=np.int64, copy=True)
        special = special_mask_of(data, self.tokens)
        batch_size, seq_len = ids.shape
        width = max(1, noise_counts(seq_len, c.noise_density, c.mean_span_length)[0])
        positions = np.zeros((batch_size, width), dtype=np.int64)
        labels = np.full((batch_size, width), IGNORE, dtype=np.int64)
        for b in range(batch_size):
            cand = np.flatnonzero(~special[b])
            if len(cand) < 2:
                continue
            chosen = cand[random_spans_noise_mask(len(cand), c.noise_density, c.mean_span_length, rng)]
            n = len(chosen)
            positions[b, :n] = chosen
            labels[b, :n] = ids[b, chosen]
            # spans in row coordinates: a noise span crossing a special token becomes two spans
            span_first = np.concatenate([[True], np.diff(chosen) != 1])
            lengths = np.diff(np.append(np.flatnonzero(span_first), n))
            kinds = np.repeat(draw_kinds(len(lengths), c.mask_ratio, c.random_ratio, rng), lengths)
            apply_kinds(ids[b], chosen, kinds, self.tokens.mask, self.pool, rng)
        targets = {**data.targets, self.name: {"positions": positions, "labels": labels}}
        return data.replace(input_ids=ids, special_mask=special, causal=False, prefix=None, targets=targets)

    # --- model ---------------------------------------------------------------------------------
    def build_heads(self, backbone: Backbone) -> nn.Module:
        if self.encoder:
            return MaskedLMHead(backbone.spec, backbone.input_embedding())
        return TiedLinear(backbone.input_embedding(), bias=False)

    def loss(self, heads: nn.Module | None, hidden: Tensor, batch: Batch) -> LossOutput:
        t = batch.targets[self.name]
        if self.encoder:
            return masked_lm_loss(heads, hidden, t["positions"], t["labels"], self.config.chunk_rows)
        return lm_loss(heads, hidden, t["labels"], self.config.chunk_rows)

    def head_flops(self, batch: Batch) -> float:
        t = batch.targets[self.name]
        return mlm_head_flops(self.spec, t["positions"], t["labels"]) if self.encoder else lm_head_flops(self.spec, t["labels"])

    def derived_metrics(self, means: dict[str, float]) -> dict[str, float]:
        if self.encoder or "loss" not in means:
            return {}
        return {"ppl": perplexity(means["loss"])}
