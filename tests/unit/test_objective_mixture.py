"""Mixtures: the spec tree, every malformed spec, the per-step draw (reproducible, matching the shares),
head sharing by ``head_key``, metric namespaces and FLOPs charged to the part that ran."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from scipy import stats

from zoo import registry
from zoo.errors import ConfigError, IncompatibleError
from zoo.objectives.clm import CausalLM
from zoo.objectives.compose import Composite, build_objective, check_compatible
from zoo.objectives.mixture import Component, Member, Mixture, finetune_attention, trained_attention
from zoo.objectives.mlm import MaskedLM, MLMConfig
from zoo.objectives.prefix import PrefixLM
from zoo.objectives.spec import Composition, MixturePart, Term, parse_spec
from zoo.testing import (
    check_objective,
    special_tokens_for_tests,
    synthetic_rows,
    synthetic_segments,
    tiny_backbone,
)
from zoo.train.config import RunConfig
from zoo.typed_config import from_dict
from zoo.zoo_model import ZooModel

TOKENS = special_tokens_for_tests(vocab_size=400)
BERT = registry.load("backbone", "bert")
GPT = registry.load("backbone", "gpt")


def test_spec_tree() -> None:
    spec = parse_spec(" mlm + sop | clm ")
    assert spec.is_mixture and spec.names == ["mlm", "sop", "clm"]
    assert spec.parts == (MixturePart(Composition((Term("mlm"), Term("sop"))), 1.0),
                          MixturePart(Composition((Term("clm"),)), 1.0))
    assert [p.label for p in spec.parts] == ["mlm+sop", "clm"]
    weighted = parse_spec("mntp:15|clm:1")  # on a single name the number is the part's share
    assert [(p.label, p.share) for p in weighted.parts] == [("mntp", 15.0), ("clm", 1.0)]
    assert all(p.composition.single for p in weighted.parts)
    nested = parse_spec("(mlm:1+sop:0.5):3|clm")  # loss weights inside, the composition's share outside
    assert nested.parts[0] == MixturePart(Composition((Term("mlm", 1.0), Term("sop", 0.5))), 3.0)
    assert parse_spec("mlm:2+nsp").parts[0].composition.terms == (Term("mlm", 2.0), Term("nsp", 1.0))
    assert not parse_spec("mlm:2+nsp").is_mixture
    # a plain spec is one composition with its weights; a mixture is refused where one composition is asked for
    assert parse_spec(" mlm:1.0 + nsp:0.5 ").composition.terms == (Term("mlm", 1.0), Term("nsp", 0.5))
    with pytest.raises(ConfigError, match=r"objective spec 'mlm\|clm' is a mixture of 2 parts, not one composition"):
        _ = parse_spec("mlm|clm").composition


@pytest.mark.parametrize("spec,error,message", [
    ("mlm|", ConfigError, "has an empty part around '|'"),
    ("|clm", ConfigError, "has an empty part around '|'"),
    ("mlm||clm", ConfigError, "has an empty part around '|'"),
    ("mlm+|clm", ConfigError, "has an empty part around '+' in mixture part 'mlm+'"),
    ("mlm+sop|+clm", ConfigError, "has an empty part around '+' in mixture part '+clm'"),
    ("mlm:0|clm", ConfigError, "share of 'mlm' must be a positive finite number, got 0"),
    ("mlm:-2|clm", ConfigError, "share of 'mlm' must be a positive finite number, got -2"),
    ("mlm|clm:inf", ConfigError, "share of 'clm' must be a positive finite number, got inf"),
    ("mlm|clm:nan", ConfigError, "share of 'clm' must be a positive finite number, got nan"),
    ("mlm:abc|clm", ConfigError, "share 'abc' of 'mlm' is not a number"),
    ("(mlm+sop):0|clm", ConfigError, "share of 'mlm+sop' must be a positive finite number"),
    ("(mlm+sop|clm", ConfigError, "must be '(a+b)' or '(a+b):SHARE'"),
    ("mlm+sop:x|clm", ConfigError, "weight 'x' of 'sop' is not a number"),
    ("mlm|mlm", IncompatibleError, "objective 'mlm' appears twice in 'mlm|mlm'"),
    ("mlm+sop|mlm:3", IncompatibleError, "objective 'mlm' appears twice"),
])
def test_malformed_specs_are_one_line_errors(spec: str, error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)) as info:
        parse_spec(spec)
    assert "\n" not in str(info.value) and repr(spec)[1:-1] in str(info.value)
    with pytest.raises(error, match=re.escape(message)):  # a run's config fails the same way, before any model
        from_dict(RunConfig, {"objective": spec, "backbone": "gpt"})


def test_incompatible_part_is_named() -> None:
    with pytest.raises(IncompatibleError) as info:
        check_compatible(parse_spec("mlm+nsp|clm"), GPT)
    msg = str(info.value)
    assert msg.startswith("objective 'mlm+nsp|clm' cannot train backbone 'gpt': mixture part 'mlm+nsp': ")
    assert "\n" not in msg
    with pytest.raises(IncompatibleError, match="mixture part 'sop': sop needs"):
        build_objective(parse_spec("clm:2|sop"), {}, TOKENS, tiny_backbone(GPT, TOKENS.vocab_size).spec)
    # parts that need different data units are not an error
    check_compatible(parse_spec("mlm+sop|span"), BERT)


def _mixture(spec: str = "clm:1|span:3", backbone: type = GPT) -> tuple[Mixture, ZooModel]:
    bb = tiny_backbone(backbone, TOKENS.vocab_size)
    objective = build_objective(parse_spec(spec), {}, TOKENS, bb.spec)
    assert isinstance(objective, Mixture)
    return objective, ZooModel(bb, objective)


def test_draws_are_a_function_of_seed_and_step() -> None:
    mix, _ = _mixture()
    a = [mix.draw(7, s).label for s in range(1, 200)]
    assert a == [mix.draw(7, s).label for s in range(1, 200)]  # reproducible
    assert a[100:] == [mix.draw(7, s).label for s in range(101, 200)]  # resuming at step 101 draws the same
    assert a != [mix.draw(8, s).label for s in range(1, 200)]  # another seed, another sequence
    assert set(a) == {"clm", "span"}


@pytest.mark.parametrize("shares", [(15.0, 1.0), (1.0, 2.0, 3.0)])
def test_draws_match_the_shares(shares: tuple[float, ...]) -> None:
    """Chi-square goodness of fit of 20 000 draws against the normalised shares."""
    members = [Member(f"p{i}", CausalLM(None, TOKENS, tiny_backbone(GPT, 400).spec, name=f"p{i}"), s)
               for i, s in enumerate(shares)]
    mix = Mixture(members, TOKENS)
    n = 20_000
    labels = [mix.draw(0, s).label for s in range(1, n + 1)]
    observed = np.array([labels.count(m.label) for m in members])
    expected = np.array(shares) / sum(shares) * n
    assert stats.chisquare(observed, expected).pvalue > 1e-3, (observed, expected)
    # the check has power: the same draws do not fit swapped shares
    assert stats.chisquare(observed, expected[::-1]).pvalue < 1e-6


class _SharedMLM(MaskedLM):
    name = "shared-mlm"
    head_key = "mlm-head"


def test_heads_with_one_key_are_shared() -> None:
    gpt = tiny_backbone(GPT, TOKENS.vocab_size)
    lm = Mixture([Member("clm", CausalLM(None, TOKENS, gpt.spec), 1),
                  Member("prefix", PrefixLM(None, TOKENS, gpt.spec), 1)], TOKENS)
    assert CausalLM.head_key == PrefixLM.head_key == "lm" and set(ZooModel(gpt, lm).heads) == {"lm"}
    plain = Mixture([Member("clm", CausalLM(None, TOKENS, gpt.spec), 1),
                     Member("mlm", MaskedLM(None, TOKENS, gpt.spec), 1)], TOKENS)
    assert set(ZooModel(gpt, plain).heads) == {"clm", "mlm"}  # keys differ: each part its own head
    bb = tiny_backbone(BERT, TOKENS.vocab_size)
    shared = Mixture([Member("a", _SharedMLM(None, TOKENS, bb.spec, name="a"), 1),
                      Member("b", _SharedMLM(MLMConfig(rate=0.3), TOKENS, bb.spec, name="b"), 1)], TOKENS)
    model = ZooModel(bb, shared)
    assert set(model.heads) == {"mlm-head"}
    assert set(model.state_dict()) - set(bb.state_dict(prefix="backbone."))
    assert all(k.startswith(("backbone.", "heads.mlm-head.")) for k in model.state_dict())
    rows = synthetic_rows(TOKENS, "encoder", batch_size=2, seq_len=16)
    for label in ("a", "b"):  # both parts train the one head
        model.zero_grad()
        batch = shared.by_label[label].prepare(rows, np.random.default_rng(0))
        out = model(batch.to("cpu"))
        out.loss.backward()
        assert out.metrics[f"{label}/loss"] == out.loss.detach()
        assert all(p.grad is not None for p in model.heads["mlm-head"].parameters())


def test_each_part_brings_its_batch_metrics_and_flops() -> None:
    mix, model = _mixture("mlm+sop|span:2", BERT)
    segments = synthetic_segments(TOKENS, batch_size=4, seq_len=32)
    rows = synthetic_rows(TOKENS, "encoder", batch_size=4, seq_len=32)
    pair = mix.by_label["mlm+sop"].prepare(segments, np.random.default_rng(0))
    span = mix.by_label["span"].prepare(rows, np.random.default_rng(0))
    assert isinstance(mix.by_label["mlm+sop"].objective, Composite)
    assert pair.part == "mlm+sop" and span.part == "span"
    out = model(pair.to("cpu"))
    assert {"mlm+sop/loss", "mlm/acc", "sop/acc"} <= set(out.metrics) and "span/loss" not in out.metrics
    out = model(span.to("cpu"))
    assert set(out.metrics) >= {"span/loss"} and not any(k.startswith("mlm") for k in out.metrics)
    assert mix.head_flops(pair) == mix.by_label["mlm+sop"].objective.head_flops(pair)
    assert mix.head_flops(span) == mix.by_label["span"].objective.head_flops(span)
    with pytest.raises(TypeError, match="prepares batches through its parts"):
        mix.prepare(rows, np.random.default_rng(0))
    with pytest.raises(ValueError, match="not tagged"):
        model(rows.to("cpu"))
    torch.testing.assert_close(out.loss, out.metrics["span/loss"])
    decoder, _ = _mixture("clm|prefix:2")
    derived = decoder.derived_metrics({"prefix/loss": 2.0})
    assert derived == {"prefix/ppl": pytest.approx(np.exp(2.0))}  # only the parts that ran


@pytest.mark.parametrize("spec,family,trained,finetune", [
    ("mntp:15|clm:1", "decoder", {"mntp": "bidirectional", "clm": "causal"}, "bidirectional"),  # GPT-BERT
    ("clm", "decoder", {"clm": "causal"}, "causal"),
    ("clm", "encoder", {"clm": "causal"}, "causal"),
    ("mlm", "decoder", {"mlm": "bidirectional"}, "bidirectional"),
    ("span", "decoder", {"span": "prefix"}, "causal"),  # prefix-LM parts count as causal
    ("mlm+sop|clm", "encoder", {"mlm+sop": "bidirectional", "clm": "causal"}, "bidirectional"),
])
def test_attention_a_run_trained_and_fine_tunes_with(spec: str, family: str, trained: dict, finetune: str) -> None:
    assert trained_attention(spec, family) == trained
    assert finetune_attention(spec, family) == finetune
    assert finetune_attention(None, family) == ("causal" if family == "decoder" else "bidirectional")


class GPTBERT(Mixture):
    """The named-mixture plugin of docs/plugins.md, verbatim."""

    name = "gpt-bert"
    components = (
        Component("mntp", "mntp", share=15, config={"rate": 0.3}),
        Component("clm", "clm", share=1),
    )


def test_the_documented_mixture_plugin_conforms() -> None:
    (report,) = check_objective(GPTBERT, "gpt", batch_size=2, seq_len=32, steps=4)
    assert "mixture of mntp, clm" in report.notes[0]
    mix = GPTBERT.build(TOKENS, tiny_backbone(GPT, TOKENS.vocab_size).spec)
    assert mix.by_label["mntp"].objective.config.rate == 0.3
    assert mix.probabilities.tolist() == [15 / 16, 1 / 16]
    assert GPTBERT.incompatibility(GPT.capabilities, GPT.family) is None
