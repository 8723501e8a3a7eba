"""Deshuffling (Raffel et al., 2020, Table 4's baseline objective): shuffled text in, original out.

T5 "takes a sequence of tokens, shuffles it, and uses the original deshuffled sequence as a
target". On a single-stack model that is a prefix-LM row per raw row: the raw row (one text) with
its tokens in a uniformly random order, then end-of-text, form the bidirectional prefix; the
original text and end-of-text follow and are predicted token by token with the tied LM head of
``clm``. The target never enters the prefix, so no position sees a token it predicts before it is
predicted. ``row_length(seq_len)`` is ``(seq_len - 2) // 2``, the longest text whose row fits.

On an encoder-decoder (``t5``) it is T5's own form: the encoder reads the shuffled text and end-of-text,
the decoder predicts the original text and end-of-text; ``row_length(seq_len)`` is ``seq_len - 1``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.batch import Batch
from zoo.errors import ConfigError
from zoo.family import Family
from zoo.objectives.clm import LanguageModelBase
from zoo.objectives.prefix import prefix_lm_rows
from zoo.objectives.seq2seq import end_token, seq2seq_rows


def deshuffle_pair(text: np.ndarray, end: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(input, target): ``text`` in a random order + end, and ``text`` + end."""
    return np.append(text[rng.permutation(len(text))], end), np.append(text, end)


class Deshuffle(LanguageModelBase):
    """Shuffled tokens as a bidirectional prefix, the original order predicted after it."""

    name = "deshuffle"
    requires = frozenset({"prefix"})
    attention = "prefix"
    corrupts_inputs = True
    rebuilds_rows = True  # one prefix-LM row of twice the text per raw row
    encoder_decoder = True

    @classmethod
    def layout_for(cls, family: str) -> str | None:
        return "bidirectional" if family == Family.ENCODER_DECODER else "prefix"  # the encoder's layout

    @classmethod
    def min_seq_len(cls, family: str) -> int:
        return 6  # the text twice plus two end tokens

    def row_length(self, seq_len: int) -> int:
        length = seq_len - 1 if self.spec.family == Family.ENCODER_DECODER else (seq_len - 2) // 2
        if length < 2:
            raise ConfigError(f"{self.name}: rows of {seq_len} tokens are too short (a row holds the text "
                              f"twice plus two end tokens); use data.seq_len >= 6")
        return length

    def prepare(self, data: Batch | Any, rng: np.random.Generator) -> Batch:
        if not isinstance(data, Batch):
            raise TypeError(f"{self.name} prepares packed rows (a Batch), got {type(data).__name__}")
        raw = np.asarray(data.input_ids, dtype=np.int64)
        real = np.asarray(data.doc_ids) >= 0
        end = end_token(self.tokens)
        pairs = [deshuffle_pair(raw[b][real[b]], end, rng) for b in range(raw.shape[0])]
        if self.spec.family == Family.ENCODER_DECODER:
            rows, labels = seq2seq_rows(pairs, raw.shape[1] + 1, raw.shape[1] + 1, self.tokens.pad, np.array([end]))
        else:
            rows, labels = prefix_lm_rows(pairs, 2 * raw.shape[1] + 2, self.tokens.pad, np.array([end]))
        return rows.replace(targets={**data.targets, self.name: {"labels": labels}})
