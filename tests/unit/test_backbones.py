"""Backbones against transformers' BertModel / GPT2Model with the same weights, and layout semantics."""

from __future__ import annotations

import pytest
import torch
import transformers

from zoo import registry
from zoo.models.attention import AttentionLayout
from zoo.models.base import SIZES, config_for_size

KERNELS = ["eager", "sdpa"]
TOL = 1e-5


def _tiny(name: str, **kw):
    cls = registry.load("backbone", name)
    cfg = cls.Config(vocab_size=97, hidden_size=64, num_layers=2, num_heads=4, dropout=0.0,
                     attention_dropout=0.0, **kw)
    return cls(cfg).eval()


def _hf_model(ours, impl: str):
    cfg = ours.hf_config()
    cfg._attn_implementation = impl
    if ours.family == "encoder":
        hf = transformers.BertModel(cfg, add_pooling_layer=False)
    else:
        hf = transformers.GPT2Model(cfg)
    return hf.eval()


def _padded_batch(vocab: int):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab, (3, 12), generator=g)
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    return ids, mask


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("name", ["bert", "gpt"])
def test_parity_with_transformers(name: str, kernel: str) -> None:
    ours = _tiny(name, attention=kernel)
    hf = _hf_model(ours, kernel)
    ours.load_hf_state_dict(hf.state_dict())
    ids, mask = _padded_batch(97)
    kwargs = {"input_ids": ids, "attention_mask": mask}
    token_types = None
    if name == "bert":
        token_types = torch.randint(0, 2, ids.shape, generator=torch.Generator().manual_seed(2))
        kwargs["token_type_ids"] = token_types
    with torch.no_grad():
        ref = hf(**kwargs).last_hidden_state
        layout = AttentionLayout(causal=name == "gpt", doc_ids=torch.where(mask.bool(), 0, -1))
        out = ours(ids, layout, token_type_ids=token_types)
    real = mask.bool()
    diff = (ref - out)[real].abs().max().item()
    print(f"{name}/{kernel}: max abs diff {diff:.2e}")
    assert diff < TOL


@pytest.mark.parametrize("name", ["bert", "gpt"])
def test_hf_state_dict_round_trip(name: str) -> None:
    ours = _tiny(name)
    hf = _hf_model(ours, "eager")
    exported = ours.hf_state_dict()
    assert set(exported) == set(hf.state_dict())
    hf.load_state_dict(exported)
    again = _tiny(name)
    again.load_hf_state_dict(hf.state_dict())
    for k, v in ours.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


def test_hf_state_dict_errors_name_the_tensor() -> None:
    ours = _tiny("bert")
    state = ours.hf_state_dict()
    del state["encoder.layer.1.output.dense.weight"]
    with pytest.raises(KeyError, match="layers.1.ffn_out.weight"):
        ours.load_hf_state_dict(state)
    state = ours.hf_state_dict()
    state["embeddings.word_embeddings.weight"] = torch.zeros(3, 64)
    with pytest.raises(ValueError, match="tok_emb.weight"):
        ours.load_hf_state_dict(state)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("name", ["bert", "gpt"])
def test_packed_documents_do_not_see_each_other(name: str, kernel: str) -> None:
    ours = _tiny(name, attention=kernel)
    causal = name == "gpt"
    g = torch.Generator().manual_seed(3)
    a, b = torch.randint(5, 97, (1, 5), generator=g), torch.randint(5, 97, (1, 6), generator=g)
    packed = torch.cat([a, b, torch.zeros(1, 2, dtype=torch.long)], dim=1)  # two docs + 2 pads
    doc_ids = torch.tensor([[0] * 5 + [1] * 6 + [-1] * 2])
    positions = torch.tensor([list(range(5)) + list(range(6)) + [0, 1]])
    with torch.no_grad():
        out = ours(packed, AttentionLayout(causal=causal, doc_ids=doc_ids), position_ids=positions)
        alone_a = ours(a, AttentionLayout(causal=causal))
        alone_b = ours(b, AttentionLayout(causal=causal))
    assert (out[0, :5] - alone_a[0]).abs().max() < TOL
    assert (out[0, 5:11] - alone_b[0]).abs().max() < TOL
    assert torch.isfinite(out).all()  # padding rows are never fully masked


