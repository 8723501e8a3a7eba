"""Token stores: layout, word starts, dtypes, caching."""

from __future__ import annotations

import json
import logging
import resource
from pathlib import Path
from pydoc_data.topics import topics

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from zoo.data import (
    DataConfig,
    TokenStore,
    build_store,
    cached_store,
    read_corpus,
    special_tokens,
    train_tokenizer,
)
from zoo.data.sentences import split_sentences
from zoo.data.store import token_dtype
from zoo.errors import DataError

DOCS = [topics[k].strip() for k in sorted(topics)][:30] + [
    "北京是中国的首都。它有很多名胜古迹！你去过吗？",
    "Short one. Another sentence here... And a third?! Yes.",
]


@pytest.fixture(scope="module")
def toks() -> dict[str, Tokenizer]:
    return {"wordpiece": train_tokenizer(DOCS, "wordpiece", vocab_size=1200, num_sentinels=4),
            "bpe": train_tokenizer(DOCS, "bpe", vocab_size=800, num_sentinels=4)}


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_layout_and_offsets(kind: str, toks: dict[str, Tokenizer], tmp_path: Path) -> None:
    tok = toks[kind]
    store = build_store(DOCS, tok, tmp_path / "s")
    assert store.num_documents() == len(DOCS) and store.dtype == np.uint16
    assert store.num_tokens == int(store.doc_lengths().sum()) == len(store.tokens)
    for d, doc in enumerate(DOCS):
        sents = store.document_sentences(d)
        assert len(sents) == len(split_sentences(doc))  # one entry per sentence (none tokenises to nothing)
        assert np.array_equal(np.concatenate(sents), store.document(d))
        assert store.document(d).dtype == np.int64
        expected = [tok.encode(s, add_special_tokens=False).ids for s in split_sentences(doc)]
        assert [s.tolist() for s in sents] == expected
        ws = store.document_word_starts(d)
        assert [len(w) for w in ws] == [len(s) for s in sents] and all(w[0] for w in ws)
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert meta["num_documents"] == len(DOCS) and meta["tokenizer_hash"] == store.tokenizer_hash
    if kind == "bpe":  # byte-level BPE round trip is exact
        assert all(tok.decode(store.document(d).tolist()) == doc for d, doc in enumerate(DOCS))


def test_word_starts_wordpiece(toks: dict[str, Tokenizer], tmp_path: Path) -> None:
    tok = toks["wordpiece"]
    store = build_store(DOCS, tok, tmp_path / "s")
    pieces = [tok.id_to_token(i) for i in store.tokens.tolist()]
    expected = np.array([not p.startswith("##") for p in pieces])  # BERT's whole-word rule
    assert np.array_equal(store.word_starts.astype(bool), expected)
    assert 0.3 < expected.mean() < 0.95


def test_word_starts_bpe_follow_pre_tokenisation(toks: dict[str, Tokenizer], tmp_path: Path) -> None:
    tok = toks["bpe"]
    store = build_store(DOCS, tok, tmp_path / "s")
    pre = pre_tokenizers.ByteLevel(add_prefix_space=False)
    for d, doc in enumerate(DOCS):
        for sent, ids, ws in zip(split_sentences(doc), store.document_sentences(d),
                                 store.document_word_starts(d), strict=True):
            words: list[str] = []
            for i, start in zip(ids.tolist(), ws.tolist(), strict=True):
                piece = tok.id_to_token(i)
                words.append(piece) if start else words.__setitem__(-1, words[-1] + piece)
            assert words == [w for w, _ in pre.pre_tokenize_str(sent)]


def test_special_token_text_in_the_corpus_stays_text(toks: dict[str, Tokenizer], tmp_path: Path) -> None:
    for kind, tok in toks.items():
        sp = special_tokens(tok)
        store = build_store(["Put [MASK] and [SEP] and <|endoftext|> and <extra_id_0> here."], tok, tmp_path / kind)
        assert not set(store.tokens.tolist()) & sp.all_ids
        assert tok.encode_special_tokens is False  # restored afterwards


