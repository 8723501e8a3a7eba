"""Losses equal transformers' reference models with the same weights (dropout 0)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

from zoo.objectives.common import IGNORE
from zoo.objectives.compose import build_objective
from zoo.objectives.spec import parse_spec
from zoo.testing import special_tokens_for_tests, synthetic_rows, synthetic_segments, tiny_backbone
from zoo.zoo_model import ZooModel

TOL = 1e-5


@pytest.mark.parametrize("whole_word", [False, True])
def test_mlm_nsp_loss_equals_bert_for_pretraining(whole_word: bool) -> None:
    tokens = special_tokens_for_tests(vocab_size=300)
    backbone = tiny_backbone("bert", tokens.vocab_size, hidden_size=64, num_heads=4, seed=3)
    objective = build_objective(parse_spec("mlm+nsp"), {"mlm": {"whole_word": whole_word}}, tokens, backbone.spec)
    model = ZooModel(backbone, objective).eval()
    for p in model.heads.parameters():  # non-trivial head weights (biases start at zero)
        torch.nn.init.normal_(p, std=0.05)
    segments = synthetic_segments(tokens, batch_size=6, seq_len=48, seed=4)
    batch = objective.prepare(segments, np.random.default_rng(5)).to("cpu")
    assert (batch.doc_ids < 0).any(), "the batch should contain padding"
    assert set(batch.targets["nsp"]["labels"].tolist()) == {0, 1}

    hf = transformers.BertForPreTraining(backbone.hf_config()).eval()
    missing, unexpected = hf.bert.load_state_dict(backbone.hf_state_dict(), strict=False)
    assert not unexpected and set(missing) == {"pooler.dense.weight", "pooler.dense.bias"}
    heads = {**model.heads["mlm"].hf_state_dict(), **model.heads["nsp"].hf_state_dict()}
    missing, unexpected = hf.load_state_dict(heads, strict=False)
    assert not unexpected
    assert all(k.startswith("bert.") and not k.startswith("bert.pooler") or k == "cls.predictions.decoder.weight"
               for k in missing)
    assert hf.cls.predictions.decoder.weight.data_ptr() == hf.bert.embeddings.word_embeddings.weight.data_ptr()

    # HF labels: -100 everywhere except at the masked positions.
    mlm = batch.targets["mlm"]
    labels = torch.full_like(batch.input_ids, IGNORE)
    keep = mlm["labels"] != IGNORE
    rows = torch.arange(labels.shape[0])[:, None].expand_as(mlm["positions"])
    labels[rows[keep], mlm["positions"][keep]] = mlm["labels"][keep]
    with torch.no_grad():
        ours = model(batch)
        ref = hf(input_ids=batch.input_ids, attention_mask=(batch.doc_ids >= 0).long(),
                 token_type_ids=batch.token_type_ids, labels=labels,
                 next_sentence_label=batch.targets["nsp"]["labels"])
    diff = abs(float(ours.loss) - float(ref.loss))
    print(f"mlm+nsp vs BertForPreTraining (whole_word={whole_word}): max abs diff {diff:.2e}")
    assert diff < TOL
    assert ours.metrics["mlm/loss"] > 0 and ours.metrics["nsp/loss"] > 0


def test_clm_loss_equals_gpt2_lm_head_model() -> None:
    tokens = special_tokens_for_tests(vocab_size=300)
    backbone = tiny_backbone("gpt", tokens.vocab_size, hidden_size=64, num_heads=4, seed=3)
    objective = build_objective(parse_spec("clm"), {"clm": {"chunk_rows": 50}}, tokens, backbone.spec)  # several chunks
    model = ZooModel(backbone, objective).eval()
    rows = synthetic_rows(tokens, "decoder", batch_size=4, seq_len=40, seed=6, pad_last=False)
    # one document per row, no padding: what GPT2LMHeadModel sees without an attention mask
    rows = rows.replace(doc_ids=np.zeros_like(rows.doc_ids),
                        position_ids=np.broadcast_to(np.arange(40), (4, 40)).copy())
    batch = objective.prepare(rows, np.random.default_rng(0)).to("cpu")
    hf = transformers.GPT2LMHeadModel(backbone.hf_config()).eval()
    missing, unexpected = hf.transformer.load_state_dict(backbone.hf_state_dict(), strict=False)
    assert not unexpected and all(".attn.bias" in k or ".attn.masked_bias" in k for k in missing)
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr()
    with torch.no_grad():
        ours = model(batch)
        ref = hf(input_ids=batch.input_ids, labels=batch.input_ids)
    diff = abs(float(ours.loss) - float(ref.loss))
    print(f"clm vs GPT2LMHeadModel: max abs diff {diff:.2e}")
    assert diff < TOL
    assert int(ours.count) == 4 * 39


def test_chunked_cross_entropy_gradients_match_unchunked() -> None:
    from zoo.objectives.common import token_cross_entropy

    g = torch.Generator().manual_seed(0)
    x = torch.randn(37, 16, generator=g, requires_grad=True)
    w = torch.randn(50, 16, generator=g, requires_grad=True)
    labels = torch.randint(0, 50, (37,), generator=g)
    labels[::5] = IGNORE
    grads = []
    for chunk in (1000, 7):
        loss_sum, correct, count = token_cross_entropy(x, w, None, labels, chunk_rows=chunk)
        (gx, gw) = torch.autograd.grad(loss_sum / count, (x, w))
        grads.append((loss_sum.detach(), int(correct), gx, gw))
    ref = torch.nn.functional.cross_entropy(x @ w.T, labels, ignore_index=IGNORE)
    assert torch.allclose(grads[0][0] / int(count), ref, atol=1e-6)
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-5) and grads[0][1] == grads[1][1]
    assert torch.allclose(grads[0][2], grads[1][2], atol=1e-6) and torch.allclose(grads[0][3], grads[1][3], atol=1e-6)
