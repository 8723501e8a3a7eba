"""The causal scorers' context: what the backbone is actually fed, with and without a paradigm token,
and that a sentence is scored in the context the model trained in (packed rows, positions from 0)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from zoo import registry
from zoo.benchmarks.lm_scoring import (
    Encoded,
    Scorer,
    causal_scores,
    pll_scores,
    score_sentences,
    scorers_for,
    unigram_logprobs,
)
from zoo.data.packing import RowSource
from zoo.errors import ConfigError
from zoo.models.attention import AttentionLayout
from zoo.objectives.base import TiedLinear
from zoo.objectives.clm import CausalLM
from zoo.testing import special_tokens_for_tests, tiny_backbone

GPT = registry.load("backbone", "gpt")
S = 7  # the id of UL2's "[S]" paradigm token in these tests
TOKENS = dataclasses.replace(special_tokens_for_tests(vocab_size=400), extra={"[S]": S, "[R]": 8, "[X]": 9})
SENTENCES = [np.array([20, 21, 22]), np.array([30, 31])]


def _fed(sentinel: bool = False, paradigm: int | None = None, special=TOKENS, start: bool = False,
         counted: tuple[int, int] = (3, 2)) -> tuple[list[list[int]], list]:
    """(the rows the backbone received, their attention prefix masks), and the scores were computed."""
    torch.manual_seed(0)
    backbone = tiny_backbone(GPT, TOKENS.vocab_size)
    head = TiedLinear(backbone.input_embedding(), bias=False)
    rows, prefixes = [], []
    forward = backbone.forward

    def recording(ids: torch.Tensor, layout: AttentionLayout) -> torch.Tensor:
        assert layout.doc_ids is None  # a batch holds sentences of one length: no padding
        rows.extend(ids.tolist())
        prefixes.extend([None] * len(ids) if layout.prefix is None else layout.prefix.tolist())
        return forward(ids, layout)

    backbone.forward = recording  # type: ignore[method-assign]
    enc = Encoded(SENTENCES, [np.arange(len(x)) for x in SENTENCES])
    with torch.inference_mode():
        sums, counts = causal_scores(backbone.eval(), head, special, enc, sentinel, paradigm=paradigm, start=start)
    assert counts.tolist() == list(counted) and np.isfinite(sums).all()
    return sorted(rows, key=len), prefixes


def test_plain_causal_context_is_nothing_and_the_first_token_is_left_out() -> None:
    rows, prefixes = _fed(counted=(2, 1))
    assert rows == [[30, 31], [20, 21, 22]] and prefixes == [None, None]  # positions from 0, as packed rows


def test_causal_start_context_is_the_start_token() -> None:
    rows, prefixes = _fed(start=True)
    assert rows == [[5, 30, 31], [5, 20, 21, 22]] and prefixes == [None, None]  # <|endoftext|>, no prefix


def test_the_paradigm_token_leads_the_row_as_the_prefix() -> None:
    rows, prefixes = _fed(paradigm=S)  # as prefix.prepend_token trains it: position 0, no start token
    assert rows == [[S, 30, 31], [S, 20, 21, 22]]
    assert sorted(prefixes, key=len) == [[True, False, False], [True, False, False, False]]
    rows, _ = _fed(paradigm=S, start=True)
    assert rows == [[S, 5, 30, 31], [S, 5, 20, 21, 22]]


def test_the_paradigm_token_leads_the_sentinel_context() -> None:
    rows, _ = _fed(sentinel=True, paradigm=8)
    s0 = TOKENS.sentinels[0]
    assert rows == [[8, s0, 5, s0, 30, 31], [8, s0, 5, s0, 20, 21, 22]]


class _Store:
    """The part of a ``TokenStore`` that ``RowSource`` reads: documents of token ids."""

    def __init__(self, docs: list[np.ndarray]) -> None:
        self.tokens = np.concatenate(docs)
        self.word_starts = np.ones(len(self.tokens), dtype=bool)
        self.doc_offsets = np.cumsum([0, *map(len, docs)])

    def num_documents(self) -> int:
        return len(self.doc_offsets) - 1


@pytest.mark.parametrize("doc_start", [False, True])
def test_causal_score_is_what_training_computes_for_the_sentence_as_a_document(doc_start: bool) -> None:
    """The default scorer of a clm model reads it in its training context: packed with other documents,
    the sentence's training log-likelihood (its labelled positions but the end token's) is its score."""
    torch.manual_seed(0)
    backbone = tiny_backbone(GPT, TOKENS.vocab_size).eval()
    heads = {"clm": TiedLinear(backbone.input_embedding(), bias=False)}
    (scorer,) = scorers_for("clm", "decoder", heads, doc_start=doc_start)
    assert scorer.name == ("causal-start" if doc_start else "causal")
    docs = [np.array([40, 41, 42, 43, 44]), SENTENCES[0], SENTENCES[1]]
    batch = CausalLM(None, TOKENS, backbone.spec).prepare(
        RowSource(_Store(docs), 32, TOKENS, "decoder", doc_start=doc_start).get([0]), np.random.default_rng(0))
    ids, labels = torch.from_numpy(batch.input_ids), torch.from_numpy(batch.targets["clm"]["labels"])
    with torch.inference_mode():
        layout = AttentionLayout(causal=True, doc_ids=torch.from_numpy(batch.doc_ids))
        hidden = backbone(ids, layout, position_ids=torch.from_numpy(batch.position_ids))
        logp = F.log_softmax(heads["clm"](hidden), -1)[0]
        enc = Encoded(SENTENCES, [np.arange(len(x)) for x in SENTENCES])
        sums, counts = causal_scores(backbone, heads["clm"], TOKENS, enc, start=scorer.context == "start")
    doc_ids = batch.doc_ids[0]
    for k, sentence in enumerate(SENTENCES, 1):
        at = [t for t in np.flatnonzero(doc_ids == k) if labels[0, t] >= 0 and labels[0, t] != TOKENS.eos]
        assert [int(labels[0, t]) for t in at] == sentence[0 if doc_start else 1:].tolist()
        trained = sum(float(logp[t, labels[0, t]]) for t in at)
        assert sums[k - 1] == pytest.approx(trained, abs=1e-4) and counts[k - 1] == len(at)


def test_unigram_term_scores_the_first_token() -> None:
    torch.manual_seed(0)
    backbone = tiny_backbone(GPT, TOKENS.vocab_size).eval()
    head = TiedLinear(backbone.input_embedding(), bias=False)
    enc = Encoded(SENTENCES, [np.arange(len(x)) for x in SENTENCES])
    counts = np.zeros(TOKENS.vocab_size)
    counts[20], counts[30] = 9, 1
    uni = unigram_logprobs(counts)
    assert np.exp(uni).sum() == pytest.approx(1.0) and uni[20] == pytest.approx(np.log(10 / 410))
    with torch.inference_mode():
        plain, n = causal_scores(backbone, head, TOKENS, enc)
        with_first, m = causal_scores(backbone, head, TOKENS, enc, unigram=uni)
    np.testing.assert_allclose(with_first - plain, [uni[20], uni[30]])
    assert n.tolist() == [2, 1] and m.tolist() == [3, 2]


def test_scorer_choice_follows_the_training_rows() -> None:
    lm = TiedLinear(torch.nn.Embedding(400, 8), bias=False)
    assert scorers_for("clm", "decoder", {"clm": lm}) == [Scorer("causal", "causal", "clm")]
    assert scorers_for("clm", "decoder", {"clm": lm}, doc_start=True) == [
        Scorer("causal-start", "causal", "clm", context="start")]
    assert scorers_for("clm", "decoder", {"clm": lm}, causal="causal-unigram") == [
        Scorer("causal-unigram", "causal", "clm", unigram=True)]
    assert scorers_for("mntp", "decoder", {"mntp": lm})[0] == Scorer("pll-word-l2r", "pll", "mntp", 1)
    assert scorers_for("mntp", "decoder", {"mntp": lm}, doc_start=True)[0].context == "start"
    assert scorers_for("ul2", "decoder", {"lm": lm}, doc_start=True)[0].name == "causal-start[S]"
    with pytest.raises(ConfigError, match=r"--scorer must be one of causal, causal-start, causal-unigram"):
        scorers_for("clm", "decoder", {"clm": lm}, causal="causal-eos")
    with pytest.raises(ConfigError, match=r"--scorer causal: objective 'mlm' has no causal"):
        scorers_for("mlm", "encoder", {"mlm": lm}, causal="causal")


def test_pll_on_decoder_rows_has_no_leading_token() -> None:
    """A bidirectional head trained on decoder rows (no leading token) sees the sentence at positions 0..;
    read one position early (mntp), the first token has no position to be read at and is left out."""
    torch.manual_seed(0)
    backbone = tiny_backbone(GPT, TOKENS.vocab_size).eval()
    head = TiedLinear(backbone.input_embedding(), bias=False)
    rows: list[list[int]] = []
    forward = backbone.forward
    backbone.forward = lambda ids, layout: (rows.extend(ids.tolist()), forward(ids, layout))[1]  # type: ignore[method-assign]
    enc = Encoded([SENTENCES[1]], [np.arange(2)])
    with torch.inference_mode():
        _, n0 = pll_scores(backbone, head, TOKENS, enc, offset=0, context="none")
        _, n1 = pll_scores(backbone, head, TOKENS, enc, offset=1, context="none")
        _, n2 = pll_scores(backbone, head, TOKENS, enc, offset=1, context="start")
    m = TOKENS.mask
    assert rows[:2] == [[m, 31], [30, m]] and rows[-2:] == [[5, m, 31], [5, 30, m]]
    assert n0.tolist() == [2] and n1.tolist() == [1] and n2.tolist() == [2]


def test_paradigm_mode_changes_the_scores_and_the_name() -> None:
    torch.manual_seed(0)
    backbone = tiny_backbone(GPT, TOKENS.vocab_size)
    heads = {"lm": TiedLinear(backbone.input_embedding(), bias=False)}
    (scorer,) = scorers_for("ul2", "decoder", heads)
    assert scorer == Scorer("causal[S]", "causal", "lm", paradigm="[S]")
    tok = Tokenizer.from_str('{"version":"1.0","model":{"type":"WordLevel","vocab":{"a":20,"b":21,"[UNK]":1},'
                             '"unk_token":"[UNK]"},"pre_tokenizer":{"type":"Whitespace"}}')
    mode = score_sentences(scorer, backbone, heads, tok, TOKENS, ["a b a"])
    plain = score_sentences(Scorer("causal-start", "causal", "lm", context="start"), backbone, heads, tok, TOKENS,
                            ["a b a"])
    assert set(mode) == {"causal[S]", "causal[S]-mean"} and mode["causal[S]"][0] != plain["causal-start"][0]
    with pytest.raises(ConfigError, match=r"the causal\[S\] scorer needs the special token '\[S\]'"):
        score_sentences(scorer, backbone, heads, tok, dataclasses.replace(TOKENS, extra={}), ["a b a"])


def test_without_an_s_denoiser_the_first_paradigm_mode_is_scored(monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.objectives.mixture import Component, Mixture

    class RX(Mixture):
        name = "rx"
        components = (Component("r", "span-lm", 1, {"paradigm": "[R]"}), Component("x", "span-lm", 1,
                                                                                  {"paradigm": "[X]"}),
                      Component("lm", "clm", 1))

    load = registry.load
    monkeypatch.setattr(registry, "load", lambda kind, name: RX if name == "rx" else load(kind, name))
    lm = TiedLinear(torch.nn.Embedding(10, 8), bias=False)
    assert [(s.name, s.paradigm, s.sentinel) for s in scorers_for("rx", "decoder", {"lm": lm})] == [
        ("causal-sentinel[R]", "[R]", True), ("causal", "", False)]  # the plain clm part keeps its own


def test_an_objective_names_the_reading_it_trained_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """``Objective.scorer`` overrides the reading the layout implies; a name that is not registered is refused."""
    from zoo.objectives.mntp import MaskedNextTokenPrediction

    lm = TiedLinear(torch.nn.Embedding(400, 8), bias=False)
    monkeypatch.setattr(MaskedNextTokenPrediction, "scorer", "pll-original")
    assert scorers_for("mntp", "decoder", {"mntp": lm}) == [Scorer("pll-original", "pll", "mntp", 1)]
    monkeypatch.setattr(MaskedNextTokenPrediction, "scorer", "causal-start")
    assert scorers_for("mntp", "decoder", {"mntp": lm}) == [Scorer("causal-start", "causal", "mntp", 1,
                                                                    context="start")]
    monkeypatch.setattr(MaskedNextTokenPrediction, "scorer", "no-such-reading")
    with pytest.raises(ConfigError, match=r"unknown scorer 'no-such-reading'; known: causal, causal-sentinel"):
        scorers_for("mntp", "decoder", {"mntp": lm})
