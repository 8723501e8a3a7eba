"""Every attention pattern on every registered backbone and kernel matches the eager reference.

Patterns: bidirectional, causal and prefix LM, each over one full document per row, with padding,
and with packed (block-diagonal) documents. Forward outputs and parameter gradients agree with the
eager kernel to 1e-5 in fp32 (gradients relative to their largest entry); the eager kernel itself is checked against the mask rule in
test_backbones.py and, here, against documents run one at a time.
"""

from __future__ import annotations

import pytest
import torch

from zoo import registry
from zoo.models.attention import AttentionLayout, xformers_available

PATTERNS = ("bidirectional", "causal", "prefix")
DOCUMENTS = ("full", "padding", "packed")
TOL = 1e-5
BACKBONES = registry.names("backbone")


def _tiny(name: str, kernel: str, device: str = "cpu") -> torch.nn.Module:
    cls = registry.load("backbone", name)
    torch.manual_seed(0)
    cfg = cls.Config(vocab_size=61, hidden_size=32, num_layers=2, num_heads=2, dropout=0.0,
                     attention_dropout=0.0, max_positions=64, attention=kernel)
    return cls(cfg).to(device)


def _layout(pattern: str, documents: str, device: str) -> tuple[AttentionLayout, torch.Tensor, torch.Tensor]:
    """(layout, position ids, real-token mask) for 2 rows of 12 tokens."""
    doc = torch.zeros(2, 12, dtype=torch.long)
    positions = torch.arange(12).repeat(2, 1)
    if documents == "padding":
        doc[1, 8:] = -1
    elif documents == "packed":  # row 0: documents of 5 and 7; row 1: 4, 6 and 2 padding
        doc[0, 5:] = 1
        doc[1, 4:10], doc[1, 10:] = 1, -1
        positions[0, 5:] = torch.arange(7)
        positions[1, 4:] = torch.arange(8)
    prefix = None
    if pattern == "prefix":  # the first 3 tokens of every document
        prefix = (positions < 3) & (doc >= 0)
    layout = AttentionLayout(causal=pattern != "bidirectional", doc_ids=None if documents == "full" else doc.to(device),
                             prefix=None if prefix is None else prefix.to(device))
    return layout, positions.to(device), (doc >= 0).to(device)


def _run(model: torch.nn.Module, ids: torch.Tensor, layout: AttentionLayout, positions: torch.Tensor,
         real: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    out = model(ids, layout, position_ids=positions)  # (B, T, h)
    (out * weights)[real].sum().backward()
    return out.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("documents", DOCUMENTS)
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("kernel", ["sdpa", "xformers"])
@pytest.mark.parametrize("name", BACKBONES)
def test_pattern_matches_eager_reference(name: str, kernel: str, pattern: str, documents: str) -> None:
    device = "cpu"
    if kernel == "xformers":
        if not xformers_available():
            pytest.skip("xformers kernels need CUDA and an installed xformers")
        device = "cuda"
    caps = registry.load("backbone", name).capabilities
    if pattern not in caps or (documents == "packed" and "packed" not in caps):
        pytest.skip(f"{name} declares no {pattern}{' packed' if documents == 'packed' else ''} attention")
    layout, positions, real = _layout(pattern, documents, device)
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(5, 61, (2, 12), generator=g).to(device)
    weights = torch.randn(2, 12, 32, generator=g).to(device)
    ref = _tiny(name, "eager", device)
    ours = _tiny(name, kernel, device)
    ours.load_state_dict(ref.state_dict())
    out_ref, grads_ref = _run(ref, ids, layout, positions, real, weights)
    out, grads = _run(ours, ids, layout, positions, real, weights)
    assert torch.isfinite(out).all()
    assert (out - out_ref)[real].abs().max() < TOL
    assert set(grads) == set(grads_ref)
    for key, grad in grads.items():  # 1e-5 relative to the gradient's scale (some reach ~50)
        ref_grad = grads_ref[key]
        assert (grad - ref_grad).abs().max() <= TOL * max(1.0, float(ref_grad.abs().max())), key


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("name", BACKBONES)
def test_packed_documents_equal_documents_alone(name: str, pattern: str) -> None:
    """The reference kernel on packed rows gives each document what it gets alone (no cross-document
    attention under any pattern the backbone declares)."""
    if pattern not in registry.load("backbone", name).capabilities:
        pytest.skip(f"{name} declares no {pattern} attention")
    model = _tiny(name, "eager").eval()
    layout, positions, _ = _layout(pattern, "packed", "cpu")
    ids = torch.randint(5, 61, (2, 12), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        packed = model(ids, layout, position_ids=positions)
        for row, (start, end) in ((0, (0, 5)), (0, (5, 12)), (1, (0, 4)), (1, (4, 10))):
            prefix = None if layout.prefix is None else layout.prefix[row:row + 1, start:end]
            alone = model(ids[row:row + 1, start:end], AttentionLayout(causal=layout.causal, prefix=prefix))
            assert (packed[row, start:end] - alone[0]).abs().max() < TOL, (row, start)


@pytest.mark.parametrize("name", BACKBONES)
def test_causal_and_prefix_rows_never_see_the_future(name: str) -> None:
    """Changing token 8 leaves positions before it unchanged under causal and prefix-LM (prefix 0..3)
    attention, and changes them under bidirectional attention."""
    if not {"causal", "prefix"} <= registry.load("backbone", name).capabilities:
        pytest.skip(f"{name} declares no causal or prefix attention (an encoder-decoder's decoder is "
                    f"tested in test_t5.py)")
    model = _tiny(name, "eager").eval()
    ids = torch.randint(5, 61, (1, 12), generator=torch.Generator().manual_seed(7))
    changed = ids.clone()
    changed[0, 8] = 5 if ids[0, 8] != 5 else 6
    prefix = torch.zeros(1, 12, dtype=torch.bool)
    prefix[0, :4] = True
    with torch.no_grad():
        for layout, sees_future in ((AttentionLayout(causal=True), False),
                                    (AttentionLayout(causal=True, prefix=prefix), False),
                                    (AttentionLayout(causal=False), True)):
            diff = (model(ids, layout) - model(changed, layout))[0, :8].abs().max()
            assert (diff > 1e-4) if sees_future else (diff == 0), layout
