"""Prefix language modelling (the prefix LM of Raffel et al., 2020; UL2's S-denoiser with a paradigm token).

Each packed document piece is split at a random point k (1 <= k < n): its first k tokens form a
bidirectional prefix, the rest is predicted token by token. Attention: key j is visible to query
i iff both are in the same document and (j <= i or j is in the prefix), so the last prefix
position predicts the first suffix token without seeing it. Only suffix tokens are targets.

With ``paradigm`` (e.g. UL2's ``"[S]"``) the token leads every row, as part of the row's first
document and its prefix; rows are then requested one token shorter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.batch import Batch
from zoo.objectives.clm import LanguageModelBase, LMConfig, next_token_labels
from zoo.objectives.common import IGNORE


@dataclass
class PrefixConfig(LMConfig):
    paradigm: str = ""  # a special token leading every row (UL2: "[S]"); "" for none


def document_runs(doc_ids: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of one document id >= 0 in a row."""
    change = np.flatnonzero(np.diff(doc_ids)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(doc_ids)]])
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True) if doc_ids[s] >= 0]


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

    def row_length(self, seq_len: int) -> int:
        return seq_len - (self.lead is not None)

    def prepare(self, data: Batch | Any, rng: np.random.Generator) -> Batch:
        if not isinstance(data, Batch):
            raise TypeError(f"{self.name} prepares packed rows (a Batch), got {type(data).__name__}")
        if self.lead is not None:
            data = prepend_token(data, self.lead)
        ids = np.asarray(data.input_ids, dtype=np.int64)
        doc_ids = np.asarray(data.doc_ids)
        prefix = np.zeros(ids.shape, dtype=bool)
        for b in range(ids.shape[0]):
            for start, end in document_runs(doc_ids[b]):
                if end - start >= 2:
                    prefix[b, start:start + int(rng.integers(1, end - start))] = True
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
