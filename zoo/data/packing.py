"""What objectives read: packed rows (``RowSource``) or sentence chunks (``SegmentSource``).

Rows (unit "rows")
    Documents are streamed in store order into rows of ``seq_len`` tokens. A document longer
    than the space left is split into pieces; a piece continues in the next row. Each piece has
    its own ``doc_ids`` value (0, 1, 2, ... within the row; -1 is padding) and position ids
    restarting at 0, so backbones can use block-diagonal attention.

    encoder rows   ``[CLS] piece [SEP]`` for every piece
    decoder rows   documents end with the end-of-text token (``[SEP]`` for tokenizers without one);
                   the end-of-text token belongs to the document's last piece

    A piece shorter than ``min_piece`` tokens is not started at the end of a row (nor left as the
    tail of a document): the row is padded instead. This is the only padding apart from the last
    row; ``padding_fraction`` reports it. The first content token of every piece counts as a
    word start (a piece may begin inside a word).

Segments (unit "segments", NSP/SOP)
    Chunks of consecutive sentences of one document of at most ``seq_len - 3`` tokens, built like
    BERT's ``create_pretraining_data``: with probability ``short_seq_prob`` (0.1) a chunk's
    target length is drawn uniformly from [2, seq_len - 3]. The draws come from one generator
    seeded with ``seed`` and run in document order, so the chunks are fixed at index-build time.
    Sentences longer than ``seq_len - 3`` are cut into pieces of that length first.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

import numpy as np

from zoo.batch import Batch, Chunk, Segments, SpecialTokens
from zoo.data.store import TokenStore
from zoo.errors import DataError
from zoo.family import Family


def default_min_piece(room: int) -> int:
    """Shortest piece worth starting: 8 tokens, less for very short rows."""
    return max(1, min(8, room // 8))


class RowSource:
    """Packed rows of ``seq_len`` tokens over a token store."""

    def __init__(self, store: TokenStore, seq_len: int, special: SpecialTokens, family: str,
                 min_piece: int | None = None) -> None:
        family = Family.of(family).rows  # an encoder-decoder packs the decoder's rows
        self.store, self.seq_len, self.special, self.family = store, seq_len, special, family
        if family == Family.ENCODER:
            if special.cls is None or special.sep is None:
                raise DataError("encoder rows need [CLS] and [SEP] tokens, which this tokenizer lacks; use a "
                                "WordPiece tokenizer (tokenizer.kind = 'wordpiece') or one that has them")
            self.lead, self.trail = 1, 1  # [CLS] before and [SEP] after every piece
            self.end_token = special.sep
        else:
            end = special.eos if special.eos is not None else special.sep
            if end is None:
                raise DataError("decoder rows need an end-of-text token (<|endoftext|>, </s> or [SEP]), "
                                "which this tokenizer lacks")
            self.lead, self.trail = 0, 0  # the end-of-text token counts as document content
            self.end_token = end
        room = seq_len - self.lead - self.trail
        if room < 1:
            raise ValueError(f"seq_len {seq_len} is too short for {family} rows")
        self.min_piece = default_min_piece(room) if min_piece is None else max(1, min_piece)
        self._build_index()

    def _build_index(self) -> None:
        T, o, mp = self.seq_len, self.lead + self.trail, self.min_piece
        eos = 1 if self.family == Family.DECODER else 0
        row_ptr, col, start, ntok, ends = array("q", [0]), array("q"), array("q"), array("q"), array("b")
        offsets = self.store.doc_offsets.tolist()
        used = 0  # tokens used in the current row
        rows = 0
        padding = 0

        def new_row() -> None:
            nonlocal used, rows, padding
            padding += T - used
            rows += 1
            row_ptr.append(len(col))
            used = 0

        for d in range(self.store.num_documents()):
            pos, stop = offsets[d], offsets[d + 1]
            left = stop - pos + eos  # content still to place (decoder: + end-of-text)
            while left > 0:
                free = T - used - o
                if left <= free:
                    take = left
                elif free >= mp and left - free >= mp:
                    take = free
                elif free >= mp and left - mp >= mp:
                    take = left - mp  # leave a tail of min_piece tokens, not less
                else:
                    new_row()
                    continue
                n = min(take, stop - pos)  # tokens from the store (the rest is the end-of-text)
                col.append(used)
                start.append(pos)
                ntok.append(n)
                ends.append(1 if take == left else 0)
                used += take + o
                pos += n
                left -= take
                if left > 0 or T - used - o < 1:  # a split document continues in the next row
                    new_row()
        if used:
            new_row()
        self.row_ptr = np.frombuffer(row_ptr, dtype=np.int64)
        self.piece_col = np.frombuffer(col, dtype=np.int64)
        self.piece_start = np.frombuffer(start, dtype=np.int64)
        self.piece_tokens = np.frombuffer(ntok, dtype=np.int64)
        self.piece_ends_doc = np.frombuffer(ends, dtype=np.int8).astype(bool)
        self.num_rows = rows
        self.padding_tokens = padding
        self.padding_fraction = padding / (rows * T) if rows else 0.0

    def __len__(self) -> int:
        return self.num_rows

    @property
    def num_pieces(self) -> int:
        return len(self.piece_col)

    def get(self, indices: Sequence[int] | np.ndarray) -> Batch:
        """Rows ``indices`` as a ``Batch`` of numpy arrays (B, seq_len)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_rows):
            raise IndexError(f"row index out of range [0, {self.num_rows})")
        B, T = len(idx), self.seq_len
        input_ids = np.full((B, T), self.special.pad, dtype=np.int64)
        doc_ids = np.full((B, T), -1, dtype=np.int32)
        position_ids = np.zeros((B, T), dtype=np.int64)
        special_mask = np.ones((B, T), dtype=bool)
        word_starts = np.zeros((B, T), dtype=bool)
        tokens, starts = self.store.tokens, self.store.word_starts
        arange = np.arange(T, dtype=np.int64)
        decoder = self.family == Family.DECODER
        for b, r in enumerate(idx.tolist()):
            for k, p in enumerate(range(self.row_ptr[r], self.row_ptr[r + 1])):
                c, s, n = int(self.piece_col[p]), int(self.piece_start[p]), int(self.piece_tokens[p])
                closes = self.trail or (decoder and self.piece_ends_doc[p])
                length = self.lead + n + int(closes)
                doc_ids[b, c:c + length] = k
                position_ids[b, c:c + length] = arange[:length]
                if self.lead:
                    input_ids[b, c] = self.special.cls
                body = c + self.lead
                input_ids[b, body:body + n] = tokens[s:s + n]
                word_starts[b, body:body + n] = starts[s:s + n]
                special_mask[b, body:body + n] = False
                if n:
                    word_starts[b, body] = True
                if closes:
                    input_ids[b, body + n] = self.end_token
        return Batch(input_ids=input_ids, doc_ids=doc_ids, position_ids=position_ids,
                     special_mask=special_mask, word_starts=word_starts, causal=False)

    def __repr__(self) -> str:
        return (f"RowSource(rows={self.num_rows}, seq_len={self.seq_len}, family={self.family!r}, "
                f"pieces={self.num_pieces}, padding={self.padding_fraction:.4%})")


