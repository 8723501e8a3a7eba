"""UL2 (Tay et al., 2022) against the paper's denoiser settings: each denoiser's corruption rate and
mean span length measured on prepared rows, its paradigm token leading every row, the S-denoiser's
25% target, R / S / X a third of the steps each; and ``ul2`` goes through the public mixture API."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from zoo import registry
from zoo.batch import Batch
from zoo.errors import IncompatibleError
from zoo.objectives.common import IGNORE
from zoo.objectives.compose import build_objective, check_compatible, declared_special_tokens
from zoo.objectives.mixture import Mixture
from zoo.objectives.spec import parse_spec
from zoo.objectives.ul2 import UL2
from zoo.testing import special_tokens_for_tests, tiny_backbone
from zoo.zoo_model import ZooModel

PARADIGMS = {"[R]": 6, "[S]": 7, "[X]": 8}
TOKENS = dataclasses.replace(special_tokens_for_tests(vocab_size=8000, num_sentinels=300), extra=PARADIGMS)
# (label, paradigm, mean span length, corruption rate): the paper's seven denoisers
PAPER = [("r-3-15", "[R]", 3, 0.15), ("r-8-15", "[R]", 8, 0.15), ("x-3-50", "[X]", 3, 0.50),
         ("x-8-50", "[X]", 8, 0.50), ("x-64-15", "[X]", 64, 0.15), ("x-64-50", "[X]", 64, 0.50)]


def _ul2(backbone: str = "gpt") -> Mixture:
    objective = build_objective(parse_spec("ul2"), {}, TOKENS, tiny_backbone(backbone, TOKENS.vocab_size, max_positions=8192).spec)
    assert isinstance(objective, UL2)
    return objective


def _rows(width: int, count: int = 2, seed: int = 0) -> Batch:
    """``count`` rows of one ``width``-token document of ordinary tokens each."""
    ids = np.random.default_rng(seed).integers(16, TOKENS.vocab_size - 400, size=(count, width))
    return Batch(input_ids=ids, doc_ids=np.zeros((count, width), dtype=np.int32),
                 position_ids=np.broadcast_to(np.arange(width), (count, width)).copy())


@pytest.mark.parametrize(("label", "paradigm", "mean_span", "rate"), PAPER, ids=[p[0] for p in PAPER])
def test_span_denoisers_match_the_paper(label: str, paradigm: str, mean_span: int, rate: float) -> None:
    member = _ul2().by_label[label]
    # long enough texts for a mean over several spans, few enough spans for the sentinels
    raw = member.objective.row_length(min(4096, int(240 * mean_span / rate)))
    batch = member.prepare(_rows(raw), np.random.default_rng(1))
    assert batch.part == label
    ids, prefix = np.asarray(batch.input_ids), np.asarray(batch.prefix)
    sentinels = set(TOKENS.sentinels)
    for b in range(ids.shape[0]):
        assert ids[b, 0] == PARADIGMS[paradigm]  # the paradigm token leads the row
        real = np.asarray(batch.doc_ids)[b] >= 0
        target = ids[b][real & ~prefix[b]]
        spans = int(np.isin(target, list(sentinels)).sum())
        noise = len(target) - spans - 1  # the target: one sentinel per span, the span's tokens, end
        assert noise == int(np.round(np.float32(raw) * np.float32(rate)))  # T5's count of noise tokens
        assert abs(noise / raw - rate) < 0.005
        assert abs(noise / spans - mean_span) <= 0.05 * mean_span, (noise, spans)


def test_s_denoiser_predicts_the_last_quarter() -> None:
    member = _ul2().by_label["s-25"]
    raw = member.objective.row_length(400)
    assert raw == 399  # one position for [S]
    batch = member.prepare(_rows(raw), np.random.default_rng(0))
    ids, prefix = np.asarray(batch.input_ids), np.asarray(batch.prefix)
    labels = np.asarray(batch.targets["s-25"]["labels"])
    assert (ids[:, 0] == PARADIGMS["[S]"]).all()
    n = ids.shape[1]
    assert (prefix.sum(axis=1) == n - round(n * 0.25)).all()  # one span of L/4 at rate 25%
    assert ((labels != IGNORE).sum(axis=1) == round(n * 0.25)).all()
    assert batch.layout().prefix is not None and batch.causal


def test_ul2_shares_tokens_and_heads() -> None:
    ul2 = _ul2()
    by_paradigm: dict[str, float] = {}
    for member, p in zip(ul2.members, ul2.probabilities, strict=True):
        by_paradigm[member.label[0]] = by_paradigm.get(member.label[0], 0.0) + p
    assert by_paradigm == pytest.approx({"r": 1 / 3, "s": 1 / 3, "x": 1 / 3})
    assert len(ul2.members) == 7
    assert declared_special_tokens(parse_spec("ul2")) == ("[R]", "[S]", "[X]")  # what the run's tokenizer reserves
    bb = tiny_backbone("gpt", TOKENS.vocab_size, max_positions=8192)
    assert set(ZooModel(bb, _ul2()).heads) == {"lm"}  # every denoiser trains the one tied LM head
    assert registry.info("objective", "ul2").value == "zoo.objectives.ul2:UL2"  # an entry point like any plugin


@pytest.mark.parametrize("backbone", ["gpt", "bert"])
def test_ul2_fits_both_architectures(backbone: str) -> None:
    check_compatible(parse_spec("ul2"), registry.load("backbone", backbone))
    _ul2(backbone)


@pytest.mark.parametrize("spec", ["ul2|clm", "ul2+mlm", "clm:2|ul2"])
def test_named_mixtures_do_not_nest(spec: str) -> None:
    with pytest.raises(IncompatibleError, match="'ul2' in .* is a mixture of its own; mixtures do not nest"):
        check_compatible(parse_spec(spec), registry.load("backbone", "gpt"))
