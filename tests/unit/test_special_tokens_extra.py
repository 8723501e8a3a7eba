"""Extra special tokens declared by objectives: reserved by the tokenizer, carried by saved tokenizers,
read back as ``SpecialTokens.extra``, and used as paradigm tokens by span-lm and prefix."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from zoo.errors import ConfigError
from zoo.objectives.compose import build_objective, declared_special_tokens
from zoo.objectives.spec import parse_spec
from zoo.testing import special_tokens_for_tests, synthetic_rows, tiny_backbone

TEXTS = ["the quick brown fox jumps over the lazy dog", "a stitch in time saves nine",
         "all that glitters is not gold"] * 5
UL2 = ("[R]", "[S]", "[X]")


@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
def test_tokenizer_reserves_saves_and_reports_extra_tokens(tmp_path, kind: str) -> None:
    from transformers import AutoTokenizer

    from zoo.data.tokenizer import load_tokenizer, save_tokenizer, special_tokens, train_tokenizer

    tok = train_tokenizer(TEXTS, kind, vocab_size=120, num_sentinels=2, extra_special_tokens=UL2)
    sp = special_tokens(tok)
    assert list(sp.extra) == list(UL2)
    assert set(sp.extra.values()).isdisjoint({sp.pad, sp.mask, *sp.sentinels})
    assert set(sp.extra.values()) <= sp.all_ids  # never masked or drawn as random replacements
    ids = tok.encode("[S] the fox", add_special_tokens=False).ids
    assert ids[0] == sp.extra["[S]"]  # one token, never split
    save_tokenizer(tok, tmp_path)
    assert special_tokens(load_tokenizer(tmp_path)).extra == sp.extra
    saved = json.loads((tmp_path / "special_tokens_map.json").read_text())
    assert saved["additional_special_tokens"][-3:] == list(UL2)
    hf = AutoTokenizer.from_pretrained(str(tmp_path))
    assert [hf.convert_tokens_to_ids(t) for t in UL2] == [sp.extra[t] for t in UL2]
    assert set(UL2) <= set(hf.all_special_tokens)


def test_without_extra_tokens_nothing_changes() -> None:
    from zoo.data.tokenizer import special_tokens, tokenizer_hash, train_tokenizer

    a = train_tokenizer(TEXTS, "bpe", vocab_size=120, num_sentinels=2)
    b = train_tokenizer(TEXTS, "bpe", vocab_size=120, num_sentinels=2, extra_special_tokens=())
    assert tokenizer_hash(a) == tokenizer_hash(b) and special_tokens(a).extra == {}


@pytest.mark.parametrize("bad,message", [(["[CLS]"], "already one of the standard"), (["<extra_id_3>"], "standard"),
                                         ([" [R]"], "surrounding spaces"), ([""], "non-empty")])
def test_bad_extra_tokens_are_config_errors(bad: list[str], message: str) -> None:
    from zoo.data.config import TokenizerConfig

    with pytest.raises(ValueError, match=rf"tokenizer.special_tokens: .*{message}"):
        TokenizerConfig(special_tokens=bad)


TOKENS = replace(special_tokens_for_tests(), extra={"[R]": 400, "[S]": 401, "[X]": 402})


@pytest.mark.parametrize("backbone,family", [("gpt", "decoder"), ("bert", "encoder")])
def test_span_lm_paradigm_token_leads_every_row(backbone: str, family: str) -> None:
    spec = tiny_backbone(backbone, TOKENS.vocab_size).spec
    plain = build_objective(parse_spec("span-lm"), {}, TOKENS, spec)
    obj = build_objective(parse_spec("span-lm"), {"span-lm": {"paradigm": "[R]"}}, TOKENS, spec)
    assert obj.row_length(64) == plain.row_length(64) - 1 or obj.row_length(64) < plain.row_length(64)
    rows = synthetic_rows(TOKENS, family, 4, obj.row_length(64))
    batch = obj.prepare(rows, np.random.default_rng(0))
    again = plain.prepare(rows, np.random.default_rng(0))
    assert batch.input_ids.shape[1] <= 64
    real = batch.doc_ids >= 0
    assert (batch.input_ids[:, 0] == 400).all() and batch.prefix[:, 0].all() and batch.special_mask[:, 0].all()
    # the rest is exactly the row without the paradigm token, one position later
    for b in range(4):
        n = int(real[b].sum())
        assert batch.input_ids[b, 1:n].tolist() == again.input_ids[b, :n - 1].tolist()
    assert type(obj).declared_special_tokens(obj.config) == ("[R]",)


def test_prefix_paradigm_token_joins_the_first_document() -> None:
    spec = tiny_backbone("gpt", TOKENS.vocab_size).spec
    obj = build_objective(parse_spec("prefix"), {"prefix": {"paradigm": "[S]"}}, TOKENS, spec)
    assert obj.row_length(64) == 63
    rows = synthetic_rows(TOKENS, "decoder", 4, 63)
    batch = obj.prepare(rows, np.random.default_rng(0))
    assert batch.input_ids.shape == (4, 64)
    assert (batch.input_ids[:, 0] == 401).all() and batch.prefix[:, 0].all()
    assert (batch.doc_ids[:, 0] == rows.doc_ids[:, 0]).all()
    assert (batch.input_ids[:, 1:] == rows.input_ids).all()
    first = rows.doc_ids == rows.doc_ids[:, :1]
    assert (batch.position_ids[:, 1:] == rows.position_ids + first).all() and (batch.position_ids[:, 0] == 0).all()
    assert (batch.targets["prefix"]["labels"][:, 0] == -100).all()


def test_missing_paradigm_token_is_a_clear_error() -> None:
    spec = tiny_backbone("gpt", TOKENS.vocab_size).spec
    with pytest.raises(ConfigError, match=r"objectives.span-lm.paradigm needs the special token '\[Q\]'"):
        build_objective(parse_spec("span-lm"), {"span-lm": {"paradigm": "[Q]"}}, TOKENS, spec)


def test_declared_tokens_reach_the_run_tokenizer_config() -> None:
    from zoo.train.build import tokenizer_config
    from zoo.train.resolve import resolve

    assert declared_special_tokens(parse_spec("span-lm"), {"span-lm": {"paradigm": "[X]"}}) == ("[X]",)
    assert declared_special_tokens(parse_spec("mlm+nsp")) == ()
    cfg = resolve({"objective": "prefix", "backbone": "gpt", "objectives": {"prefix": {"paradigm": "[S]"}},
                   "tokenizer": {"special_tokens": ["[R]"]}})
    assert tokenizer_config(cfg).special_tokens == ["[R]", "[S]"]


@pytest.mark.parametrize(("spec", "expected"), [
    ("prefix:1|span-lm:2", ("[S]", "[X]")),       # each part's tokens, in order of appearance
    ("(mlm+sop):3|span-lm", ("[X]",)),             # a composition as a mixture part
    ("span-lm|(prefix+clm):2", ("[X]", "[S]")),
    ("ul2", ("[R]", "[S]", "[X]")),                # a named mixture: through its components, each once
])
def test_declared_tokens_of_mixture_specs(spec: str, expected: tuple[str, ...]) -> None:
    configs = {"span-lm": {"paradigm": "[X]"}, "prefix": {"paradigm": "[S]"}}
    assert declared_special_tokens(parse_spec(spec), configs) == expected
