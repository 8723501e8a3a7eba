"""T5 span corruption as one prefix-LM row (Raffel et al., 2020; the decoder-only form of their Table 2).

The whole raw row is one text. Noise spans are drawn with T5's ``random_spans_noise_mask``
(``zoo.objectives.span``); each span is replaced in the input by the next unique sentinel, and the
row becomes ``[P] corrupted input, end | <extra_id_0> span_0 <extra_id_1> span_1 ... end`` where
``end`` is the end-of-text token (``[SEP]`` on a WordPiece vocabulary) and ``[P]`` an optional
paradigm token (``paradigm``, UL2's ``[R]`` / ``[X]``; Tay et al., 2022). The input part is a
bidirectional prefix, the target part is predicted token by token with the tied LM head that
``clm`` uses. ``row_length(seq_len)`` is the longest raw length whose prepared row fits ``seq_len``
(T5's compute_input_and_target_lengths for a single row).

On an encoder-decoder backbone (``t5``) this is T5's own form: the encoder reads ``[P] corrupted input,
end`` and the decoder predicts ``<extra_id_0> span_0 ... end`` (``zoo.objectives.seq2seq``); ``seq_len``
bounds the encoder input, and the decoder rows are as long as the target of a full row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.batch import Batch, SpecialTokens
from zoo.errors import ConfigError
from zoo.family import Family
from zoo.models.base import BackboneSpec
from zoo.objectives.clm import LanguageModelBase
from zoo.objectives.common import require_tokens
from zoo.objectives.noise import check_noise, noise_counts, random_spans_noise_mask, span_starts
from zoo.objectives.prefix import prefix_lm_rows
from zoo.objectives.seq2seq import end_token, seq2seq_rows


@dataclass
class SpanLMConfig:
    noise_density: float = 0.15  # fraction of tokens in noise spans
    mean_span_length: float = 3.0
    paradigm: str = ""  # a special token prepended to every row (UL2: "[R]", "[X]"); "" for none
    chunk_rows: int = 8192  # rows of vocabulary logits computed at once

    def __post_init__(self) -> None:
        check_noise(self.noise_density, self.mean_span_length, self.chunk_rows)


def prepared_length(raw_length: int, density: float, mean_span_length: float, paradigm: bool = False) -> int:
    """Row length for a raw text of ``raw_length``: [paradigm] + input + end + target + end."""
    num_noise, num_spans = noise_counts(raw_length, density, mean_span_length)
    return int(paradigm) + (raw_length - num_noise + num_spans + 1) + (num_noise + num_spans + 1)


def span_lm_pair(text: np.ndarray, noise: np.ndarray, sentinels: np.ndarray, end: int,
                 lead: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(input, target) of one text and its noise mask: ``[lead] text with one sentinel per span, end``
    and ``<sentinel 0> span 0 <sentinel 1> span 1 ..., end``."""
    first = span_starts(noise)
    num_spans = int(first.sum())
    span_id = np.cumsum(first) - 1
    keep = ~noise | first  # input: non-noise tokens, one sentinel per span, end
    inputs = np.where(first, sentinels[np.maximum(span_id, 0)], text)[keep]
    inputs = np.concatenate([[] if lead is None else [lead], inputs, [end]]).astype(np.int64)
    noise_idx = np.flatnonzero(noise)  # target: <sentinel k> span k ..., end
    is_first = first[noise_idx]
    slot = np.arange(len(noise_idx)) + np.cumsum(is_first)  # each span start shifts by its sentinel
    target = np.empty(len(noise_idx) + num_spans, dtype=np.int64)
    target[slot] = text[noise_idx]
    target[slot[is_first] - 1] = sentinels[:num_spans]
    return inputs, np.append(target, end)


class SpanLM(LanguageModelBase):
    """Sentinel span corruption as a prefix LM: corrupted text visible, its spans predicted causally."""

    name = "span-lm"
    Config = SpanLMConfig
    requires = frozenset({"prefix"})  # on a single stack; the encoder-decoder form needs none
    attention = "prefix"
    corrupts_inputs = True
    rebuilds_rows = True  # one new prefix-LM row of another width per raw row
    sentinel_targets = True
    encoder_decoder = True

    @classmethod
    def layout_for(cls, family: str) -> str | None:
        return "bidirectional" if family == Family.ENCODER_DECODER else "prefix"  # the encoder's layout

    @classmethod
    def min_seq_len(cls, family: str) -> int:
        return 6  # at the default noise density: kept tokens, a span, its sentinels and the end token

    def __init__(self, config: SpanLMConfig | None, tokens: SpecialTokens, spec: BackboneSpec,
                 name: str | None = None) -> None:
        super().__init__(config, tokens, spec, name)
        require_tokens(tokens, "sentinels", by=self.name)
        self.end = end_token(tokens)
        self.seq2seq = spec.family == Family.ENCODER_DECODER

    def _lengths(self, raw_length: int) -> tuple[int, int]:
        """(input, target) lengths of a raw text of ``raw_length``: [P] kept tokens, sentinels, end | spans,
        their sentinels, end."""
        c: SpanLMConfig = self.config
        num_noise, num_spans = noise_counts(raw_length, c.noise_density, c.mean_span_length)
        return int(self.lead is not None) + raw_length - num_noise + num_spans + 1, num_noise + num_spans + 1

    def _length(self, raw_length: int) -> int:
        """The prepared row's length: the prefix-LM row, or the encoder input of an encoder-decoder."""
        if self.seq2seq:
            return self._lengths(raw_length)[0]
        c: SpanLMConfig = self.config
        return prepared_length(raw_length, c.noise_density, c.mean_span_length, self.lead is not None)

    def row_length(self, seq_len: int) -> int:
        c: SpanLMConfig = self.config
        length = seq_len
        while length > 0 and self._length(length) > seq_len:
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
        c: SpanLMConfig = self.config
        raw = np.asarray(data.input_ids, dtype=np.int64)
        real = np.asarray(data.doc_ids) >= 0
        sentinels = np.asarray(self.tokens.sentinels, dtype=np.int64)
        pairs = []
        for b in range(raw.shape[0]):
            text = raw[b][real[b]]  # the whole row is one text
            noise = random_spans_noise_mask(len(text), c.noise_density, c.mean_span_length, rng)
            self._check_sentinels(int(span_starts(noise).sum()), len(text))
            pairs.append(span_lm_pair(text, noise, sentinels, self.end, self.lead))
        special = np.concatenate([sentinels, [self.end], [] if self.lead is None else [self.lead]])
        if self.seq2seq:
            rows, labels = seq2seq_rows(pairs, *self._lengths(raw.shape[1]), self.tokens.pad, special)
        else:
            rows, labels = prefix_lm_rows(pairs, self._length(raw.shape[1]), self.tokens.pad, special)
        return rows.replace(targets={**data.targets, self.name: {"labels": labels}})
