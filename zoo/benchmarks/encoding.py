"""Examples -> token ids in the layout a backbone family expects, and dynamically padded batches.

  encoder  [CLS] A [SEP]            [CLS] A [SEP] B [SEP]    token types 0 ... 0 1 ... 1 ('segments')
  decoder  [BOS] A <eos>            [BOS] A <sep> B <eos>    [BOS] only if the tokenizer has one

Pairs are truncated longest-first to ``max_length`` (special tokens included). For decoders the
sequence ends in <eos>, the token the ``last`` pooling reads (GPT-1's "extract" token).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tokenizers import Tokenizer

from zoo.batch import SpecialTokens
from zoo.benchmarks.data import Example
from zoo.errors import DataError
from zoo.family import Family
from zoo.models.attention import AttentionLayout


@dataclass
class Encoded:
    """Token ids of one split (variable length), their segment ids, and labels."""

    input_ids: list[np.ndarray]  # each (T_i,) int64
    token_type_ids: list[np.ndarray] | None  # each (T_i,) int64; None without segments
    labels: np.ndarray | None  # (N,) int64 class ids or float32 targets; None when unlabelled
    truncated: int = 0  # examples that had to be shortened

    def __len__(self) -> int:
        return len(self.input_ids)


def plain_tokenizer(tokenizer: Tokenizer) -> Tokenizer:
    """A copy without padding or truncation configured (the saved tokenizer may have either)."""
    tok = Tokenizer.from_str(tokenizer.to_str())
    tok.no_padding()
    tok.no_truncation()
    return tok


def truncate_pair(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """Longest-first truncation: shorten the longer text until both fit (ties cut the second)."""
    if len_a + len_b <= budget:
        return len_a, len_b
    if len_a > len_b:
        len_a -= min(len_a - len_b, len_a + len_b - budget)
    else:
        len_b -= min(len_b - len_a, len_a + len_b - budget)
    excess = len_a + len_b - budget
    if excess > 0:  # now equally long: alternate, starting with the second
        len_b -= (excess + 1) // 2
        len_a -= excess // 2
    return max(len_a, 0), max(len_b, 0)


def encode(examples: Sequence[Example], tokenizer: Tokenizer, special: SpecialTokens, family: str,
           segments: bool, max_length: int, regression: bool = False) -> Encoded:
    """Token ids for ``examples`` (``tokenizer`` must not pad or truncate: see ``plain_tokenizer``).
    An encoder-decoder's encoder reads the decoder family's layout (text, end-of-text)."""
    family = Family.of(family).rows if family in tuple(Family) else family
    if family == Family.ENCODER:
        prefix = [special.cls] if special.cls is not None else []
        middle = end = special.separator
    elif family == Family.DECODER:
        end = special.eos if special.eos is not None else special.sep
        if end is None:
            raise DataError("the tokenizer has no end-of-text or separator token to end a decoder's input")
        prefix = [special.bos] if special.bos is not None else []
        middle = special.sep if special.sep is not None else end
    else:
        raise ValueError(f"unknown backbone family {family!r}")
    pair = any(ex.text_b is not None for ex in examples)
    n_special = len(prefix) + 1 + (1 if pair else 0)
    budget = max_length - n_special
    if budget < 2:
        raise DataError(f"max_length {max_length} leaves no room for text after {n_special} special tokens")

    ids_a = [e.ids for e in tokenizer.encode_batch([ex.text_a for ex in examples], add_special_tokens=False)]
    ids_b = ([e.ids for e in tokenizer.encode_batch([ex.text_b or "" for ex in examples], add_special_tokens=False)]
             if pair else None)
    input_ids, types, truncated = [], [] if segments else None, 0
    for i, a in enumerate(ids_a):
        if ids_b is None:
            la, lb = min(len(a), budget), 0
            b: list[int] = []
        else:
            b = ids_b[i]
            la, lb = truncate_pair(len(a), len(b), budget)
        truncated += la < len(a) or lb < len(b)
        first = prefix + a[:la] + [middle if ids_b is not None else end]
        second = b[:lb] + [end] if ids_b is not None else []
        input_ids.append(np.asarray(first + second, dtype=np.int64))
        if types is not None:
            types.append(np.asarray([0] * len(first) + [1] * len(second), dtype=np.int64))
    labels = None
    if examples and all(ex.label is not None for ex in examples):
        labels = np.asarray([ex.label for ex in examples], dtype=np.float32 if regression else np.int64)
    return Encoded(input_ids, types, labels, truncated)


@dataclass
class TaskBatch:
    """One padded batch: what ``backbone(...)`` and the head need."""

    input_ids: torch.Tensor  # (B, T) long, padded with the pad id
    layout: AttentionLayout  # doc_ids (B, T): 0 real token, -1 padding
    token_type_ids: torch.Tensor | None  # (B, T) long
    lengths: torch.Tensor  # (B,) long, real tokens per row
    labels: torch.Tensor | None  # (B,) long or float


def collate(enc: Encoded, index: Sequence[int] | np.ndarray, pad_id: int, causal: bool,
            device: torch.device | str = "cpu") -> TaskBatch:
    """Pad the rows ``index`` of ``enc`` to the longest among them (dynamic padding)."""
    rows = [enc.input_ids[i] for i in index]
    lengths = np.asarray([len(r) for r in rows], dtype=np.int64)
    batch, seq_len = len(rows), int(lengths.max())
    ids = np.full((batch, seq_len), pad_id, dtype=np.int64)
    doc_ids = np.full((batch, seq_len), -1, dtype=np.int32)
    types = np.zeros((batch, seq_len), dtype=np.int64) if enc.token_type_ids is not None else None
    for j, (i, row) in enumerate(zip(index, rows, strict=True)):
        ids[j, :len(row)] = row
        doc_ids[j, :len(row)] = 0
        if types is not None:
            types[j, :len(row)] = enc.token_type_ids[i]  # type: ignore[index]
    labels = torch.from_numpy(enc.labels[np.asarray(index)]).to(device) if enc.labels is not None else None
    return TaskBatch(
        input_ids=torch.from_numpy(ids).to(device),
        layout=AttentionLayout(causal=causal, doc_ids=torch.from_numpy(doc_ids).to(device)),
        token_type_ids=torch.from_numpy(types).to(device) if types is not None else None,
        lengths=torch.from_numpy(lengths).to(device),
        labels=labels,
    )
