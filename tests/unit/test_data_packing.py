"""Packed rows and sentence chunks over a token store."""

from __future__ import annotations

from pathlib import Path
from pydoc_data.topics import topics

import numpy as np
import pytest
from tokenizers import Tokenizer

from zoo.batch import Segments
from zoo.data import (
    RowSource,
    SegmentSource,
    TokenStore,
    build_store,
    make_source,
    special_tokens,
    train_tokenizer,
)
from zoo.errors import DataError

DOCS = [topics[k].strip() for k in sorted(topics)] + ["Tiny.", "Two words.", "北京欢迎你。"]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[TokenStore, Tokenizer]]:
    root = tmp_path_factory.mktemp("stores")
    out = {}
    for kind, size in [("wordpiece", 1500), ("bpe", 1000)]:
        tok = train_tokenizer(DOCS, kind, vocab_size=size, num_sentinels=4)
        out[kind] = (build_store(DOCS, tok, root / kind), tok)
    return out


def all_rows(src: RowSource) -> tuple:
    b = src.get(np.arange(len(src)))
    return b.input_ids, b.doc_ids, b.position_ids, b.special_mask, b.word_starts


@pytest.mark.parametrize(("kind", "family"), [("wordpiece", "encoder"), ("bpe", "decoder"), ("wordpiece", "decoder")])
@pytest.mark.parametrize("seq_len", [16, 128])
def test_rows_cover_the_store_exactly(kind: str, family: str, seq_len: int,
                                      stores: dict[str, tuple[TokenStore, Tokenizer]]) -> None:
    store, tok = stores[kind]
    sp = special_tokens(tok)
    src = make_source("rows", store, seq_len, sp, family)
    assert isinstance(src, RowSource)
    ids, docs, pos, special, words = all_rows(src)
    assert ids.shape == (len(src), seq_len) and ids.dtype == np.int64 and docs.dtype == np.int32
    end = sp.sep if family == "encoder" else (sp.eos if sp.eos is not None else sp.sep)
    stream, ends = [], 0
    for r in range(len(src)):
        real = docs[r] >= 0
        n = int(real.sum())
        assert real[:n].all() and not real[n:].any()  # padding only at the end of a row
        assert (ids[r, n:] == sp.pad).all() and special[r, n:].all() and not words[r, n:].any()
        k = docs[r, :n]
        assert k[0] == 0 and np.all(np.diff(k) >= 0) and np.all(np.diff(k) <= 1)  # 0, 1, 2, ... contiguous
        for piece in range(int(k.max()) + 1 if n else 0):
            cols = np.flatnonzero(docs[r] == piece)
            p_ids = ids[r, cols]
            assert np.array_equal(pos[r, cols], np.arange(len(cols)))  # positions restart per piece
            body = slice(None)
            if family == "encoder":
                assert p_ids[0] == sp.cls and p_ids[-1] == sp.sep
                body = slice(1, -1)
            elif p_ids[-1] == end:
                ends += 1
                body = slice(None, -1)
            assert np.array_equal(special[r, cols], np.isin(p_ids, [sp.cls, sp.sep, end, sp.pad]))
            assert not words[r, cols][special[r, cols]].any()
            content = p_ids[body]
            assert len(content) == 0 or words[r, cols[body]][0]  # a piece starts a word
            stream.append(content)
    assert np.array_equal(np.concatenate(stream), store.tokens.astype(np.int64))  # nothing lost, nothing repeated
    if family == "decoder":
        assert ends == store.num_documents()  # every document ends with the end-of-text token
    assert src.padding_fraction == pytest.approx((docs < 0).mean())


def test_pieces_never_cross_documents_and_are_not_tiny(stores: dict[str, tuple[TokenStore, Tokenizer]]) -> None:
    store, tok = stores["wordpiece"]
    src = RowSource(store, 64, special_tokens(tok), "encoder")
    doc_of = np.searchsorted(store.doc_offsets, src.piece_start, side="right") - 1
    last = src.piece_start + np.maximum(src.piece_tokens - 1, 0)
    assert np.array_equal(doc_of, np.searchsorted(store.doc_offsets, last, side="right") - 1)
    whole = src.piece_tokens == store.doc_lengths()[doc_of]
    assert (src.piece_tokens[~whole] >= src.min_piece).all()


