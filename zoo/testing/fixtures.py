"""Fixtures plugin tests need: made-up special tokens, in-memory documents, packed rows and
segments as the data pipeline makes them, and tiny backbones."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from zoo import registry
from zoo.batch import Batch, Chunk, Segments, SpecialTokens
from zoo.family import Family
from zoo.models.base import Backbone
from zoo.objectives.common import unmaskable_ids

FAMILIES = tuple(f.value for f in Family)


def special_tokens_for_tests(vocab_size: int = 512, num_sentinels: int = 32) -> SpecialTokens:
    """Special tokens of a made-up vocabulary: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4,
    end-of-text 5, and ``num_sentinels`` sentinels at the top of the vocabulary (T5 style:
    <extra_id_0> is the last id)."""
    if vocab_size < 6 + num_sentinels + 16:
        raise ValueError(f"vocab_size {vocab_size} leaves too few ordinary tokens")
    sentinels = tuple(vocab_size - 1 - i for i in range(num_sentinels))
    return SpecialTokens(vocab_size=vocab_size, pad=0, unk=1, cls=2, sep=3, mask=4, eos=5, sentinels=sentinels)


class InMemorySource:
    """A ``DocumentSource`` over documents held in memory: a list of documents, each a list of sentences."""

    def __init__(self, documents: Sequence[Sequence[Sequence[int]]],
                 word_starts: Sequence[Sequence[Sequence[bool]]] | None = None) -> None:
        self.documents = [[np.asarray(s, dtype=np.int64) for s in doc] for doc in documents]
        if word_starts is None:
            self.word_starts = [[np.ones(len(s), dtype=bool) for s in doc] for doc in self.documents]
        else:
            self.word_starts = [[np.asarray(w, dtype=bool) for w in doc] for doc in word_starts]

    def num_documents(self) -> int:
        return len(self.documents)

    def document_sentences(self, doc: int) -> list[np.ndarray]:
        return self.documents[doc]

    def document_word_starts(self, doc: int) -> list[np.ndarray]:
        return self.word_starts[doc]

    def tokens(self, doc: int) -> tuple[np.ndarray, np.ndarray]:
        """All token ids and word starts of a document."""
        sents = self.documents[doc]
        if not sents:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
        return np.concatenate(sents), np.concatenate(self.word_starts[doc])


def _ordinary_ids(tokens: SpecialTokens) -> np.ndarray:
    return np.setdiff1d(np.arange(tokens.vocab_size), np.fromiter(tokens.all_ids, dtype=np.int64))


def synthetic_source(tokens: SpecialTokens, num_documents: int = 64, seed: int = 0,
                     sentences: tuple[int, int] = (2, 12), sentence_words: tuple[int, int] = (3, 16),
                     max_word_pieces: int = 3) -> InMemorySource:
    """Random documents of sentences of words; a word is 1..max_word_pieces ordinary tokens."""
    rng = np.random.default_rng(seed)
    pool = _ordinary_ids(tokens)
    piece_p = np.array([0.6, 0.3, 0.1][:max_word_pieces] + [0.0] * max(0, max_word_pieces - 3))
    piece_p = np.where(piece_p > 0, piece_p, 0.05)
    piece_p = piece_p / piece_p.sum()
    docs, starts = [], []
    for _ in range(num_documents):
        doc, doc_starts = [], []
        for _ in range(int(rng.integers(sentences[0], sentences[1] + 1))):
            pieces = rng.choice(np.arange(1, max_word_pieces + 1), p=piece_p,
                                size=int(rng.integers(sentence_words[0], sentence_words[1] + 1)))
            ws = np.zeros(int(pieces.sum()), dtype=bool)
            ws[np.cumsum(pieces) - pieces] = True
            doc.append(pool[rng.integers(0, len(pool), size=len(ws))])
            doc_starts.append(ws)
        docs.append(doc)
        starts.append(doc_starts)
    return InMemorySource(docs, starts)


def synthetic_rows(tokens: SpecialTokens, family: str = Family.ENCODER, batch_size: int = 8, seq_len: int = 64,
                   seed: int = 0, source: InMemorySource | None = None, pad_last: bool = True) -> Batch:
    """Packed rows as the data pipeline makes them.

    encoder: ``[CLS] piece [SEP]`` pieces; decoder: documents each ending with end-of-text. A
    document that does not fit continues in the next piece; ``doc_ids`` number the pieces of a row,
    ``position_ids`` restart per piece, and with ``pad_last`` the last row ends in padding.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    rng = np.random.default_rng(seed)
    source = source or synthetic_source(tokens, seed=seed)
    encoder = Family.of(family).rows == Family.ENCODER
    order = rng.permutation(source.num_documents())
    ids = np.full((batch_size, seq_len), tokens.pad, dtype=np.int64)
    doc_ids = np.full((batch_size, seq_len), -1, dtype=np.int32)
    positions = np.zeros((batch_size, seq_len), dtype=np.int64)
    special = np.ones((batch_size, seq_len), dtype=bool)
    starts = np.zeros((batch_size, seq_len), dtype=bool)
    doc_pos, offset = 0, 0

    if not any(len(source.tokens(d)[0]) for d in range(source.num_documents())):
        raise ValueError("the source holds no tokens (every document is empty)")

    def current() -> tuple[np.ndarray, np.ndarray]:
        nonlocal doc_pos
        toks, ws = source.tokens(int(order[doc_pos % len(order)]))
        while len(toks) == 0:  # an empty document contributes nothing (as in the data pipeline)
            doc_pos += 1
            toks, ws = source.tokens(int(order[doc_pos % len(order)]))
        if not encoder:
            toks, ws = np.append(toks, tokens.eos), np.append(ws, True)
        return toks, ws

    overhead = 2 if encoder else 0
    for r in range(batch_size):
        capacity = seq_len if not (pad_last and r == batch_size - 1) else int(rng.integers(seq_len // 2, seq_len))
        t, piece = 0, 0
        while capacity - t > overhead:
            toks, ws = current()
            take = min(capacity - t - overhead, len(toks) - offset)
            body, body_ws = toks[offset:offset + take], ws[offset:offset + take].copy()
            body_ws[0] = True
            if encoder:
                body = np.concatenate([[tokens.cls], body, [tokens.sep]])
                body_ws = np.concatenate([[True], body_ws, [True]])
            n = len(body)
            ids[r, t:t + n] = body
            doc_ids[r, t:t + n] = piece
            positions[r, t:t + n] = np.arange(n)
            starts[r, t:t + n] = body_ws
            special[r, t:t + n] = np.isin(body, unmaskable_ids(tokens))
            t, piece, offset = t + n, piece + 1, offset + take
            if offset >= len(toks):
                doc_pos, offset = doc_pos + 1, 0
    return Batch(input_ids=ids, doc_ids=doc_ids, position_ids=positions,
                 token_type_ids=np.zeros_like(ids) if encoder else None,
                 special_mask=special, word_starts=starts)


def synthetic_segments(tokens: SpecialTokens, batch_size: int = 8, seq_len: int = 64, seed: int = 0,
                       source: InMemorySource | None = None) -> Segments:
    """Chunks of consecutive sentences (at most ``seq_len - 3`` tokens, at least one sentence) from
    random documents, as the data pipeline delivers them to pair builders."""
    rng = np.random.default_rng(seed)
    source = source or synthetic_source(tokens, seed=seed)
    target = seq_len - 3
    chunks = []
    for _ in range(batch_size):
        doc = int(rng.integers(0, source.num_documents()))
        sents, ws = source.document_sentences(doc), source.document_word_starts(doc)
        start = int(rng.integers(0, max(1, len(sents) - 1)))
        end, total = start, 0
        while end < len(sents) and (end == start or total + len(sents[end]) <= target):
            total += len(sents[end])
            end += 1
        chunks.append(Chunk(doc=doc, sentences=list(sents[start:end]), word_starts=list(ws[start:end])))
    return Segments(chunks=chunks, seq_len=seq_len, source=source)


def tiny_backbone(name: str | type[Backbone], vocab_size: int, hidden_size: int = 32, num_layers: int = 2,
                  num_heads: int = 2, max_positions: int = 256, seed: int = 0, **overrides: Any) -> Backbone:
    """A small backbone without dropout, from the registry (``name``) or a Backbone class."""
    cls = registry.load("backbone", name) if isinstance(name, str) else name
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    values = dict(vocab_size=vocab_size, hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads,
                  max_positions=max_positions, dropout=0.0, attention_dropout=0.0)
    values = {k: v for k, v in values.items() if k in fields}
    values.update(overrides)
    torch.manual_seed(seed)
    return cls(cls.Config(**values))
