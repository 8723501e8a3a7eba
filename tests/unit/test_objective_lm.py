"""Causal and prefix LM on packed rows: labels, block-diagonal attention, prefix visibility."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zoo.errors import IncompatibleError
from zoo.objectives.common import IGNORE
from zoo.objectives.compose import build_objective, check_compatible
from zoo.objectives.spec import parse_spec
from zoo.testing import special_tokens_for_tests, synthetic_rows, tiny_backbone
from zoo.zoo_model import ZooModel

TOKENS = special_tokens_for_tests(vocab_size=500)


@pytest.fixture
def gpt():
    return tiny_backbone("gpt", TOKENS.vocab_size).eval()


def _next_token_reference(ids: np.ndarray, doc_ids: np.ndarray) -> np.ndarray:
    want = np.full(ids.shape, IGNORE)
    for b in range(ids.shape[0]):
        for t in range(ids.shape[1] - 1):
            if doc_ids[b, t] >= 0 and doc_ids[b, t] == doc_ids[b, t + 1]:
                want[b, t] = ids[b, t + 1]
    return want


def test_clm_labels_and_layout(gpt) -> None:
    rows = synthetic_rows(TOKENS, "decoder", batch_size=24, seq_len=48, seed=1)
    objective = build_objective(parse_spec("clm"), {}, TOKENS, gpt.spec)
    batch = objective.prepare(rows, np.random.default_rng(0))
    assert batch.causal and batch.prefix is None
    assert np.array_equal(batch.doc_ids, rows.doc_ids) and np.array_equal(batch.input_ids, rows.input_ids)
    labels = batch.targets["clm"]["labels"]
    assert np.array_equal(labels, _next_token_reference(rows.input_ids, rows.doc_ids))
    assert (rows.doc_ids.max(1) >= 1).any(), "rows should pack several documents"
    # the token before each end-of-text predicts it; end-of-text never predicts the next document
    eos = rows.input_ids == TOKENS.eos
    assert eos.sum() >= 4 and (labels[eos] == IGNORE).all()
    before_eos = eos[:, 1:] & (rows.doc_ids[:, 1:] == rows.doc_ids[:, :-1])
    assert (labels[:, :-1][before_eos] == TOKENS.eos).all() and before_eos.sum() >= 4
    assert not objective.randomized


def test_clm_documents_do_not_see_each_other(gpt) -> None:
    rows = synthetic_rows(TOKENS, "decoder", batch_size=2, seq_len=48, seed=1, pad_last=False)
    objective = build_objective(parse_spec("clm"), {}, TOKENS, gpt.spec)
    batch = objective.prepare(rows, np.random.default_rng(0))
    second = rows.doc_ids[0] == 1
    assert second.any()
    changed = batch.replace(input_ids=batch.input_ids.copy())
    changed.input_ids[0, rows.doc_ids[0] == 0] = 7  # rewrite the first document only
    with torch.no_grad():
        h1 = gpt(**batch.to("cpu").backbone_inputs())
        h2 = gpt(**changed.to("cpu").backbone_inputs())
    assert torch.equal(h1[0, torch.from_numpy(second)], h2[0, torch.from_numpy(second)])
    assert not torch.equal(h1[0, :3], h2[0, :3])


def test_clm_loss_counts_and_perplexity(gpt) -> None:
    objective = build_objective(parse_spec("clm"), {"clm": {"chunk_rows": 16}}, TOKENS, gpt.spec)
    model = ZooModel(gpt, objective)
    assert [k for k in model.state_dict() if k.startswith("heads.")] == []  # tied, no bias: nothing to save
    assert model.heads["clm"].weight is gpt.tok_emb.weight
    batch = objective.prepare(synthetic_rows(TOKENS, "decoder", 4, 40, seed=2), np.random.default_rng(0))
    batch = batch.to("cpu")
    out = model(batch)
    labels = batch.targets["clm"]["labels"]
    assert int(out.count) == int((labels != IGNORE).sum())
    hidden = gpt(**batch.backbone_inputs())
    ref = torch.nn.functional.cross_entropy((hidden @ gpt.tok_emb.weight.T).reshape(-1, TOKENS.vocab_size),
                                            labels.reshape(-1), ignore_index=IGNORE)
    assert torch.allclose(out.loss, ref, atol=1e-5)
    assert objective.derived_metrics({"loss": 2.0}) == {"ppl": pytest.approx(math.exp(2.0))}
    assert objective.head_flops(batch) == 2.0 * int(out.count) * 32 * TOKENS.vocab_size


def test_prefix_split_labels_and_visibility(gpt) -> None:
    rows = synthetic_rows(TOKENS, "decoder", batch_size=64, seq_len=48, seed=3)
    objective = build_objective(parse_spec("prefix"), {}, TOKENS, gpt.spec)
    batch = objective.prepare(rows, np.random.default_rng(0))
    assert batch.causal and batch.prefix.dtype == bool
    labels = batch.targets["prefix"]["labels"]
    fractions = []
    for b in range(64):
        for d in np.unique(rows.doc_ids[b][rows.doc_ids[b] >= 0]):
            where = np.flatnonzero(rows.doc_ids[b] == d)
            pre = batch.prefix[b, where]
            k = int(pre.sum())
            if len(where) >= 2:
                assert 1 <= k <= len(where) - 1 and pre[:k].all()  # a non-empty prefix at the start
                fractions.append(k / (len(where) - 1))
            want = np.full(len(where), IGNORE)
            want[k - 1:len(where) - 1] = rows.input_ids[b, where[k:]] if k else want[:0]
            if k:
                assert np.array_equal(labels[b, where], want), "targets are exactly the suffix tokens"
    assert 0.4 < np.mean(fractions) < 0.6  # split points spread over the document
    assert not batch.prefix[rows.doc_ids < 0].any()

    # visibility: a prefix token is seen by earlier prefix positions; a suffix token by no earlier one
    b = 0
    where = np.flatnonzero(rows.doc_ids[b] == 0)
    k = int(batch.prefix[b, where].sum())
    base = batch.to("cpu")
    with torch.no_grad():
        h = gpt(**base.backbone_inputs())
        ids = base.input_ids.clone()
        ids[b, where[k]] = 9  # first suffix token
        h_suffix = gpt(**base.replace(input_ids=ids).backbone_inputs())
        ids = base.input_ids.clone()
        ids[b, where[k - 1]] = 9  # last prefix token
        h_prefix = gpt(**base.replace(input_ids=ids).backbone_inputs())
    assert torch.equal(h[b, :where[k]], h_suffix[b, :where[k]])
    if k >= 2:
        assert not torch.allclose(h[b, where[0]], h_prefix[b, where[0]])


def test_lm_objectives_train_an_encoder_architecture() -> None:
    """Causal attention is the objective's choice: clm and prefix run on BERT's architecture too."""
    bert = tiny_backbone("bert", TOKENS.vocab_size)
    for name in ("clm", "prefix"):
        check_compatible(parse_spec(name), type(bert))
        obj = build_objective(parse_spec(name), {}, TOKENS, bert.spec)
        batch = obj.prepare(synthetic_rows(TOKENS, "encoder", 4, 32), np.random.default_rng(0)).to("cpu")
        assert batch.causal and (batch.prefix is not None) == (name == "prefix")
        out = ZooModel(bert, obj)(batch)
        assert torch.isfinite(out.loss) and int(out.count) > 0

    class NoCausal(type(bert)):
        capabilities = frozenset({"bidirectional", "segments", "packed"})

    with pytest.raises(IncompatibleError, match=r"clm needs backbone capabilities \['causal'\]"):
        check_compatible(parse_spec("clm"), NoCausal)
