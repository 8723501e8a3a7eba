"""Prefix language modelling (the prefix LM of Raffel et al., 2020; UL2's S-denoiser with a paradigm token).

Each packed document piece is split at a random point k (1 <= k < n): its first k tokens form a
bidirectional prefix, the rest is predicted token by token. Attention: key j is visible to query
i iff both are in the same document and (j <= i or j is in the prefix), so the last prefix
position predicts the first suffix token without seeing it. Only suffix tokens are targets.

With ``paradigm`` (e.g. UL2's ``"[S]"``) the token leads every row, as part of the row's first
document and its prefix; rows are then requested one token shorter.

On an encoder-decoder (``t5``), as in Raffel et al.'s Table 4: the encoder reads each document piece's
prefix (led by the paradigm token when there is one), the decoder predicts the rest of the piece;
packed pieces stay apart in both stacks and in cross-attention. Pieces of one token are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.batch import Batch, SpecialTokens
from zoo.family import Family
from zoo.models.base import BackboneSpec
from zoo.objectives.clm import LanguageModelBase, LMConfig, next_token_labels
from zoo.objectives.common import IGNORE, document_runs


@dataclass
class PrefixConfig(LMConfig):
    paradigm: str = ""  # a special token leading every row (UL2: "[S]"); "" for none
    # 0: split each document piece at a uniformly random point; f > 0: its last round(n * f) tokens
    # are the target (UL2's S-denoiser, span mean L/4 at rate 25% in one span: f = 0.25)
    target_fraction: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.target_fraction < 1.0:
            raise ValueError(f"target_fraction must be in [0, 1), got {self.target_fraction}")


def prepend_token(data: Batch, token: int) -> Batch:
    """Rows one token wider, led by ``token`` as the first position of each row's first document."""
    def lead(arr: Any, value: Any) -> Any:
        arr = np.asarray(arr)
        return np.concatenate([np.full((arr.shape[0], 1), value, dtype=arr.dtype), arr], axis=1)

    doc_ids = np.asarray(data.doc_ids)
    ids = lead(data.input_ids, token)
    ids[doc_ids[:, 0] < 0, 0] = np.asarray(data.input_ids)[doc_ids[:, 0] < 0, 0]  # an empty row stays padding
    docs = np.concatenate([doc_ids[:, :1], doc_ids], axis=1)
    positions = None
    if data.position_ids is not None:
        positions = lead(data.position_ids, 0)
        first = docs[:, 1:] == docs[:, :1]  # the first document now starts one position later
        positions[:, 1:] += first
    return data.replace(
        input_ids=ids, doc_ids=docs, position_ids=positions,
        token_type_ids=None if data.token_type_ids is None else lead(data.token_type_ids, 0),
        special_mask=None if data.special_mask is None else lead(data.special_mask, True),
        word_starts=None if data.word_starts is None else lead(data.word_starts, True))


class PrefixLM(LanguageModelBase):
    """Bidirectional prefix, causal suffix; loss on the suffix."""

    name = "prefix"
    Config = PrefixConfig
    requires = frozenset({"prefix", "packed"})
    attention = "prefix"
    encoder_decoder = True

    @classmethod
    def layout_for(cls, family: str) -> str | None:
        return "bidirectional" if family == Family.ENCODER_DECODER else "prefix"  # the encoder's layout

    def __init__(self, config: PrefixConfig | None, tokens: SpecialTokens, spec: BackboneSpec,
                 name: str | None = None) -> None:
        super().__init__(config, tokens, spec, name)
        self.randomized = not self.config.target_fraction  # a fixed split draws nothing
        self.seq2seq = spec.family == Family.ENCODER_DECODER

    def _seq2seq(self, data: Batch, rng: np.random.Generator) -> Batch:
        from zoo.objectives.seq2seq import document_texts, packed_seq2seq_rows

        lead = [] if self.lead is None else [self.lead]
        rows = []
        for texts in document_texts(data):
            docs = []
            for text in texts:
                if len(text) >= 2:
                    k = self._split(len(text), rng)
                    docs.append((np.concatenate([lead, text[:k]]).astype(np.int64), text[k:]))
            rows.append(docs)
        batch, labels = packed_seq2seq_rows(rows, self.tokens.pad, np.array(lead, dtype=np.int64))
        return batch.replace(targets={**data.targets, self.name: {"labels": labels}})

    def row_length(self, seq_len: int) -> int:
        return seq_len - (self.lead is not None)

    def _split(self, n: int, rng: np.random.Generator) -> int:
        """Prefix length of a document piece of ``n >= 2`` tokens."""
        if self.config.target_fraction > 0:
            return min(max(n - int(np.round(n * self.config.target_fraction)), 1), n - 1)
        return int(rng.integers(1, n))

    def prepare(self, data: Batch | Any, rng: np.random.Generator) -> Batch:
        if not isinstance(data, Batch):
            raise TypeError(f"{self.name} prepares packed rows (a Batch), got {type(data).__name__}")
        if self.seq2seq:
            return self._seq2seq(data, rng)
        if self.lead is not None:
            data = prepend_token(data, self.lead)
        ids = np.asarray(data.input_ids, dtype=np.int64)
        doc_ids = np.asarray(data.doc_ids)
        prefix = np.zeros(ids.shape, dtype=bool)
        for b in range(ids.shape[0]):
            for start, end in document_runs(doc_ids[b]):
                if end - start >= 2:
                    prefix[b, start:start + self._split(end - start, rng)] = True
        labels = next_token_labels(ids, doc_ids)
        labels[:, :-1][prefix[:, 1:]] = IGNORE  # prefix tokens are context, not targets
        targets = {**data.targets, self.name: {"labels": labels}}
        return data.replace(causal=True, prefix=prefix, targets=targets)


def prefix_lm_rows(pairs: list[tuple[np.ndarray, np.ndarray]], width: int, pad: int,
                   special_ids: np.ndarray) -> tuple[Batch, np.ndarray]:
    """(rows, labels): one prefix-LM row per (input, target) pair, ``input target`` padded to
    ``width``; the input is a bidirectional prefix and every target token is the label of the
    position before it (the last input token predicts the first target token), labels (B, width).
    ``special_ids`` mark the rows' ``special_mask``."""
    batch_size = len(pairs)
    ids = np.full((batch_size, width), pad, dtype=np.int64)
    doc_ids = np.full((batch_size, width), -1, dtype=np.int32)
    prefix = np.zeros((batch_size, width), dtype=bool)
    labels = np.full((batch_size, width), IGNORE, dtype=np.int64)
    special = np.ones((batch_size, width), dtype=bool)
    for b, (inputs, target) in enumerate(pairs):
        row = np.concatenate([inputs, target]).astype(np.int64)
        n, a = len(row), len(inputs)
        if n > width:
            raise ValueError(f"a prefix-LM row of {n} tokens does not fit rows of {width}")
        ids[b, :n] = row
        doc_ids[b, :n] = 0
        prefix[b, :a] = True
        labels[b, a - 1:n - 1] = row[a:]  # position t predicts t + 1, over the target part
        special[b, :n] = np.isin(row, special_ids)
    positions = np.broadcast_to(np.arange(width, dtype=np.int64), (batch_size, width)).copy()
    rows = Batch(input_ids=ids, doc_ids=doc_ids, position_ids=positions, special_mask=special,
                 causal=True, prefix=prefix)
    return rows, labels
