"""NSP and SOP pair building: label balance, provenance of B, row layout, truncation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zoo.batch import Chunk, Segments
from zoo.errors import DataError
from zoo.objectives.common import IGNORE
from zoo.objectives.compose import build_objective
from zoo.objectives.pairs import Piece, truncate_pair
from zoo.objectives.spec import parse_spec
from zoo.testing import (
    InMemorySource,
    special_tokens_for_tests,
    synthetic_segments,
    synthetic_source,
    tiny_backbone,
)

TOKENS = special_tokens_for_tests(vocab_size=4000)
SPEC = tiny_backbone("bert", TOKENS.vocab_size).spec
SEQ = 128


@pytest.fixture(scope="module")
def source() -> InMemorySource:
    return synthetic_source(TOKENS, num_documents=60, seed=1)


def _sides(row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    seps = np.flatnonzero(row == TOKENS.sep)
    assert row[0] == TOKENS.cls and len(seps) == 2
    return row[1:seps[0]], row[seps[0] + 1:seps[1]]


def _find(needle: np.ndarray, hay: np.ndarray) -> list[int]:
    """Start offsets where ``needle`` occurs contiguously in ``hay``."""
    if len(needle) == 0 or len(needle) > len(hay):
        return []
    windows = np.lib.stride_tricks.sliding_window_view(hay, len(needle))
    return np.flatnonzero((windows == needle).all(1)).tolist()


def _within(observed: float, p: float, n: int) -> bool:
    return abs(observed - p) <= 3 * math.sqrt(p * (1 - p) / n)


def test_nsp_balance_provenance_and_layout(source: InMemorySource) -> None:
    objective = build_objective(parse_spec("nsp"), {}, TOKENS, SPEC)
    segments = synthetic_segments(TOKENS, batch_size=2000, seq_len=SEQ, seed=2, source=source)
    batch = objective.prepare(segments, np.random.default_rng(0))
    labels = batch.targets["nsp"]["labels"]
    assert set(np.unique(labels)) == {0, 1}
    positives = float((labels == 0).mean())
    print(f"nsp: {positives:.4f} IsNext over {len(labels)} pairs")
    assert _within(positives, 0.5, len(labels))
    docs = [source.tokens(d)[0] for d in range(source.num_documents())]
    for r in range(0, 2000, 7):
        row = batch.input_ids[r]
        a, b = _sides(row)
        n = len(a) + len(b) + 3
        own = segments.chunks[r].doc
        assert len(a) and len(b)
        assert np.array_equal(batch.doc_ids[r], np.where(np.arange(SEQ) < n, 0, -1))
        assert np.array_equal(batch.token_type_ids[r, :n], [0] * (len(a) + 2) + [1] * (len(b) + 1))
        assert (batch.token_type_ids[r, n:] == 0).all() and (row[n:] == TOKENS.pad).all()
        special = np.isin(row, [TOKENS.cls, TOKENS.sep, TOKENS.pad])
        assert np.array_equal(batch.special_mask[r], special)
        assert batch.word_starts[r, 1] and batch.word_starts[r, len(a) + 2]
        if labels[r] == 0:  # A followed by its actual continuation (these chunks fit: no truncation)
            assert _find(np.concatenate([a, b]), docs[own])
        else:  # B comes from another document, never the chunk's own
            assert not _find(b, docs[own])
            assert any(_find(b, d) for i, d in enumerate(docs) if i != own)


def test_sop_balance_and_order(source: InMemorySource) -> None:
    objective = build_objective(parse_spec("sop"), {}, TOKENS, SPEC)
    segments = synthetic_segments(TOKENS, batch_size=2000, seq_len=SEQ, seed=3, source=source)
    batch = objective.prepare(segments, np.random.default_rng(0))
    labels = batch.targets["sop"]["labels"]
    swapped = float((labels == 1).mean())
    print(f"sop: {swapped:.4f} swapped over {len(labels)} pairs")
    assert _within(swapped, 0.5, len(labels))
    for r in range(0, 2000, 7):
        a, b = _sides(batch.input_ids[r])
        doc = source.tokens(segments.chunks[r].doc)[0]
        first, second = (b, a) if labels[r] == 1 else (a, b)
        assert _find(np.concatenate([first, second]), doc), "segments must be consecutive text of one document"


def test_single_sentence_chunks_split_inside_the_sentence() -> None:
    sent = np.arange(100, 120)
    starts = np.zeros(20, dtype=bool)
    starts[[0, 4, 9, 15]] = True
    src = InMemorySource([[sent], [np.arange(200, 230)]], [[starts], [np.ones(30, dtype=bool)]])
    segments = Segments([Chunk(0, [sent], [starts])] * 200, seq_len=64, source=src)
    batch = build_objective(parse_spec("nsp"), {}, TOKENS, SPEC).prepare(segments, np.random.default_rng(0))
    labels = batch.targets["nsp"]["labels"]
    assert 0.35 < (labels == 0).mean() < 0.65
    cuts = set()
    for r in np.flatnonzero(labels == 0):
        a, b = _sides(batch.input_ids[r])
        assert np.array_equal(np.concatenate([a, b]), sent)
        cuts.add(len(a))
    assert cuts == {4, 9, 15}, "single sentences split at word boundaries"
    for r in np.flatnonzero(labels == 1):
        assert _sides(batch.input_ids[r])[1].min() >= 200


def test_unsplittable_chunks() -> None:
    src = InMemorySource([[np.array([100])], [np.arange(200, 230)]])
    segments = Segments([Chunk(0, [np.array([100])], [np.array([True])])] * 20, seq_len=32, source=src)
    nsp = build_objective(parse_spec("nsp"), {}, TOKENS, SPEC).prepare(segments, np.random.default_rng(0))
    assert (nsp.targets["nsp"]["labels"] == 1).all()  # as BERT: no continuation -> random next
    sop = build_objective(parse_spec("sop"), {}, TOKENS, SPEC).prepare(segments, np.random.default_rng(0))
    assert (sop.targets["sop"]["labels"] == IGNORE).all()  # no order to predict; tokens still there
    assert (sop.input_ids[:, :4] == [TOKENS.cls, 100, TOKENS.sep, TOKENS.sep]).all()


def test_truncation_matches_bert() -> None:
    rng = np.random.default_rng(0)
    a = Piece(np.arange(100, 150), np.ones(50, dtype=bool))
    b = Piece(np.arange(200, 220), np.ones(20, dtype=bool))
    ta, tb = truncate_pair(a, b, 40, rng)
    assert len(ta) + len(tb) == 40
    assert len(ta) == 20 and len(tb) == 20  # the longer side shrinks until both are equal, then alternate
    assert _find(ta.ids, a.ids) and np.array_equal(tb.ids, b.ids)
    fronts = []
    for seed in range(200):  # front or back at random
        ta, _ = truncate_pair(a, b, 60, np.random.default_rng(seed))
        fronts.append(int(ta.ids[0] - 100))
    assert abs(np.mean(fronts) - 5.0) < 3 * math.sqrt(10 * 0.25 / 200)  # 10 cuts, each front w.p. 1/2
    # long chunks are cut to the row
    src = InMemorySource([[np.arange(100, 200), np.arange(300, 400)], [np.arange(500, 600)]])
    seg = Segments([Chunk(0, [np.arange(100, 200), np.arange(300, 400)], [np.ones(100, bool)] * 2)] * 10,
                   seq_len=50, source=src)
    batch = build_objective(parse_spec("nsp"), {}, TOKENS, SPEC).prepare(seg, np.random.default_rng(0))
    assert batch.input_ids.shape == (10, 50) and (batch.doc_ids == 0).all()


def test_pair_errors() -> None:
    one_doc = InMemorySource([[np.arange(100, 110), np.arange(110, 120)]])
    seg = Segments([Chunk(0, one_doc.documents[0], one_doc.word_starts[0])] * 50, seq_len=32, source=one_doc)
    with pytest.raises(DataError, match="holds 1 document.*at least 2 documents"):
        build_objective(parse_spec("nsp"), {}, TOKENS, SPEC).prepare(seg, np.random.default_rng(0))
    empty = Segments([Chunk(0, [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=bool)])], seq_len=32, source=one_doc)
    with pytest.raises(DataError, match="chunk 0 .*no tokens"):
        build_objective(parse_spec("sop"), {}, TOKENS, SPEC).prepare(empty, np.random.default_rng(0))
    bad = Segments([Chunk(0, [np.arange(100, 110)], [np.ones(3, dtype=bool)])], seq_len=32, source=one_doc)
    with pytest.raises(DataError, match="10 tokens but 3 word starts"):
        build_objective(parse_spec("sop"), {}, TOKENS, SPEC).prepare(bad, np.random.default_rng(0))


def test_pair_head_matches_bert_pooler_names() -> None:
    from zoo.zoo_model import ZooModel

    backbone = tiny_backbone("bert", TOKENS.vocab_size)
    model = ZooModel(backbone, build_objective(parse_spec("sop"), {}, TOKENS, backbone.spec))
    assert sorted(k for k in model.state_dict() if k.startswith("heads.")) == [
        "heads.sop.classifier.bias", "heads.sop.classifier.weight", "heads.sop.pooler.bias", "heads.sop.pooler.weight"]
    assert set(model.heads["sop"].hf_state_dict()) == {
        "bert.pooler.dense.weight", "bert.pooler.dense.bias", "cls.seq_relationship.weight", "cls.seq_relationship.bias"}
