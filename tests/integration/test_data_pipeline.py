"""build_datasets end to end: real English and Chinese corpora, the embedded default, caching,
train/validation split, tokenizer reuse."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from zoo.data import (
    DataBundle,
    DataConfig,
    RowSource,
    Sampler,
    TokenizerConfig,
    build_datasets,
    read_corpus,
    split_documents,
)
from zoo.errors import ConfigError, DataError
from zoo.typed_config import from_dict


def no_space(text: str) -> str:
    return re.sub(r"\s+", "", text)


def check_round_trip(bundle: DataBundle, data: DataConfig, kind: str) -> None:
    """Decoding a stored document gives the (normalised) corpus text back."""
    docs = read_corpus(data).documents
    train_idx, _ = split_documents(docs, data.validation_fraction)
    tok = bundle.tokenizer
    unk = bundle.special.unk
    checked = 0
    for d in range(0, bundle.train.num_documents(), max(1, bundle.train.num_documents() // 60)):
        text = docs[train_idx[d]]
        ids = bundle.train.document(d).tolist()
        if kind == "bpe":
            assert tok.decode(ids) == text  # byte-level BPE: exact
        else:
            if unk in ids:  # words over 100 characters; nothing else is unknown on the training split
                continue
            assert no_space(tok.decode(ids)) == no_space(tok.normalizer.normalize_str(text))
        checked += 1
    assert checked >= 40


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("zoo-cache"))


@pytest.mark.parametrize(("family", "kind"), [("encoder", "wordpiece"), ("decoder", "bpe")])
def test_real_english(shared_data: Path, cache: str, family: str, kind: str) -> None:
    data = DataConfig(source=str(shared_data / "corpus" / "en"), include=["inaugural/*.txt", "movie_reviews/pos/*.txt"],
                      max_documents=300, cache_dir=cache, on_decode_error="replace")  # 2005-Bush.txt has cp1252 bytes
    bundle = build_datasets(data, TokenizerConfig(), family, None)
    s = bundle.stats
    assert s["documents"] == 300 and s["valid_documents"] == 6 and s["train_documents"] == 294
    assert s["tokenizer_kind"] == ("WordPiece" if kind == "wordpiece" else "BPE") and s["vocab_size"] == 8000
    assert s["token_dtype"] == "uint16" and s["train_tokens"] > 200_000
    check_round_trip(bundle, data, kind)
    rows = bundle.source("rows", 128)
    assert isinstance(rows, RowSource) and rows.padding_fraction < 0.02
    batch = rows.get(Sampler(len(rows), 8, seed=0).next_indices())
    assert batch.input_ids.shape == (8, 128) and batch.num_tokens() > 8 * 128 * 0.9
    segs = bundle.source("segments", 128)
    assert len(segs) > 1000 and bundle.source("rows", 128, split="valid").padding_fraction < 0.05


@pytest.mark.parametrize(("family", "kind"), [("encoder", "wordpiece"), ("decoder", "bpe")])
def test_real_chinese(shared_data: Path, cache: str, family: str, kind: str) -> None:
    data = DataConfig(source=str(shared_data / "corpus" / "zh" / "zhwiki_sampled.txt"), max_documents=400,
                      cache_dir=cache)
    bundle = build_datasets(data, TokenizerConfig(vocab_size=6000), family, None)
    assert bundle.stats["documents"] == 400  # one document per line
    assert bundle.train.num_sentences > 2 * bundle.train.num_documents()  # 。！？ split sentences
    check_round_trip(bundle, data, kind)
    if kind == "wordpiece":
        longest = int(np.argmax(bundle.train.doc_lengths()))
        toks = [bundle.tokenizer.id_to_token(int(i)) for i in bundle.train.document(longest)[:50]]
        cjk = [t for t in toks if re.fullmatch(r"[\u4e00-\u9fff]", t)]
        assert len(cjk) > 10  # Chinese characters are single tokens (BERT's CJK splitting)
    assert bundle.source("rows", 128).padding_fraction < 0.02


def test_embedded_default_run_dir_and_caches(tmp_path: Path) -> None:
    data = DataConfig(cache_dir=str(tmp_path / "cache"))
    tok = TokenizerConfig(vocab_size=2000, num_sentinels=8)
    run = tmp_path / "run"
    first = build_datasets(data, tok, "encoder", run)
    assert first.stats["tokenizer_source"] == "trained" and not first.stats["cache_hit"]
    assert first.stats["source"].startswith("the embedded pydoc topics")
    assert {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"} <= {p.name for p in run.iterdir()}
    assert first.valid.num_documents() >= 1 and first.train.num_documents() > 50
    again = build_datasets(data, tok, "encoder", run)  # a resumed run
    assert again.stats["tokenizer_source"] == "run_dir" and again.stats["cache_hit"]
    assert again.train.path == first.train.path and again.stats["tokenizer_hash"] == first.stats["tokenizer_hash"]
    fresh = build_datasets(data, tok, "encoder", tmp_path / "run2")  # a new run on the same corpus
    assert fresh.stats["tokenizer_source"] == "cache" and fresh.stats["cache_hit"]
    for a, b in zip(first.source("rows", 64).get(range(20)).__dict__.values(),
                    fresh.source("rows", 64).get(range(20)).__dict__.values(), strict=True):
        if isinstance(a, np.ndarray):
            assert np.array_equal(a, b)
    # an explicit tokenizer that differs from the run's own is refused
    other = tmp_path / "other"
    build_datasets(DataConfig(cache_dir=data.cache_dir, max_documents=30), TokenizerConfig(vocab_size=900), "encoder",
                   other)
    with pytest.raises(DataError, match="differs from tokenizer.path"):
        build_datasets(data, TokenizerConfig(path=str(other)), "encoder", run)
    reused = build_datasets(data, TokenizerConfig(path=str(other / "tokenizer.json")), "encoder", None)
    assert reused.stats["tokenizer_source"] == "path" and reused.special.vocab_size <= 900
    # a run directory left with a tokenizer (stopped before its first checkpoint) is not silently reused
    # for other settings or another corpus
    with pytest.raises(DataError, match=r"tokenizer.vocab_size 2000 -> 3000.*new run directory"):
        build_datasets(data, TokenizerConfig(vocab_size=3000, num_sentinels=8), "encoder", run)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Another corpus.\n\nWith two documents.\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"data.source None -> '.*corpus.txt'"):
        build_datasets(DataConfig(source=str(corpus), cache_dir=data.cache_dir), tok, "encoder", run)


def test_changing_one_file_invalidates_the_cache(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(12):
        (corpus / f"doc{i:02d}.txt").write_text(f"Document number {i}. It has two sentences about topic {i}.\n")
    data = DataConfig(source=str(corpus), cache_dir=str(tmp_path / "cache"), validation_fraction=0.2)
    tok = TokenizerConfig(vocab_size=300, num_sentinels=2)
    run = tmp_path / "run"
    a = build_datasets(data, tok, "decoder", run)
    b = build_datasets(data, tok, "decoder", run)
    assert not a.stats["cache_hit"] and b.stats["cache_hit"]
    (corpus / "doc05.txt").write_text("Document number 5 was edited. Now it says something else entirely.\n")
    c = build_datasets(data, tok, "decoder", run)  # same tokenizer (the run's), changed content
    assert not c.stats["cache_hit"]
    texts = [c.tokenizer.decode(s.document(d).tolist()) for s in (c.train, c.valid) for d in range(s.num_documents())]
    assert "Document number 5 was edited. Now it says something else entirely." in texts
    assert not any("topic 5." in t for t in texts)


def test_validation_split() -> None:
    docs = [f"document {i}" for i in range(100)]
    train, valid = split_documents(docs, 0.05)
    assert len(valid) == 5 and sorted(train + valid) == list(range(100))
    assert split_documents(docs, 0.05) == (train, valid)  # deterministic
    # chosen by content, not position: reordering the corpus holds out the same texts
    order = np.random.default_rng(0).permutation(100)
    _, valid_shuffled = split_documents([docs[i] for i in order], 0.05)
    assert {docs[order[i]] for i in valid_shuffled} == {docs[i] for i in valid}
    assert len(split_documents(docs[:3], 0.01)[1]) == 1  # at least one held-out document
    assert split_documents(docs[:2], 0.5)[0] and split_documents(docs[:2], 0.5)[1]  # never an empty train split
    assert split_documents(docs, 0.0) == (list(range(100)), [])
    with pytest.raises(DataError, match="1 document.*validation_fraction = 0"):
        split_documents(docs[:1], 0.02)


def test_no_validation_split_and_wrong_tokenizer_kind(tmp_path: Path) -> None:
    data = DataConfig(max_documents=20, validation_fraction=0.0, cache_dir=str(tmp_path))
    bundle = build_datasets(data, TokenizerConfig(vocab_size=500), "decoder", None)
    assert bundle.valid.num_documents() == 0 and len(bundle.source("rows", 32, split="valid")) == 0
    with pytest.raises(DataError, match=r"encoder backbone needs a tokenizer with \[CLS\] and \[SEP\]"):
        build_datasets(data, TokenizerConfig(vocab_size=500, kind="bpe"), "encoder", None)


def test_configs_from_toml_tables() -> None:
    cfg = from_dict(DataConfig, {"source": "corpus/", "include": ["*.txt"], "on_decode_error": "skip",
                                 "validation_fraction": 0.1})
    assert cfg.include == ["*.txt"] and cfg.on_decode_error == "skip"
    with pytest.raises(ConfigError, match="data.doc_boundary = 'paragraph' is not allowed"):
        from_dict(DataConfig, {"doc_boundary": "paragraph"}, "data")
    with pytest.raises(ConfigError, match="validation_fraction"):
        from_dict(DataConfig, {"validation_fraction": 1.5}, "data")
    assert from_dict(TokenizerConfig, {"kind": "bpe", "vocab_size": 30522}).vocab_size == 30522
    with pytest.raises(ConfigError):
        from_dict(TokenizerConfig, {"vocab_size": 8}, "tokenizer")
