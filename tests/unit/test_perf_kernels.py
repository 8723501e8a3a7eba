"""The fast paths equal their plain references: fused linear + cross-entropy, materialised attention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zoo.models import attention as attn
from zoo.objectives import common
from zoo.objectives.common import IGNORE, token_cross_entropy


def _problem(rows: int = 37, hidden: int = 16, vocab: int = 50, bias: bool = True, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, hidden, generator=g, requires_grad=True)
    w = torch.randn(vocab, hidden, generator=g, requires_grad=True)
    b = (torch.randn(vocab, generator=g) * 0.1).requires_grad_() if bias else None
    labels = torch.randint(0, vocab, (rows,), generator=g)
    labels[::5] = IGNORE
    return x, w, b, labels


def _reference(x, w, b, labels):
    logits = F.linear(x, w, b).float()
    loss = F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum")
    keep = labels != IGNORE
    correct = (logits.argmax(-1)[keep] == labels[keep]).sum()
    return loss, correct


@pytest.mark.parametrize("select", [True, False])
@pytest.mark.parametrize("chunk", [1000, 7, 1])
@pytest.mark.parametrize("bias", [True, False])
def test_fused_cross_entropy_matches_autograd(select: bool, chunk: int, bias: bool) -> None:
    x, w, b, labels = _problem(bias=bias)
    params = [t for t in (x, w, b) if t is not None]
    loss, correct, count = token_cross_entropy(x, w, b, labels, chunk_rows=chunk, select=select)
    grads = torch.autograd.grad(loss / count * 0.7, params)  # a non-unit incoming gradient
    ref_loss, ref_correct = _reference(x, w, b, labels)
    ref_grads = torch.autograd.grad(ref_loss / count * 0.7, params)
    assert int(count) == int((labels != IGNORE).sum())
    assert torch.allclose(loss, ref_loss, rtol=1e-6, atol=1e-5)
    assert int(correct) == int(ref_correct)
    for ours, ref in zip(grads, ref_grads, strict=True):
        assert ours.dtype == ref.dtype and ours.shape == ref.shape
        assert torch.allclose(ours, ref, atol=1e-6), (ours - ref).abs().max()


def test_fused_cross_entropy_without_grad_and_with_extreme_logits() -> None:
    x, w, b, labels = _problem()
    with torch.no_grad():
        loss, correct, _ = token_cross_entropy(x * 40.0, w, b, labels, chunk_rows=8)  # losses in the hundreds
        ref_loss, ref_correct = _reference(x * 40.0, w, b, labels)
    assert torch.isfinite(loss) and float(ref_loss) > 1000
    assert torch.allclose(loss, ref_loss, rtol=1e-6)
    assert int(correct) == int(ref_correct)


@pytest.mark.parametrize("whole", [True, False])
def test_fused_cross_entropy_under_bf16_autocast(whole: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not whole:  # the per-chunk gradient matmuls (large N x V)
        monkeypatch.setattr(common, "GRAD_BYTES", 0)
    x, w, b, labels = _problem(rows=64, hidden=32, vocab=300)
    params = [x, w, b]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _, count = token_cross_entropy(x, w, b, labels, chunk_rows=16)
        ref_loss, _ = _reference(x, w, b, labels)  # bf16 logits, fp32 loss (what transformers does)
    grads = torch.autograd.grad(loss / count, params)
    ref_grads = torch.autograd.grad(ref_loss / count, params)
    assert loss.dtype == torch.float32
    assert torch.allclose(loss, ref_loss, rtol=1e-3)
    for ours, ref in zip(grads, ref_grads, strict=True):
        assert ours.dtype == torch.float32
        assert torch.allclose(ours, ref, rtol=2e-2, atol=2e-3 * float(ref.abs().max()))


def _layouts(batch: int, seq: int) -> dict[str, attn.AttentionLayout]:
    lengths = torch.tensor([seq, seq - 3, 5])[:batch]
    doc = torch.where(torch.arange(seq)[None] < lengths[:, None], 0, -1)
    packed = torch.zeros(batch, seq, dtype=torch.long)
    packed[:, seq // 2:] = 1
    return {"none": attn.AttentionLayout(), "padding": attn.AttentionLayout(doc_ids=doc),
            "causal": attn.AttentionLayout(causal=True),
            "packed-causal": attn.AttentionLayout(causal=True, doc_ids=packed)}


@pytest.mark.parametrize("name", ["none", "padding", "causal", "packed-causal"])
def test_materialized_attention_equals_eager(name: str) -> None:
    batch, seq, heads, dim = 3, 12, 2, 8
    layout = _layouts(batch, seq)[name]
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(batch, seq, heads, dim, generator=g) for _ in range(3))
    mask = attn.prepare(layout, "sdpa", batch, seq, heads, q.device, q.dtype)
    ref = attn.eager_attention(*(t.transpose(1, 2) for t in (q, k, v)), layout.dense_mask(seq, q.device), 0.0)
    ref = ref.transpose(1, 2)
    for dtype, tol in ((torch.float32, 1e-6), (torch.bfloat16, 3e-2)):
        out = attn.materialized_attention(*(t.to(dtype).transpose(1, 2) for t in (q, k, v)),
                                          mask.additive_bias(seq, dtype, q.device), 0.0).transpose(1, 2)
        assert out.dtype == dtype
        assert torch.allclose(out.float(), ref, atol=tol), (name, dtype)
        # what attend() runs on CPU for bf16 inputs
        assert torch.allclose(attn.attend(q.to(dtype), k.to(dtype), v.to(dtype), mask).float(), ref, atol=tol)


def test_cpu_training_attention_applies_dropout() -> None:
    batch, seq, heads, dim = 2, 16, 2, 8
    q, k, v = (torch.randn(batch, seq, heads, dim) for _ in range(3))
    mask = attn.prepare(attn.AttentionLayout(causal=True), "sdpa", batch, seq, heads, q.device, q.dtype)
    plain = attn.attend(q, k, v, mask, 0.0)
    torch.manual_seed(0)
    dropped = attn.attend(q, k, v, mask, 0.5)
    assert not torch.allclose(plain, dropped)
    torch.manual_seed(0)
    assert torch.equal(dropped, attn.attend(q, k, v, mask, 0.5))  # seeded: reproducible
    # the mean over many draws approaches the no-dropout output (inverted dropout keeps expectations)
    mean = torch.stack([attn.attend(q, k, v, mask, 0.5) for _ in range(400)]).mean(0)
    assert torch.allclose(mean, plain, atol=0.25)
