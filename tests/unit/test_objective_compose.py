"""Composition: parsing, validation before allocation, order, weights, namespaces, and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zoo import registry
from zoo.errors import ConfigError, IncompatibleError, PluginError
from zoo.objectives.compose import Composite, build_objective, check_compatible
from zoo.objectives.spec import Term, parse_spec
from zoo.testing import special_tokens_for_tests, synthetic_rows, synthetic_segments, tiny_backbone
from zoo.zoo_model import ZooModel

TOKENS = special_tokens_for_tests(vocab_size=400)
BERT = registry.load("backbone", "bert")
GPT = registry.load("backbone", "gpt")


def test_parse_spec() -> None:
    assert parse_spec("mlm").composition.terms == (Term("mlm", 1.0),)
    assert parse_spec(" mlm:1.0 + nsp:0.5 ").composition.terms == (Term("mlm", 1.0), Term("nsp", 0.5))
    for bad, msg in [("", "empty"), ("mlm+", "empty part"), ("mlm:x", "'x' of 'mlm' is not a number"),
                     ("mlm:-1", "positive"), ("mlm:nan", "positive")]:
        with pytest.raises(ConfigError, match=msg):
            parse_spec(bad)


@pytest.mark.parametrize("spec,backbone,message", [
    ("mlm+mlm", BERT, r"objective 'mlm' appears twice in 'mlm\+mlm'"),
    ("nsp+sop", BERT, "nsp and sop both build sentence pairs"),
    ("mlm+span", BERT, "mlm and span both corrupt the input ids"),
    ("clm+prefix", GPT, r"different attention layouts \(clm causal, prefix prefix\)"),
    ("clm+mlm", BERT, r"different attention layouts \(clm causal, mlm bidirectional\)"),
    ("nsp", GPT, r"nsp needs segment embeddings \(capability 'segments'\) for next-sentence prediction"),
    ("mlm+nsp", GPT, "nsp needs segment embeddings"),
    ("span+sop", GPT, "sop needs segment embeddings"),
])
def test_incompatible_compositions_fail_clearly(spec: str, backbone: type, message: str) -> None:
    with pytest.raises(IncompatibleError, match=message):
        check_compatible(parse_spec(spec), backbone)
    bb = tiny_backbone(backbone, TOKENS.vocab_size)
    with pytest.raises(IncompatibleError, match=message):
        build_objective(parse_spec(spec), {}, TOKENS, bb.spec)


def test_refusal_says_what_would_work() -> None:
    with pytest.raises(IncompatibleError) as info:
        check_compatible(parse_spec("mlm+nsp"), GPT)
    msg = str(info.value)
    assert msg.startswith("objective 'mlm+nsp' cannot train backbone 'gpt': nsp needs segment embeddings")
    assert "this backbone offers bidirectional, causal, packed, prefix" in msg
    assert "try --backbone bert, or an objective for gpt: clm, " in msg and "mlm" in msg


def test_unknown_part_and_bad_config() -> None:
    with pytest.raises(PluginError, match="unknown objective 'mlmm'.*Did you mean 'mlm'"):
        check_compatible(parse_spec("mlmm+nsp"), BERT)
    spec = tiny_backbone("bert", TOKENS.vocab_size).spec
    with pytest.raises(ConfigError, match="objectives.nsp.negative_rat"):
        build_objective(parse_spec("mlm+nsp"), {"nsp": {"negative_rat": 0.5}}, TOKENS, spec)
    with pytest.raises(ConfigError, match="objectives.mlm.rate must be a number"):
        build_objective(parse_spec("mlm+nsp"), {"mlm": {"rate": "high"}}, TOKENS, spec)


@pytest.mark.parametrize("spec", ["mlm+nsp", "nsp+mlm", "mlm+sop", "span+nsp"])
def test_compatible_specs_pass(spec: str) -> None:
    check_compatible(parse_spec(spec), BERT)
    obj = build_objective(parse_spec(spec), {}, TOKENS, tiny_backbone("bert", TOKENS.vocab_size).spec)
    assert isinstance(obj, Composite)
    assert [p.role for p in obj.parts] == ["pairs", "tokens"]  # pair builders prepare first
    assert obj.unit == "segments" and obj.randomized and obj.corrupts_inputs


def test_single_objective_is_itself() -> None:
    spec = tiny_backbone("gpt", TOKENS.vocab_size).spec
    assert type(build_objective(parse_spec("clm"), {}, TOKENS, spec)).__name__ == "CausalLM"
    weighted = build_objective(parse_spec("clm:2.0"), {}, TOKENS, spec)
    assert isinstance(weighted, Composite) and weighted.weights == {"clm": 2.0}
    assert weighted.derived_metrics({"clm/loss": 1.5, "loss": 3.0}) == {"clm/ppl": pytest.approx(math.exp(1.5))}
    assert type(build_objective(parse_spec("span:1.0"), {}, TOKENS, spec)).__name__ == "SpanLM"  # span on gpt
    span = build_objective(parse_spec("span:2.0"), {}, TOKENS, spec)
    assert span.row_length(256) == span.parts[0].row_length(256) < 256
    assert not build_objective(parse_spec("clm:2.0"), {}, TOKENS, spec).randomized


def test_composite_sums_weighted_losses_with_namespaced_metrics() -> None:
    backbone = tiny_backbone("bert", TOKENS.vocab_size)
    objective = build_objective(parse_spec("nsp:0.5+mlm:2.0"), {}, TOKENS, backbone.spec)
    assert repr(objective) == "Composite(nsp:0.5 + mlm:2)"
    model = ZooModel(backbone, objective)
    assert sorted(model.heads) == ["mlm", "nsp"]
    assert {k.split(".")[1] for k in model.state_dict() if k.startswith("heads.")} == {"mlm", "nsp"}
    batch = objective.prepare(synthetic_segments(TOKENS, 8, 48), np.random.default_rng(0))
    assert set(batch.targets) == {"mlm", "nsp"} and batch.token_type_ids is not None
    batch = batch.to("cpu")
    out = model(batch)
    hidden = backbone(**batch.backbone_inputs())
    nsp = objective.parts[0].loss(model.heads["nsp"], hidden, batch)
    mlm = objective.parts[1].loss(model.heads["mlm"], hidden, batch)
    assert torch.allclose(out.loss, 0.5 * nsp.loss + 2.0 * mlm.loss)
    assert set(out.metrics) == {"loss", "mlm/loss", "mlm/acc", "nsp/loss", "nsp/acc"}
    assert torch.allclose(out.metrics["mlm/acc"], mlm.metrics["acc"])
    assert out.metric_counts["mlm/acc"] == mlm.count and out.metric_counts["nsp/acc"] == nsp.count
    assert int(out.count) == 8
    same = objective.compute(model, batch)
    assert torch.allclose(same.loss, out.loss)
    assert objective.head_flops(batch) == objective.parts[0].head_flops(batch) + objective.parts[1].head_flops(batch)


def test_composition_runs_masking_on_the_pairs() -> None:
    backbone = tiny_backbone("bert", TOKENS.vocab_size)
    objective = build_objective(parse_spec("span+nsp"), {}, TOKENS, backbone.spec)
    batch = objective.prepare(synthetic_segments(TOKENS, 16, 64, seed=1), np.random.default_rng(0))
    t = batch.targets["span"]
    pos = t["positions"][t["labels"] != -100]
    rows = np.nonzero(t["labels"] != -100)[0]
    assert not batch.special_mask[rows, pos].any()  # [CLS] / [SEP] / padding of the pair rows untouched
    assert (batch.input_ids[:, 0] == TOKENS.cls).all()


def test_rows_objective_refuses_segments_and_vice_versa() -> None:
    bert = tiny_backbone("bert", TOKENS.vocab_size)
    with pytest.raises(TypeError, match="Segments"):
        build_objective(parse_spec("nsp"), {}, TOKENS, bert.spec).prepare(synthetic_rows(TOKENS), np.random.default_rng(0))
    with pytest.raises(TypeError, match="a Batch"):
        build_objective(parse_spec("mlm"), {}, TOKENS, bert.spec).prepare(synthetic_segments(TOKENS), np.random.default_rng(0))


def test_causal_and_bidirectional_parts_conflict_even_on_a_backbone_offering_both() -> None:
    class Both(GPT):
        name = "both"
        capabilities = frozenset({"bidirectional", "causal", "prefix", "packed"})

    with pytest.raises(IncompatibleError, match=r"different attention layouts \(clm causal, mlm bidirectional\)"):
        check_compatible(parse_spec("clm+mlm"), Both)
    check_compatible(parse_spec("clm"), Both)
    check_compatible(parse_spec("mlm"), Both)


def test_backbone_passes_are_charged_per_forward() -> None:
    """A part with its own ``compute`` runs its own backbone pass; the composition charges it."""
    from zoo.objectives.base import Objective
    from zoo.objectives.compose import compose
    from zoo.testing import special_tokens_for_tests, tiny_backbone

    class OwnPass(Objective):
        name = "ownpass"

        def compute(self, model, batch):  # pragma: no cover - only its presence matters here
            raise NotImplementedError

    tokens = special_tokens_for_tests()
    spec = tiny_backbone("bert", tokens.vocab_size).spec
    mlm = registry.load("objective", "mlm")(None, tokens, spec)
    nsp = registry.load("objective", "nsp")(None, tokens, spec)
    own = OwnPass(None, tokens, spec)
    assert compose([(mlm, 1.0), (nsp, 1.0)]).backbone_passes() == 1
    assert compose([(nsp, 1.0), (own, 1.0)]).backbone_passes() == 2
    assert compose([(own, 1.0)]).backbone_passes() == 1


@pytest.mark.parametrize("spec", ["span+prefix", "prefix+span", "span:1.0+prefix:0.5"])
def test_span_on_a_decoder_is_refused_beside_another_part(spec: str) -> None:
    """span rebuilds the rows on a decoder; prefix's labels and prefix draw would no longer match them."""
    message = (r"span rebuilds every row \(new width, positions and attention layout\), so the "
               r"targets and layout of prefix would no longer match the rows; train span alone")
    with pytest.raises(IncompatibleError, match=message):
        check_compatible(parse_spec(spec), GPT)
    gpt = tiny_backbone("gpt", TOKENS.vocab_size)
    with pytest.raises(IncompatibleError, match=message):
        build_objective(parse_spec(spec), {}, TOKENS, gpt.spec)
    check_compatible(parse_spec("span:2.0"), GPT)  # alone (weighted) it is fine
    assert build_objective(parse_spec("span:2.0"), {}, TOKENS, gpt.spec).prepare(
        synthetic_rows(TOKENS, "decoder", seq_len=48), np.random.default_rng(0)).causal


