"""Chinese whole-word masking: word starts from jieba stored with the token store, and MLM masking
whole segmenter words at BERT's rate and 80/10/10 split (checked statistically on real zhwiki text)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from zoo.batch import Batch
from zoo.data import RowSource, special_tokens, train_tokenizer
from zoo.data.segment import get_segmenter
from zoo.data.store import cached_store
from zoo.errors import DataError
from zoo.objectives.mlm import MaskedLM, MLMConfig, word_groups
from zoo.train.build import build_backbone
from zoo.train.resolve import resolve


def test_missing_jieba_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jieba", None)  # import jieba -> ImportError
    with pytest.raises(DataError, match=r"pip install 'objective-zoo\[zh\]'"):
        get_segmenter("jieba")
    with pytest.raises(DataError, match="not a word segmenter"):
        get_segmenter("thulac")
    assert get_segmenter("none") is None


@pytest.fixture(scope="module")
def zh(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """60 zhwiki articles, a WordPiece tokenizer trained on them, and stores with and without jieba."""
    jieba = pytest.importorskip("jieba", reason="jieba not installed (pip install 'objective-zoo[zh]')")
    docs = (shared_data / "corpus" / "zh" / "zhwiki_sampled.txt").read_text(encoding="utf-8").splitlines()[:60]
    tok = train_tokenizer(docs, "wordpiece", vocab_size=3000, num_sentinels=0)
    seg = get_segmenter("jieba")
    cache = str(tmp_path_factory.mktemp("zh-cache"))  # module scope: built before $ZOO_CACHE_DIR is set
    plain, _ = cached_store(docs, tok, cache)
    store, hit = cached_store(docs, tok, cache, segmenter=seg)
    assert not hit and store.path != plain.path  # the segmenter is part of the cache key
    assert store.meta["segmenter"] == f"jieba-{jieba.__version__}"
    return docs, tok, store, plain


def test_word_starts_are_segmenter_words(zh) -> None:
    """Independently: a token starts a word iff the tokenizer starts one and a jieba word starts at its
    first character (sentence starts always do)."""
    import jieba

    docs, tok, store, plain = zh
    cutter = jieba.Tokenizer()
    merged = 0
    for d, text in enumerate(docs):
        lo, hi = store.doc_offsets[d], store.doc_offsets[d + 1]
        enc = tok.encode(text, add_special_tokens=False)
        assert enc.ids == store.tokens[lo:hi].tolist()
        word_first = {0}
        pos = 0
        for w in cutter.cut(text, HMM=True):
            word_first.add(pos)
            pos += len(w)
        assert pos == len(text)
        expected = np.array([o[0] in word_first for o in enc.offsets]) & plain.word_starts[lo:hi].astype(bool)
        sentence_first = store.sent_offsets[store.doc_sentences[d]:store.doc_sentences[d + 1]] - lo
        expected[sentence_first] = True
        assert np.array_equal(expected, store.word_starts[lo:hi].astype(bool)), d
        merged += int(plain.word_starts[lo:hi].sum() - store.word_starts[lo:hi].sum())
    assert merged > 1000  # many multi-character words: not character masking any more


def test_whole_word_masking_statistics(zh) -> None:
    _, tok, store, _ = zh
    special = special_tokens(tok)
    cfg = resolve({"objective": "mlm", "backbone": "bert", "size": "tiny", "objectives": {"mlm": {"whole_word": True}},
                   "data": {"segmenter": "jieba"}})
    assert cfg.data.segmenter == "jieba"
    mlm = MaskedLM(MLMConfig(whole_word=True), special, build_backbone(cfg, special.vocab_size).spec)
    rows = RowSource(store, 128, special, "encoder")
    rng = np.random.default_rng(0)
    chosen_total = candidates_total = multi = 0
    kinds = {"mask": 0, "random": 0, "same": 0}
    for start in range(0, min(len(rows), 400), 40):
        raw: Batch = rows.get(np.arange(start, min(start + 40, len(rows))))
        out = mlm.prepare(raw, rng)
        t = out.targets["mlm"]
        special_mask = out.special_mask
        for r in range(raw.input_ids.shape[0]):
            keep = t["labels"][r] != -100
            pos = t["positions"][r][keep]
            chosen = np.zeros(raw.input_ids.shape[1], dtype=bool)
            chosen[pos] = True
            cand = np.flatnonzero(~special_mask[r])
            first, end = word_groups(cand, np.asarray(raw.word_starts[r], dtype=bool))
            for a, z in zip(first, end, strict=True):
                got = chosen[cand[a:z]]
                assert got.all() or not got.any()  # a segmenter word is masked entirely or not at all
                multi += int(got.all() and z - a > 1)
            chosen_total += len(pos)
            candidates_total += len(cand)
            new, old = out.input_ids[r][pos], raw.input_ids[r][pos]
            kinds["mask"] += int((new == special.mask).sum())
            kinds["same"] += int((new == old).sum())
            kinds["random"] += int(((new != old) & (new != special.mask)).sum())
    assert multi > 200  # multi-character words were masked whole
    rate = chosen_total / candidates_total
    assert 0.145 < rate <= 0.151, rate
    n = chosen_total
    for kind, p in (("mask", 0.8), ("random", 0.1), ("same", 0.1)):
        sd = (p * (1 - p) / n) ** 0.5
        assert abs(kinds[kind] / n - p) < 4 * sd + 1e-3, (kind, kinds[kind] / n)
