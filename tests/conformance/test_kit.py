"""The conformance kit catches contract violations (each check can fail) and its fixtures are realistic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo import registry
from zoo.objectives.base import LossOutput
from zoo.objectives.clm import CausalLM, next_token_labels
from zoo.objectives.mlm import MaskedLM
from zoo.objectives.nsp import NextSentencePrediction
from zoo.objectives.prefix import PrefixLM
from zoo.testing import (
    ConformanceError,
    InMemorySource,
    check_objective,
    special_tokens_for_tests,
    synthetic_rows,
    synthetic_segments,
    tiny_backbone,
)

TOKENS = special_tokens_for_tests()


class StatefulMLM(MaskedLM):
    """Keeps its own generator: the same rng seed no longer gives the same batch."""

    name = "stateful"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._rng = np.random.default_rng(0)

    def prepare(self, data, rng):
        return super().prepare(data, self._rng)


class MutatingMLM(MaskedLM):
    name = "mutating"

    def prepare(self, data, rng):
        out = super().prepare(data, rng)
        data.input_ids[:] = out.input_ids
        return out


class LyingNSP(NextSentencePrediction):
    """Requires segment embeddings but claims to train anything."""

    name = "lying"

    @classmethod
    def incompatibility(cls, capabilities, family):
        return None


class UnseededMLM(MaskedLM):
    """Claims randomness but ignores the rng."""

    name = "unseeded"

    def prepare(self, data, rng):
        return super().prepare(data, np.random.default_rng(0))


class FrozenMLM(MaskedLM):
    """Its loss never reaches the head: nothing learns."""

    name = "frozen"

    def loss(self, heads, hidden, batch):
        out = super().loss(heads, hidden.detach(), batch)
        return LossOutput(out.loss.detach().requires_grad_(), out.count, out.metrics)


class LeakyPrefix(PrefixLM):
    """Keeps the labels of prefix tokens: the positions predicting them can see them."""

    name = "leaky"

    def prepare(self, data, rng):
        out = super().prepare(data, rng)
        labels = next_token_labels(np.asarray(out.input_ids), np.asarray(out.doc_ids))
        return out.replace(targets={**out.targets, self.name: {"labels": labels}})


class NarrowCLM(CausalLM):
    """Labels one column short of the rows."""

    name = "narrow"

    def prepare(self, data, rng):
        out = super().prepare(data, rng)
        labels = out.targets[self.name]["labels"][:, :-1]
        return out.replace(targets={**out.targets, self.name: {"labels": labels}})


class RowDroppingMLM(MaskedLM):
    """Target arrays with one row fewer than the batch."""

    name = "rowdrop"

    def prepare(self, data, rng):
        out = super().prepare(data, rng)
        t = out.targets[self.name]
        return out.replace(targets={**out.targets, self.name: {k: v[:-1] for k, v in t.items()}})


@pytest.mark.parametrize("cls,message", [
    (StatefulMLM, "not deterministic under a seed"),
    (MutatingMLM, "modified its input"),
    (LyingNSP, r"requires \['bidirectional', 'segments'\] but incompatibility\(\) accepts gpt"),
    (UnseededMLM, "identical batches for different seeds"),
    (FrozenMLM, "gets no finite gradient"),
    (LeakyPrefix, r"predicts token \d+, which is in the bidirectional prefix and so visible to it"),
    (NarrowCLM, r"\['labels'\] has shape \(8, 63\) but the causal rows have shape \(8, 64\)"),
    (RowDroppingMLM, r"\['positions'\] has shape \(7, \d+\) but the batch has 8 rows"),
])
def test_kit_catches_violations(cls, message: str) -> None:
    with pytest.raises(ConformanceError, match=message):
        check_objective(cls, "gpt" if cls in (LyingNSP, LeakyPrefix, NarrowCLM) else "bert")


def test_kit_would_have_caught_span_composed_with_prefix(monkeypatch) -> None:
    """Without the composition rule, span+prefix leaked span targets through prefix's redrawn prefix."""
    from zoo.objectives import compat
    from zoo.objectives.span import SpanCorruption
    from zoo.testing.conformance import _check_composition

    monkeypatch.setattr(compat, "conflicts", lambda parts, family: None)
    gpt = registry.load("backbone", "gpt")
    span = SpanCorruption(None, TOKENS, tiny_backbone(gpt, TOKENS.vocab_size).spec)
    with pytest.raises(ConformanceError, match=r"targets\['span'\]: row \d+ position \d+ predicts token"):
        _check_composition(span, "prefix", TOKENS, gpt, None, 64, 8, 2, 3e-3, 0, "span composed with prefix")