def test_two_parts_drawing_a_prefix_conflict() -> None:
    from zoo.objectives.compose import conflicts
    from zoo.objectives.prefix import PrefixLM

    class OtherPrefix(PrefixLM):
        name = "prefix2"

    reason = conflicts([("prefix", PrefixLM), ("prefix2", OtherPrefix)], "decoder")
    assert reason is not None and reason.startswith("prefix and prefix2 both draw the bidirectional prefix")
    assert conflicts([("prefix", PrefixLM)], "decoder") is None


def test_composite_refuses_a_part_that_changes_the_rows_under_earlier_targets(monkeypatch) -> None:
    """A plugin that rebuilds rows without saying so is caught when it prepares, with both names."""
    from zoo.objectives import compat
    from zoo.objectives.prefix import PrefixLM
    from zoo.objectives.span import SpanCorruption

    monkeypatch.setattr(compat, "conflicts", lambda parts, family: None)  # as before the rule existed
    gpt = tiny_backbone("gpt", TOKENS.vocab_size)
    combined = Composite([(PrefixLM(None, TOKENS, gpt.spec), 1.0), (SpanCorruption(None, TOKENS, gpt.spec), 1.0)])
    rows = synthetic_rows(TOKENS, "decoder", seq_len=combined.row_length(64))
    with pytest.raises(IncompatibleError, match=r"cannot compose prefix\+span: span changed the rows from shape "
                                                r"\(8, \d+\) to \(8, \d+\) after prefix made targets"):
        combined.prepare(rows, np.random.default_rng(0))


@pytest.mark.parametrize("backbone,specs", [
    (BERT, ["mlm+nsp", "nsp+mlm", "mlm+sop", "span+nsp", "span+sop"]),
    (GPT, ["clm", "prefix", "span", "mlm"]),
])
def test_listed_compositions_still_build_and_prepare(backbone: type, specs: list[str]) -> None:
    from zoo.objectives.compose import compatible_objectives

    listed = compatible_objectives(backbone, limit=100)
    bb = tiny_backbone(backbone, TOKENS.vocab_size)
    for spec in specs:
        assert spec in listed or spec == "nsp+mlm"  # `zoo list` shows it as mlm+nsp
        check_compatible(parse_spec(spec), backbone)
        obj = build_objective(parse_spec(spec), {}, TOKENS, bb.spec)
        data = synthetic_segments(TOKENS, 4, 64) if obj.unit == "segments" else \
            synthetic_rows(TOKENS, bb.family, 4, obj.row_length(64))
        batch = obj.prepare(data, np.random.default_rng(0))
        assert batch.input_ids.shape[0] == 4
    assert not any(s in listed for s in ("span+prefix", "prefix+span"))
