"""Masked next-token prediction (GPT-BERT): BERT's masking statistics, labels read one position early."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from zoo.errors import ConfigError
from zoo.objectives.common import IGNORE
from zoo.objectives.compose import build_objective
from zoo.objectives.spec import parse_spec
from zoo.testing import special_tokens_for_tests, synthetic_rows, tiny_backbone
from zoo.zoo_model import ZooModel

TOKENS = special_tokens_for_tests()


@pytest.mark.parametrize("family,backbone", [("encoder", "bert"), ("decoder", "gpt")])
def test_labels_sit_one_position_before_the_masked_token(family: str, backbone: str) -> None:
    spec = tiny_backbone(backbone, TOKENS.vocab_size).spec
    obj = build_objective(parse_spec("mntp"), {}, TOKENS, spec)
    rows = synthetic_rows(TOKENS, family, batch_size=6, seq_len=64, seed=2)
    batch = obj.prepare(rows, np.random.default_rng(0))
    assert not batch.causal and batch.prefix is None  # bidirectional attention
    labels = batch.targets["mntp"]["labels"]
    assert labels.shape == rows.input_ids.shape and (labels[:, -1] == IGNORE).all()
    for b in range(6):
        at = np.flatnonzero(labels[b] != IGNORE)
        masked = at + 1  # the token each label stands for
        assert (labels[b, at] == rows.input_ids[b, masked]).all()
        assert (rows.doc_ids[b, at] == rows.doc_ids[b, masked]).all()  # never across documents
        assert not rows.special_mask[b, masked].any()
        changed = np.flatnonzero(batch.input_ids[b] != rows.input_ids[b])
        assert set(changed) <= set(masked)  # only chosen tokens are rewritten
        n = int((~rows.special_mask[b] & (rows.doc_ids[b] >= 0)).sum())
        first = int(((~rows.special_mask[b][1:]) & (rows.doc_ids[b][1:] != rows.doc_ids[b][:-1])).sum()
                    + (~rows.special_mask[b][0]))  # document starts without a predecessor
        assert len(at) == max(1, round((n - first) * 0.15))


def test_masking_statistics_match_bert() -> None:
    """Exactly round(15%) of the maskable tokens per row; [MASK] / random / unchanged 80 / 10 / 10
    (chi-square goodness of fit)."""
    spec = tiny_backbone("gpt", TOKENS.vocab_size).spec
    obj = build_objective(parse_spec("mntp"), {}, TOKENS, spec)
    kinds = np.zeros(3)
    for seed in range(20):
        rows = synthetic_rows(TOKENS, "decoder", batch_size=8, seq_len=128, seed=seed)
        batch = obj.prepare(rows, np.random.default_rng(seed))
        labels = batch.targets["mntp"]["labels"]
        b, at = np.nonzero(labels != IGNORE)
        new, old = batch.input_ids[b, at + 1], rows.input_ids[b, at + 1]
        kinds += [(new == TOKENS.mask).sum(), ((new != TOKENS.mask) & (new != old)).sum(), (new == old).sum()]
    total = kinds.sum()
    # random replacements equal to the original (1 in ~470) count as unchanged: negligible here
    p = stats.chisquare(kinds, total * np.array([0.8, 0.1, 0.1])).pvalue
    print(f"mntp: {int(total)} predictions; [MASK] {kinds[0] / total:.3f}, random {kinds[1] / total:.3f}, "
          f"unchanged {kinds[2] / total:.3f} (chi-square p = {p:.2f})")
    assert p > 1e-3


def test_shares_the_causal_lm_head_and_alignment() -> None:
    """mntp's head is clm's (tied, no bias, same key); its loss equals the LM loss of its labels."""
    from zoo.objectives.clm import lm_loss

    bert = tiny_backbone("bert", TOKENS.vocab_size)
    mntp = build_objective(parse_spec("mntp"), {}, TOKENS, bert.spec)
    clm = build_objective(parse_spec("clm"), {}, TOKENS, bert.spec)
    assert type(mntp).head_key == type(clm).head_key == "lm"
    model = ZooModel(bert, mntp)
    head = model.heads["mntp"]
    assert head.bias is None and head.weight is bert.input_embedding().weight
    batch = mntp.prepare(synthetic_rows(TOKENS, "encoder", 4, 48), np.random.default_rng(1)).to("cpu")
    out = model(batch)
    hidden = bert(**batch.backbone_inputs())
    ref = lm_loss(head, hidden, batch.targets["mntp"]["labels"], 8192)
    assert torch.allclose(out.loss, ref.loss) and int(out.count) == int(ref.count)


def test_bad_rate_is_a_config_error() -> None:
    spec = tiny_backbone("gpt", TOKENS.vocab_size).spec
    with pytest.raises(ConfigError, match=r"objectives.mntp: rate must be in \(0, 1\)"):
        build_objective(parse_spec("mntp"), {"mntp": {"rate": 1.5}}, TOKENS, spec)