def test_hard_cut_sentences_and_long_documents(toks: dict[str, Tokenizer], tmp_path: Path) -> None:
    # a 12,000-character "word" is cut hard inside (no whitespace); documents span several chunks
    doc = "x" * 12_000 + ". " + " ".join(f"Sentence {i} is here." for i in range(800)) + " 北京。“你好”"
    for kind, tok in toks.items():
        store = build_store([doc, "Next."], tok, tmp_path / kind)
        sents = store.document_sentences(0)
        assert len(sents) >= 800 and all(len(s) for s in sents)
        assert sum(map(len, sents)) == len(store.document(0)) == store.doc_lengths()[0]
        assert store.document_sentences(1)[0].tolist() == tok.encode("Next.", add_special_tokens=False).ids
        if kind == "bpe":
            assert tok.decode(store.document(0).tolist()) == doc
        else:
            assert tok.decode(sents[-3].tolist()) == tok.decode(tok.encode(" Sentence 799 is here.").ids)


def test_uint32_when_the_vocabulary_needs_it(tmp_path: Path) -> None:
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32
    vocab = {f"w{i}": i for i in range(70_000)}
    vocab["[UNK]"] = 70_000
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    store = build_store(["w69999 w1 w65536.", "w3 nope"], tok, tmp_path / "s")
    assert store.dtype == np.uint32
    assert store.document(0).tolist() == [69_999, 1, 70_000] and store.document(1).tolist() == [3, 70_000]


def test_empty_store_and_empty_documents(toks: dict[str, Tokenizer], tmp_path: Path) -> None:
    store = build_store([], toks["bpe"], tmp_path / "empty")
    assert store.num_documents() == 0 and store.num_tokens == 0 and len(store.tokens) == 0
    store = build_store(["", "text", "\u0007"], toks["wordpiece"], tmp_path / "some")  # control chars: no tokens
    assert store.num_documents() == 1 and store.meta["documents_without_tokens"] == 2


def test_cache_hit_invalidation_and_atomicity(toks: dict[str, Tokenizer], tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    tok = toks["wordpiece"]
    a, hit = cached_store(DOCS, tok, str(tmp_path))
    assert not hit
    b, hit = cached_store(DOCS, tok, str(tmp_path))
    assert hit and b.path == a.path
    changed = [*DOCS[:-1], DOCS[-1] + " One more sentence."]
    c, hit = cached_store(changed, tok, str(tmp_path))
    assert not hit and c.path != a.path and c.num_tokens > a.num_tokens
    d, hit = cached_store(DOCS, toks["bpe"], str(tmp_path))  # another tokenizer, another store
    assert not hit and d.path not in (a.path, c.path)
    assert not [p for p in (tmp_path / "shards").iterdir() if p.name.startswith(".")]  # no temporary leftovers
    # a damaged store is rebuilt, not served
    with open(a.path / "tokens.bin", "r+b") as f:
        f.truncate(10)
    with caplog.at_level(logging.WARNING):
        e, hit = cached_store(DOCS, tok, str(tmp_path))
    assert not hit and e.num_tokens == a.num_tokens and "damaged" in caplog.text
    with pytest.raises(DataError, match="missing or damaged"):
        TokenStore(tmp_path / "nowhere")


def test_cache_root_from_environment(toks: dict[str, Tokenizer], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "env-cache"))
    store, _ = cached_store(DOCS[:3], toks["bpe"])
    assert store.path.parent == tmp_path / "env-cache" / "shards"


@pytest.mark.slow
def test_ten_megabyte_single_line_end_to_end(toks: dict[str, Tokenizer], tmp_path: Path) -> None:
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa "
    (tmp_path / "big.txt").write_text((words * 180_000)[:10_000_000] + "\n")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    corpus = read_corpus(DataConfig(source=str(tmp_path / "big.txt")))
    store = build_store(corpus.documents, toks["wordpiece"], tmp_path / "s")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert store.num_documents() == 1 and store.num_tokens > 1_000_000
    assert store.num_sentences >= 2000  # capped at 5000 characters each
    assert grown_mb < 1000, f"a 10 MB line grew the process by {grown_mb:.0f} MB"
