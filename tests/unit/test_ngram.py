"""Count-model baselines for minimal pairs: interpolated Kneser-Ney against hand-computed values and its
normalisation, the length heuristic with ties, equal-length accuracy, and the rows a result gains."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from zoo.benchmarks import ngram
from zoo.benchmarks.ngram import KneserNey, equal_length_accuracy, score_pair_baselines

# three sentences over ids 0..3: "0 1 2", "0 1", "1 2 2"
TOKENS = np.array([0, 1, 2, 0, 1, 1, 2, 2])
OFFSETS = np.array([0, 3, 5, 8])
EOS = 5  # vocab_size + 1


def test_kneser_ney_hand_computed() -> None:
    """Discount 0.5. Bigrams with start symbol B and end E: (B,0) 2, (0,1) 2, (1,2) 2, (2,E) 2, (1,E) 1,
    (B,1) 1, (2,2) 1. Continuation counts of the unigrams (distinct left neighbours): 0: 1, 1: 2, 2: 2,
    E: 2; total 7, 4 types. P1(2) = 1.5/7 + 0.5 * 4/7 * 1/5 = 1.9/7; P2(2|1) = 1.5/3 + 0.5 * 2/3 * P1(2).
    Trigram (0,1,2): 1 of the 2 after (0,1), 2 types; the bigram level below it is the bigram model's
    P2(2|1) in continuation counts, here the same. Unigram model (raw counts, 8 tokens + 3 ends): 2 has 3."""
    p1 = 1.5 / 7 + 0.5 * 4 / 7 * 0.2
    p2 = 1.5 / 3 + 0.5 * 2 / 3 * p1
    assert KneserNey.fit(TOKENS, OFFSETS, 2, 4, discount=0.5).prob([1], 2) == pytest.approx(p2)
    assert KneserNey.fit(TOKENS, OFFSETS, 3, 4, discount=0.5).prob([0, 1], 2) == pytest.approx(0.25 + 0.5 * p2)
    assert KneserNey.fit(TOKENS, OFFSETS, 1, 4, discount=0.5).prob([], 2) == pytest.approx((3 - 0.5) / 11 + 0.5 * 4 / 11 * 0.2)
    # the sentence start is a context: P(0 | B) in the bigram model = (2 - 0.5)/3 + 0.5 * 2/3 * P1(0)
    p1_0 = 0.5 / 7 + 0.5 * 4 / 7 * 0.2
    assert KneserNey.fit(TOKENS, OFFSETS, 2, 4, discount=0.5).prob([], 0) == pytest.approx(1.5 / 3 + 1 / 3 * p1_0)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_kneser_ney_distributions_sum_to_one(order: int) -> None:
    rng = np.random.default_rng(order)
    lengths = rng.integers(1, 9, 60)
    tokens = rng.zipf(1.6, int(lengths.sum())) % 12
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    m = KneserNey.fit(tokens, offsets, order, 12)
    assert all(0 < lv.discount < 1 for lv in m.levels)
    for context in ([], [3], [0, 1], [11, 11], [5, 2]):  # seen and unseen contexts
        assert sum(m.prob(context, w) for w in [*range(12), 12 + 1]) == pytest.approx(1.0)


def test_sentence_logprob_is_the_sum_of_its_conditionals() -> None:
    m = KneserNey.fit(TOKENS, OFFSETS, 3, 4)
    expected = np.log([m.prob([], 1), m.prob([1], 2), m.prob([1, 2], 3), m.prob([2, 3], EOS)]).sum()
    got = m.sentence_logprobs(np.array([9, 1, 2, 3]), np.array([1, 4]))  # offsets may start anywhere
    assert got.shape == (1,) and got[0] == pytest.approx(expected)


def _word_tokenizer(words: list[str]) -> Tokenizer:
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def test_pair_baselines_counts_and_length_heuristic() -> None:
    words = ["[UNK]", "the", "cat", "cats", "sleep", "sleeps", "dog", "barks", "."]
    tok = _word_tokenizer(words)
    corpus = ["the cat sleeps .", "the cats sleep .", "the dog barks ."] * 20
    enc = [tok.encode(s).ids for s in corpus]
    tokens = np.array([i for e in enc for i in e])
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in enc])])
    pairs = {"agreement": (["the cat sleeps .", "the cats sleep .", "the dog barks ."],
                           ["the cat sleep .", "the cats sleeps .", "the dog barks . ."])}
    base = score_pair_baselines(tok, pairs, tokens, offsets)
    assert base.names == ["unigram", "bigram", "trigram", "fewer tokens"]
    assert base.outcomes["bigram"]["agreement"].tolist() == [1, 1, 1]  # agreement is a bigram fact here
    assert base.outcomes["fewer tokens"]["agreement"].tolist() == [0.5, 0.5, 1.0]  # ties count half
    equal = base.equal_length()
    assert equal["agreement"].tolist() == [True, True, False]
    acc, n = equal_length_accuracy({"agreement": np.array([1, 0, 1])}, equal)
    assert (acc, n) == (0.5, 2)


def test_add_pair_baselines_rows_and_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run gets count-model columns from its corpus; an exported model only the length rows, with a note;
    every model gets its equal-length accuracy row."""
    from zoo.benchmarks.minimal_pairs import MinimalPair, Paradigm
    from zoo.benchmarks.pairs_results import PairsModelResult, PairsResult
    from zoo.benchmarks.zeroshot import add_pair_baselines

    tok = _word_tokenizer(["[UNK]", "a", "b", "c"])
    tokens, offsets = np.array([1, 2, 1, 2, 3]), np.array([0, 2, 5])
    monkeypatch.setattr(ngram, "run_corpus", lambda path, tokenizer: (tokens, offsets))
    par = Paradigm("toy", "binding", "x", [MinimalPair("a b", "b a", "0"), MinimalPair("a b c", "a", "1")])
    run = SimpleNamespace(name="run", tokenizer=tok, tokenizer_hash="h", path="somewhere", info={}, hf=None)
    hf = SimpleNamespace(name="hf", tokenizer=tok, tokenizer_hash="h2", path="elsewhere", info={"format": "huggingface"},
                         hf=object())
    res = PairsResult("blimp", ["toy"], {"binding": ["toy"]}, {"toy": "f"}, {"toy": 2}, "data", None)
    for name in ("run", "hf"):
        res.models.append(PairsModelResult(name, None, "gpt", "clm", "id", False, ["causal"], {"causal": {"toy": 0.5}},
                                           {"causal": {"toy": "10"}}))
    add_pair_baselines(res, [run, hf], [par])
    assert list(res.baselines) == ["unigram (run tokens)", "bigram (run tokens)", "trigram (run tokens)",
                                   "fewer tokens (run tokens)", "fewer tokens (hf tokens)"]
    assert res.baselines["fewer tokens (hf tokens)"] == {"toy": 0.25}  # a tie, then the longer good sentence
    assert res.equal_length == {"run": {"causal": 1.0}, "hf": {"causal": 1.0}} and res.equal_pairs["run"] == 1
    assert res.baseline_notes == ["No count models for hf: an exported model carries no corpus."]
    assert res.baseline_tokenizers == {  # which tokenizer each column used, for the comparison report
        "h": {"label": "run tokens", "baselines": list(res.baselines)[:4], "equal_pairs": 1},
        "h2": {"label": "hf tokens", "baselines": ["fewer tokens (hf tokens)"], "equal_pairs": 1}}
    columns, rows = res.table()
    assert columns[-5:] == list(res.baselines) and rows[-1][0] == "equal-length pairs (1)"
    assert res.to_dict()["baselines"]["fewer tokens (hf tokens)"]["equal_length"] == 0.5
    from zoo.benchmarks.pairs_results import pairs_result_from_dict

    back = pairs_result_from_dict(res.to_dict())  # bench.json -> bench.md keeps the baseline columns
    assert back.table() == res.table() and back.baseline_tokenizers == res.baseline_tokenizers


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="order must be one of"):
        KneserNey.fit(TOKENS, OFFSETS, 4, 4)
    with pytest.raises(ValueError, match="token ids must be in"):
        KneserNey.fit(TOKENS, OFFSETS, 2, 2)
    with pytest.raises(ValueError, match="at least one training sentence"):
        KneserNey.fit(np.zeros(0, int), np.zeros(1, int), 2, 4)