@pytest.mark.parametrize("kernel", KERNELS)
def test_prefix_layout(kernel: str) -> None:
    """Prefix positions see the whole prefix; later positions see only the past."""
    ours = _tiny("gpt", attention=kernel)
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(5, 97, (1, 10), generator=g)
    prefix = torch.zeros(1, 10, dtype=torch.bool)
    prefix[0, :4] = True
    layout = AttentionLayout(causal=True, prefix=prefix)
    with torch.no_grad():
        base = ours(ids, layout)
        # Changing a later prefix token changes earlier prefix positions (bidirectional prefix) ...
        changed = ids.clone()
        changed[0, 3] = (ids[0, 3] + 1 - 5) % 92 + 5
        out = ours(changed, layout)
        assert (out[0, :3] - base[0, :3]).abs().max() > 1e-4
        # ... while changing a suffix token never affects anything before it.
        changed = ids.clone()
        changed[0, 7] = (ids[0, 7] + 1 - 5) % 92 + 5
        out = ours(changed, layout)
        assert (out[0, :7] - base[0, :7]).abs().max() == 0
        assert (out[0, 7:] - base[0, 7:]).abs().max() > 1e-4


def test_dense_mask_matches_rule() -> None:
    doc = torch.tensor([[0, 0, 0, 1, 1, -1]])
    prefix = torch.tensor([[True, True, False, True, False, False]])
    mask = AttentionLayout(causal=True, doc_ids=doc, prefix=prefix).dense_mask(6, torch.device("cpu"))[0, 0]
    for i in range(6):
        for j in range(6):
            expected = bool(doc[0, i] == doc[0, j] and (j <= i or prefix[0, j]))
            assert bool(mask[i, j]) == expected, (i, j)


def test_xformers_masks_materialise_like_dense_masks() -> None:
    fmha = pytest.importorskip("xformers.ops.fmha", reason="xformers not installed")
    doc = torch.tensor([[0, 0, 0, 1, 1, -1], [0, 0, 0, 0, -1, -1]])
    layout = AttentionLayout(causal=True, doc_ids=doc)
    bias = fmha.attn_bias.BlockDiagonalCausalMask.from_seqlens(layout.seqlens()).materialize((12, 12))
    dense = layout.dense_mask(6, torch.device("cpu"))
    for row in range(2):
        block = bias[row * 6:(row + 1) * 6, row * 6:(row + 1) * 6]
        assert torch.equal(block == 0, dense[row, 0])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["bert", "gpt"])
@pytest.mark.parametrize("layout_kind", ["padding", "packed", "prefix"])
def test_xformers_matches_sdpa_on_cuda(name: str, layout_kind: str) -> None:
    pytest.importorskip("xformers.ops", reason="xformers not installed")
    from zoo.models.attention import xformers_available

    if not xformers_available():
        pytest.skip("xformers kernels unavailable on this CUDA setup")
    if layout_kind == "prefix" and name == "bert":
        pytest.skip("prefix layouts are decoder-only")
    ref = _tiny(name, attention="sdpa").cuda()
    xf = _tiny(name, attention="xformers").cuda()
    xf.load_state_dict(ref.state_dict())
    ids = torch.randint(5, 97, (2, 16), device="cuda")
    doc = torch.zeros(2, 16, dtype=torch.long, device="cuda")
    prefix = None
    if layout_kind == "packed":
        doc[:, 9:] = 1
        doc[1, 14:] = -1
    elif layout_kind == "padding":
        doc[1, 10:] = -1
    else:
        prefix = torch.zeros(2, 16, dtype=torch.bool, device="cuda")
        prefix[:, :6] = True
    layout = AttentionLayout(causal=name == "gpt", doc_ids=doc, prefix=prefix)
    with torch.no_grad():
        a, b = ref(ids, layout), xf(ids, layout)
    real = doc >= 0
    assert (a - b)[real].abs().max() < 1e-4


def test_size_presets_and_overrides() -> None:
    cls = registry.load("backbone", "bert")
    for size, (layers, hidden) in SIZES.items():
        cfg = config_for_size(cls.Config, size).resolved()
        assert (cfg.num_layers, cfg.hidden_size, cfg.num_heads) == (layers, hidden, hidden // 64)
        assert cfg.intermediate_size == 4 * hidden
    cfg = config_for_size(cls.Config, "mini", num_heads=8, vocab_size=123)
    assert (cfg.num_heads, cfg.vocab_size, cfg.hidden_size) == (8, 123, 256)
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        config_for_size(cls.Config, "huge")
    with pytest.raises(ValueError, match="hidden_sz"):
        config_for_size(cls.Config, "tiny", hidden_sz=3)


@pytest.mark.parametrize("name", ["bert", "gpt"])
def test_spec_and_capabilities(name: str) -> None:
    ours = _tiny(name)
    spec = ours.spec
    assert spec.hidden_size == 64 and spec.num_layers == 2 and spec.vocab_size == 97
    assert ours.input_embedding() is ours.tok_emb
    assert spec.capabilities <= {"bidirectional", "causal", "prefix", "segments", "packed"}
    assert ("bidirectional" in spec.capabilities) == (name == "bert")
    assert ("causal" in spec.capabilities) == (name == "gpt")