def test_padding_is_small_and_rows_are_deterministic(stores: dict[str, tuple[TokenStore, Tokenizer]]) -> None:
    for kind, family in [("wordpiece", "encoder"), ("bpe", "decoder")]:
        store, tok = stores[kind]
        a = RowSource(store, 128, special_tokens(tok), family)
        b = RowSource(store, 128, special_tokens(tok), family)
        assert a.padding_fraction < 0.02
        for x, y in zip(all_rows(a), all_rows(b), strict=True):
            assert np.array_equal(x, y)
        batch = a.get([3, 0, 3])
        assert np.array_equal(batch.input_ids[0], batch.input_ids[2]) and batch.causal is False


def test_row_errors(stores: dict[str, tuple[TokenStore, Tokenizer]]) -> None:
    store, tok = stores["bpe"]
    with pytest.raises(DataError, match=r"encoder rows need \[CLS\] and \[SEP\]"):
        make_source("rows", store, 32, special_tokens(tok), "encoder")
    with pytest.raises(ValueError, match="unknown data unit"):
        make_source("tokens", store, 32, special_tokens(tok), "decoder")
    src = RowSource(store, 32, special_tokens(tok), "decoder")
    with pytest.raises(IndexError):
        src.get([len(src)])


def test_segments(stores: dict[str, tuple[TokenStore, Tokenizer]]) -> None:
    store, _ = stores["wordpiece"]
    seq_len = 64
    src = make_source("segments", store, seq_len, special_tokens(stores["wordpiece"][1]), "encoder", seed=3)
    assert isinstance(src, SegmentSource)
    seg = src.get(np.arange(len(src)))
    assert isinstance(seg, Segments) and seg.seq_len == seq_len and seg.source is store
    per_doc: dict[int, list[np.ndarray]] = {}
    for c in seg.chunks:
        assert 0 < sum(len(s) for s in c.sentences) <= seq_len - 3
        assert all(len(w) == len(s) and w[0] for s, w in zip(c.sentences, c.word_starts, strict=True))
        per_doc.setdefault(c.doc, []).extend(c.sentences)
    assert sorted(per_doc) == list(range(store.num_documents()))
    for d, sents in per_doc.items():  # consecutive sentences, in order, covering the document
        assert np.array_equal(np.concatenate(sents), store.document(d))
    again = SegmentSource(store, seq_len, seed=3)
    assert [c.doc for c in again.get(range(len(again))).chunks] == [c.doc for c in seg.chunks]
    assert np.array_equal(again.chunk_ptr, src.chunk_ptr)


def test_segment_short_targets(stores: dict[str, tuple[TokenStore, Tokenizer]]) -> None:
    store, _ = stores["bpe"]
    m = 128 - 3

    def early_closed(src: SegmentSource) -> float:
        """Share of chunks closed although the next unit of the same document would still fit."""
        early = total = 0
        for i in range(len(src) - 1):
            if src.chunk_doc[i] != src.chunk_doc[i + 1]:
                continue
            used = int((src.unit_end[src.chunk_ptr[i]:src.chunk_ptr[i + 1]]
                        - src.unit_start[src.chunk_ptr[i]:src.chunk_ptr[i + 1]]).sum())
            nxt = int(src.unit_end[src.chunk_ptr[i + 1]] - src.unit_start[src.chunk_ptr[i + 1]])
            early += used + nxt <= m
            total += 1
        return early / total

    assert early_closed(SegmentSource(store, 128, short_seq_prob=0.0)) == 0.0
    frac = early_closed(SegmentSource(store, 128, seed=0))
    assert 0.02 < frac < 0.15  # BERT's short_seq_prob = 0.1 (a short target can still fill up)
    assert early_closed(SegmentSource(store, 128, short_seq_prob=1.0)) > 0.6


def test_long_sentences_are_cut_for_segments(tmp_path: Path, stores: dict[str, tuple[TokenStore, Tokenizer]]) -> None:
    tok = stores["wordpiece"][1]
    store = build_store(["word " * 400 + "end.", "Short. Doc."], tok, tmp_path / "s")
    src = SegmentSource(store, 32)
    assert all(sum(map(len, c.sentences)) <= 29 for c in src.get(range(len(src))).chunks)
    with pytest.raises(ValueError, match="too short"):
        SegmentSource(store, 4)
