"""The causal scorers' context: what the backbone is actually fed, with and without a paradigm token."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer

from zoo import registry
from zoo.benchmarks.lm_scoring import Encoded, Scorer, causal_scores, score_sentences, scorers_for
from zoo.errors import ConfigError
from zoo.models.attention import AttentionLayout
from zoo.objectives.base import TiedLinear
from zoo.testing import special_tokens_for_tests, tiny_backbone

GPT = registry.load("backbone", "gpt")
S = 7  # the id of UL2's "[S]" paradigm token in these tests
TOKENS = dataclasses.replace(special_tokens_for_tests(vocab_size=400), extra={"[S]": S, "[R]": 8, "[X]": 9})
SENTENCES = [np.array([20, 21, 22]), np.array([30, 31])]


def _fed(sentinel: bool = False, paradigm: int | None = None, special=TOKENS) -> tuple[list[list[int]], list]:
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
        sums, counts = causal_scores(backbone.eval(), head, special, enc, sentinel, paradigm=paradigm)
    assert counts.tolist() == [3, 2] and np.isfinite(sums).all()
    return sorted(rows, key=len), prefixes


def test_plain_causal_context_is_the_start_token_alone() -> None:
    rows, prefixes = _fed()
    assert rows == [[5, 30, 31], [5, 20, 21, 22]] and prefixes == [None, None]  # <|endoftext|>, no prefix


def test_the_paradigm_token_follows_the_start_token_as_the_prefix() -> None:
    rows, prefixes = _fed(paradigm=S)
    assert rows == [[5, S, 30, 31], [5, S, 20, 21, 22]]
    assert sorted(prefixes, key=len) == [[True, True, False, False], [True, True, False, False, False]]


def test_the_paradigm_token_leads_the_sentinel_context() -> None:
    rows, _ = _fed(sentinel=True, paradigm=8)
    s0 = TOKENS.sentinels[0]
    assert rows == [[8, s0, 5, s0, 30, 31], [8, s0, 5, s0, 20, 21, 22]]


def test_paradigm_mode_changes_the_scores_and_the_name() -> None:
    torch.manual_seed(0)
    backbone = tiny_backbone(GPT, TOKENS.vocab_size)
    heads = {"lm": TiedLinear(backbone.input_embedding(), bias=False)}
    (scorer,) = scorers_for("ul2", "decoder", heads)
    assert scorer == Scorer("causal[S]", "causal", "lm", paradigm="[S]")
    tok = Tokenizer.from_str('{"version":"1.0","model":{"type":"WordLevel","vocab":{"a":20,"b":21,"[UNK]":1},'
                             '"unk_token":"[UNK]"},"pre_tokenizer":{"type":"Whitespace"}}')
    mode = score_sentences(scorer, backbone, heads, tok, TOKENS, ["a b a"])
    plain = score_sentences(Scorer("causal", "causal", "lm"), backbone, heads, tok, TOKENS, ["a b a"])
    assert set(mode) == {"causal[S]", "causal[S]-mean"} and mode["causal[S]"][0] != plain["causal"][0]
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
