"""The conformance kit catches contract violations (each check can fail) and its fixtures are realistic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.objectives.base import LossOutput
from zoo.objectives.clm import CausalLM
from zoo.objectives.mlm import MaskedLM
from zoo.testing import (
    ConformanceError,
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


class LyingCLM(CausalLM):
    """Requires 'causal' but claims to train anything."""

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


@pytest.mark.parametrize("cls,message", [
    (StatefulMLM, "not deterministic under a seed"),
    (MutatingMLM, "modified its input"),
    (LyingCLM, r"requires \['causal', 'packed'\] but incompatibility\(\) accepts bert"),
    (UnseededMLM, "identical batches for different seeds"),
    (FrozenMLM, "gets no finite gradient"),
])
def test_kit_catches_violations(cls, message: str) -> None:
    with pytest.raises(ConformanceError, match=message):
        check_objective(cls, "bert" if cls is not LyingCLM else "gpt")


def test_kit_accepts_an_unregistered_plugin_class() -> None:
    class RenamedMLM(MaskedLM):
        name = "renamed"

    (report,) = check_objective(RenamedMLM, "bert")
    assert report.composed_with == "nsp" and report.losses[-1] < report.losses[0]


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
