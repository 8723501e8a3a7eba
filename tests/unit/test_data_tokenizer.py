"""Tokenizer training, special tokens, hashing, and loading with transformers."""

from __future__ import annotations

import json
from pathlib import Path
from pydoc_data.topics import topics

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoTokenizer, BertTokenizer, PreTrainedTokenizerFast

from zoo.data import load_tokenizer, save_tokenizer, special_tokens, tokenizer_hash, train_tokenizer
from zoo.data.config import TokenizerConfig
from zoo.data.special_names import EOT
from zoo.data.tokenizer import resolve_kind
from zoo.errors import DataError

ZH = ["北京是中国的首都。它有很多名胜古迹，比如故宫和长城。", "上海是一个国际化大都市！你去过吗？"]
TEXTS = [topics[k] for k in sorted(topics)][:40] + ZH * 3
SAMPLE = "Hello World, naïve Café déjà vu: the interpreter's __init__() 北京欢迎你！"
PAIR = "A second segment, e.g. for NSP."


@pytest.fixture(scope="module")
def wordpiece() -> Tokenizer:
    return train_tokenizer(TEXTS, "wordpiece", vocab_size=1500, num_sentinels=10)


@pytest.fixture(scope="module")
def bpe() -> Tokenizer:
    return train_tokenizer(TEXTS, "bpe", vocab_size=1000, num_sentinels=10)


def test_kind_follows_the_backbone_family() -> None:
    assert resolve_kind(TokenizerConfig(), "encoder") == "wordpiece"
    assert resolve_kind(TokenizerConfig(), "decoder") == "bpe"
    assert resolve_kind(TokenizerConfig(kind="bpe"), "encoder") == "bpe"


def test_wordpiece_special_tokens(wordpiece: Tokenizer) -> None:
    sp = special_tokens(wordpiece)
    assert (sp.pad, sp.unk, sp.cls, sp.sep, sp.mask) == (0, 1, 2, 3, 4)
    assert sp.sentinels == tuple(range(5, 15))
    assert [wordpiece.id_to_token(i) for i in sp.sentinels] == [f"<extra_id_{i}>" for i in range(10)]
    assert sp.eos is None and sp.separator == 3 and sp.vocab_size == wordpiece.get_vocab_size() == 1500


def test_bpe_special_tokens(bpe: Tokenizer) -> None:
    sp = special_tokens(bpe)
    assert bpe.id_to_token(sp.eos) == EOT and sp.separator == sp.eos
    assert bpe.id_to_token(sp.pad) == "<|pad|>" and bpe.id_to_token(sp.mask) == "<|mask|>"
    assert len(sp.sentinels) == 10 and sp.cls is None and sp.unk is None
    assert len(sp.all_ids) == 13


def test_wordpiece_normalises_like_bert(wordpiece: Tokenizer) -> None:
    tokens = wordpiece.encode(SAMPLE).tokens
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert "naive" in "".join(t.removeprefix("##") for t in tokens)  # lowercased, accents stripped
    assert "北" in tokens and "京" in tokens  # CJK characters are split
    cased = train_tokenizer(TEXTS[:10] + ["Café déjà vu"], "wordpiece", vocab_size=600, lowercase=False, num_sentinels=0)
    assert any(t.startswith("H") for t in cased.encode("Hello").tokens)
    assert "é" in "".join(cased.encode("Café").tokens)


def test_bpe_round_trip_is_exact(bpe: Tokenizer) -> None:
    for text in [SAMPLE, "  leading spaces\n\ttabs and 🦜 emoji\r\n", *ZH]:
        assert bpe.decode(bpe.encode(text).ids) == text


def test_training_is_deterministic(wordpiece: Tokenizer, bpe: Tokenizer) -> None:
    # The tokenizers WordPiece trainer alone numbers "##x" pieces in hash-map order (differs per run).
    for kind, tok, size in [("wordpiece", wordpiece, 1500), ("bpe", bpe, 1000)]:
        again = train_tokenizer(TEXTS, kind, vocab_size=size, num_sentinels=10)
        assert tokenizer_hash(again) == tokenizer_hash(tok)
        assert again.get_vocab() == tok.get_vocab()