class SegmentSource:
    """Sentence-aligned chunks of at most ``seq_len - 3`` tokens, for pair objectives."""

    def __init__(self, store: TokenStore, seq_len: int, seed: int = 0, short_seq_prob: float = 0.1) -> None:
        self.store, self.seq_len = store, seq_len
        self.max_tokens = seq_len - 3  # [CLS] A [SEP] B [SEP]
        if self.max_tokens < 2:
            raise ValueError(f"seq_len {seq_len} is too short for sentence pairs (need at least 5)")
        self.short_seq_prob = short_seq_prob
        self._build_index(seed)

    def _build_index(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        m = self.max_tokens
        unit_start, unit_end = array("q"), array("q")
        chunk_doc, chunk_ptr = array("q"), array("q", [0])
        so, ds = self.store.sent_offsets.tolist(), self.store.doc_sentences.tolist()

        def draw() -> int:
            if rng.random() < self.short_seq_prob:
                return int(rng.integers(2, m + 1))
            return m

        for d in range(self.store.num_documents()):
            target, cur = draw(), 0
            for s in range(ds[d], ds[d + 1]):
                a, z = so[s], so[s + 1]
                for u in range(a, z, m):  # a sentence longer than m becomes pieces of m tokens
                    n = min(m, z - u)
                    if cur and cur + n > target:
                        chunk_doc.append(d)
                        chunk_ptr.append(len(unit_start))
                        target, cur = draw(), 0
                    unit_start.append(u)
                    unit_end.append(u + n)
                    cur += n
            if cur:
                chunk_doc.append(d)
                chunk_ptr.append(len(unit_start))
        self.unit_start = np.frombuffer(unit_start, dtype=np.int64)
        self.unit_end = np.frombuffer(unit_end, dtype=np.int64)
        self.chunk_doc = np.frombuffer(chunk_doc, dtype=np.int64)
        self.chunk_ptr = np.frombuffer(chunk_ptr, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.chunk_doc)

    def chunk(self, i: int) -> Chunk:
        tokens, starts = self.store.tokens, self.store.word_starts
        sents, words = [], []
        for u in range(self.chunk_ptr[i], self.chunk_ptr[i + 1]):
            a, z = int(self.unit_start[u]), int(self.unit_end[u])
            sents.append(tokens[a:z].astype(np.int64))
            ws = starts[a:z].astype(bool)
            ws[0] = True
            words.append(ws)
        return Chunk(doc=int(self.chunk_doc[i]), sentences=sents, word_starts=words)

    def get(self, indices: Sequence[int] | np.ndarray) -> Segments:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"chunk index out of range [0, {len(self)})")
        return Segments(chunks=[self.chunk(i) for i in idx.tolist()], seq_len=self.seq_len, source=self.store)

    def __repr__(self) -> str:
        return f"SegmentSource(chunks={len(self)}, seq_len={self.seq_len})"


def make_source(unit: str, store: TokenStore, seq_len: int, special: SpecialTokens, family: str,
                seed: int = 0) -> RowSource | SegmentSource:
    """The data source an objective asks for: ``unit`` is 'rows' or 'segments'."""
    if unit == "rows":
        return RowSource(store, seq_len, special, family)
    if unit == "segments":
        return SegmentSource(store, seq_len, seed=seed)
    raise ValueError(f"unknown data unit {unit!r}; expected 'rows' or 'segments'")