def test_kit_composes_with_every_compatible_partner() -> None:
    from zoo.testing.conformance import _partners

    bert, gpt = registry.load("backbone", "bert"), registry.load("backbone", "gpt")
    spec = tiny_backbone(bert, TOKENS.vocab_size).spec
    mlm = MaskedLM(None, TOKENS, spec)
    assert _partners(mlm, bert)[:2] == ["nsp", "sop"]
    nsp = NextSentencePrediction(None, TOKENS, spec)
    assert _partners(nsp, bert)[0] == "mlm" and "span" in _partners(nsp, bert)
    for obj in (CausalLM, PrefixLM):
        assert _partners(obj(None, TOKENS, tiny_backbone(gpt, TOKENS.vocab_size).spec), gpt) == []


def test_synthetic_rows_skip_empty_documents() -> None:
    source = InMemorySource([[], [[10, 11, 12]], [[]], [[13, 14], [15]]])
    for family in ("encoder", "decoder"):
        rows = synthetic_rows(TOKENS, family, batch_size=3, seq_len=16, source=source)
        real = rows.input_ids[rows.doc_ids >= 0]
        assert set(real.tolist()) - set(TOKENS.all_ids) == set(range(10, 16))
    with pytest.raises(ValueError, match="every document is empty"):
        synthetic_rows(TOKENS, "encoder", source=InMemorySource([[], [[]]]))


def test_kit_accepts_an_unregistered_plugin_class() -> None:
    class RenamedMLM(MaskedLM):
        name = "renamed"

    (report,) = check_objective(RenamedMLM, "bert")
    assert report.composed_with == "nsp" and report.losses[-1] < report.losses[0]
    assert report.partners[:2] == ["nsp", "sop"]


def test_synthetic_rows_are_packed_like_the_pipeline() -> None:
    for family in ("encoder", "decoder"):
        rows = synthetic_rows(TOKENS, family, batch_size=6, seq_len=64, seed=1)
        assert rows.input_ids.shape == (6, 64) and rows.input_ids.dtype == np.int64
        assert (rows.doc_ids[-1] == -1).any() and (rows.doc_ids[:-1] >= 0).all()
        for r in range(6):
            d = rows.doc_ids[r]
            real = d >= 0
            assert (np.diff(d[real]) >= 0).all() and (np.diff(d[real]) <= 1).all()
            for piece in np.unique(d[real]):
                where = np.flatnonzero(d == piece)
                assert np.array_equal(rows.position_ids[r, where], np.arange(len(where)))
                ids = rows.input_ids[r, where]
                if family == "encoder":
                    assert ids[0] == TOKENS.cls and ids[-1] == TOKENS.sep
                    assert not np.isin(ids[1:-1], list(TOKENS.all_ids)).any()
        assert (rows.special_mask == (np.isin(rows.input_ids, list(TOKENS.all_ids)) | (rows.doc_ids < 0))).all()
        assert (rows.token_type_ids is None) == (family == "decoder")
    dec = synthetic_rows(TOKENS, "decoder", batch_size=16, seq_len=64, seed=1)
    assert (dec.input_ids == TOKENS.eos).sum() > 0


def test_synthetic_segments_are_consecutive_sentences() -> None:
    seg = synthetic_segments(TOKENS, batch_size=20, seq_len=64, seed=2)
    for chunk in seg.chunks:
        sents = seg.source.document_sentences(chunk.doc)
        first = next(i for i, s in enumerate(sents) if s is chunk.sentences[0])
        assert all(a is b for a, b in zip(chunk.sentences, sents[first:], strict=False))
        assert len(chunk.sentences) == 1 or sum(map(len, chunk.sentences)) <= 61
        assert all(len(w) == len(s) and w[0] for w, s in zip(chunk.word_starts, chunk.sentences, strict=True))


def test_tiny_backbone() -> None:
    bb = tiny_backbone("gpt", 100, hidden_size=48, num_layers=2)
    assert bb.spec.hidden_size == 48 and bb.spec.num_layers == 2 and bb.config.dropout == 0.0
    a, b = tiny_backbone("bert", 100, seed=1), tiny_backbone("bert", 100, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