def test_hash_is_sha256_of_canonical_json(wordpiece: Tokenizer, tmp_path: Path) -> None:
    h = tokenizer_hash(wordpiece)
    assert len(h) == 64 and int(h, 16) >= 0
    path = tmp_path / "t.json"
    wordpiece.save(str(path), pretty=True)
    assert tokenizer_hash(Tokenizer.from_file(str(path))) == h  # formatting does not matter
    other = train_tokenizer(TEXTS, "wordpiece", vocab_size=1400, num_sentinels=10)
    assert tokenizer_hash(other) != h


def test_fast_tokenizer_behaves_like_bert(wordpiece: Tokenizer, tmp_path: Path) -> None:
    path = save_tokenizer(wordpiece, tmp_path)
    ours = PreTrainedTokenizerFast(tokenizer_file=str(path))
    # the reference: transformers' own BERT tokenizer built from the same vocabulary
    ref = BertTokenizer(vocab=wordpiece.get_vocab(), do_lower_case=True)
    for args in [(SAMPLE,), (SAMPLE, PAIR), ("x", "y")]:
        a, b = ours(*args, return_token_type_ids=True), ref(*args)
        assert a["input_ids"] == b["input_ids"]
        assert a["token_type_ids"] == b["token_type_ids"] == ([0] * len(a["input_ids"]) if len(args) == 1
                                                               else a["token_type_ids"])
        assert a["attention_mask"] == b["attention_mask"]
    pair = ours(SAMPLE, PAIR, return_token_type_ids=True)
    first_sep = pair["input_ids"].index(3)
    assert pair["token_type_ids"][first_sep + 1:] == [1] * (len(pair["input_ids"]) - first_sep - 1)


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_auto_tokenizer_loads_the_saved_directory(kind: str, wordpiece: Tokenizer, bpe: Tokenizer,
                                                  tmp_path: Path) -> None:
    tok = wordpiece if kind == "wordpiece" else bpe
    save_tokenizer(tok, tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"} <= files
    assert ("vocab.txt" in files) == (kind == "wordpiece")
    auto = AutoTokenizer.from_pretrained(str(tmp_path))
    sp = special_tokens(tok)
    assert auto.pad_token_id == sp.pad and auto.mask_token_id == sp.mask
    assert auto(SAMPLE)["input_ids"] == tok.encode(SAMPLE).ids
    assert auto.convert_tokens_to_ids("<extra_id_3>") == sp.sentinels[3]
    if kind == "bpe":
        assert auto.eos_token == EOT and auto.decode(auto(SAMPLE)["input_ids"]) == SAMPLE
    else:
        assert auto.cls_token_id == 2 and auto.sep_token_id == 3
        assert json.loads((tmp_path / "tokenizer_config.json").read_text())["do_lower_case"] is True
    assert tokenizer_hash(load_tokenizer(tmp_path)) == tokenizer_hash(tok)  # directory or file
    assert tokenizer_hash(load_tokenizer(tmp_path / "tokenizer.json")) == tokenizer_hash(tok)


def test_special_tokens_of_other_tokenizers() -> None:
    # GPT-2 style: only <|endoftext|>, which also pads
    gpt2 = Tokenizer(models.BPE())
    gpt2.pre_tokenizer = pre_tokenizers.ByteLevel()
    gpt2.add_special_tokens([EOT])
    sp = special_tokens(gpt2)
    assert sp.pad == sp.eos == gpt2.token_to_id(EOT)
    # T5 style sentinels are ordered by their number, not by id
    t5 = Tokenizer(models.WordLevel({"<pad>": 0, "</s>": 1, "<unk>": 2, "a": 3}, unk_token="<unk>"))
    t5.add_special_tokens(["<extra_id_1>", "<extra_id_0>"])
    sp = special_tokens(t5)
    assert (sp.pad, sp.eos, sp.unk) == (0, 1, 2)
    assert sp.sentinels == (t5.token_to_id("<extra_id_0>"), t5.token_to_id("<extra_id_1>"))
    bare = Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>"))
    with pytest.raises(DataError, match="no padding token"):
        special_tokens(bare)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="tokenizer not found: .*tokenizer.json"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot load tokenizer"):
        load_tokenizer(tmp_path)


def test_large_vocab_trains(tmp_path: Path) -> None:
    # 30522 (BERT's size) is accepted; a small corpus simply yields fewer entries
    tok = train_tokenizer(TEXTS[:20], "wordpiece", vocab_size=30522, num_sentinels=100)
    assert 1000 < tok.get_vocab_size() <= 30522
    assert special_tokens(tok).sentinels[-1] == 104
