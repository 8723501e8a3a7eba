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
    layout = AttentionLayout(causal=name == "gpt" or prefix is not None, doc_ids=doc, prefix=prefix)
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
    # every pattern on both architectures; only BERT has segment embeddings
    assert {"bidirectional", "causal", "prefix", "packed"} <= spec.capabilities
    assert ("segments" in spec.capabilities) == (name == "bert")


# --- xformers masks, built on CPU (the kernels themselves need CUDA) -------------------------------
def _fake_memory_efficient_attention(calls: list):
    """Stands in for xops.memory_efficient_attention: checks the bias the way the CUDA kernel does
    (dtype of a tensor bias == query dtype, seqlens on the query device) and computes eagerly."""
    from zoo.models.attention import materialized_attention

    def fake(q, k, v, attn_bias=None, p=0.0):
        calls.append(attn_bias)
        if isinstance(attn_bias, torch.Tensor):
            assert attn_bias.dtype == q.dtype, (attn_bias.dtype, q.dtype)
            assert attn_bias.stride(-2) % 8 == 0  # aligned storage
            bias = attn_bias
        elif attn_bias is None:
            bias = None
        else:
            seqstart = getattr(getattr(attn_bias, "q_seqinfo", None), "seqstart", None)
            assert seqstart is None or seqstart.device == q.device
            bias = attn_bias.materialize((q.shape[1], k.shape[1]), dtype=q.dtype, device=q.device)
        out = materialized_attention(*(x.transpose(1, 2) for x in (q, k, v)), bias, 0.0)
        return out.transpose(1, 2)

    return fake


@pytest.mark.parametrize("layout_kind", ["prefix", "packed"])
def test_xformers_path_under_bf16_autocast_builds_the_bias_in_the_query_dtype(monkeypatch, layout_kind: str) -> None:
    xops = pytest.importorskip("xformers.ops", reason="xformers not installed")
    from zoo.models import attention as attn

    ref = _tiny("gpt", attention="sdpa")
    xf = _tiny("gpt", attention="eager")
    xf.load_state_dict(ref.state_dict())
    calls: list = []
    monkeypatch.setattr(xops, "memory_efficient_attention", _fake_memory_efficient_attention(calls))
    monkeypatch.setattr(attn, "resolve_kernel", lambda name, device: "xformers" if name == "eager" else "sdpa")
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(5, 97, (2, 13), generator=g)
    doc = torch.zeros(2, 13, dtype=torch.long)
    prefix = None
    if layout_kind == "prefix":
        prefix = torch.zeros(2, 13, dtype=torch.bool)
        prefix[0, :4], prefix[1, :9] = True, True
    else:
        doc[:, 6:] = 1
        doc[1, 11:] = -1
    layout = AttentionLayout(causal=True, doc_ids=doc, prefix=prefix)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = ref(ids, layout), xf(ids, layout)
    assert len(calls) == 2  # one per layer
    if layout_kind == "prefix":
        assert calls[0] is calls[1] and calls[0].dtype == torch.bfloat16  # built once per dtype, shared
    real = doc >= 0
    assert (a.float() - b.float())[real].abs().max() < 5e-2


def test_xformers_prefix_bias_is_cached_per_dtype_with_padded_storage() -> None:
    pytest.importorskip("xformers.ops.fmha", reason="xformers not installed")
    from zoo.models.attention import prepare

    prefix = torch.zeros(2, 10, dtype=torch.bool)
    prefix[:, :3] = True
    layout = AttentionLayout(causal=True, prefix=prefix)
    mask = prepare(layout, "xformers", 2, 10, 4, torch.device("cpu"), torch.float32)
    bf16, fp32 = mask.xformers_bias(torch.bfloat16), mask.xformers_bias(torch.float32)
    assert bf16.dtype == torch.bfloat16 and fp32.dtype == torch.float32
    assert bf16.shape == (2, 4, 10, 10) and bf16.stride(-2) == 16
    assert mask.xformers_bias(torch.bfloat16) is bf16
    dense = layout.dense_mask(10, torch.device("cpu"))
    assert torch.equal(fp32 == 0, dense.expand(2, 4, 10, 10))


def test_xformers_block_diagonal_masks_are_built_on_the_model_device(monkeypatch) -> None:
    fmha = pytest.importorskip("xformers.ops.fmha", reason="xformers not installed")
    from zoo.models.attention import prepare

    seen = []
    for cls in (fmha.attn_bias.BlockDiagonalMask, fmha.attn_bias.BlockDiagonalCausalMask):
        original = cls.from_seqlens.__func__

        def spy(klass, seqlens, kv_seqlen=None, *, device=None, _original=original):
            seen.append(device)
            return _original(klass, seqlens, kv_seqlen, device=device)

        monkeypatch.setattr(cls, "from_seqlens", classmethod(spy))
    doc = torch.tensor([[0, 0, 0, 1, 1, -1]])
    for causal in (False, True):
        mask = prepare(AttentionLayout(causal=causal, doc_ids=doc), "xformers", 1, 6, 2,
                       torch.device("cpu"), torch.float32)
        assert mask.flatten and mask.bias.q_seqinfo.seqstart.device == torch.device("cpu")
    # never None, where xformers would pick the current CUDA device (cuda:0 on every rank)
    assert len(seen) >= 2 and all(d == torch.device("cpu") for d in seen)


# --- config errors --------------------------------------------------------------------------------
@pytest.mark.parametrize("model,message", [
    ({"attention": "flash"}, r"\[model\]: attention = 'flash' is not an attention kernel; expected one of auto, eager"),
    ({"num_heads": 3}, r"\[model\]: hidden_size 128 is not divisible by num_heads 3"),
    ({"hidden_size": 0}, r"\[model\]: hidden_size must be >= 1"),
    ({"num_layers": -1}, r"\[model\]: num_layers must be >= 1"),
    ({"attention_dropout": 1.0}, r"\[model\]: attention_dropout must be in \[0, 1\)"),
])
@pytest.mark.parametrize("backbone", ["bert", "gpt"])
def test_bad_model_options_are_config_errors(backbone: str, model: dict, message: str) -> None:
    from zoo.errors import ConfigError
    from zoo.train.resolve import resolve

    with pytest.raises(ConfigError, match=message):
        resolve({"backbone": backbone, "objective": "mlm" if backbone == "bert" else "clm", "size": "tiny",
                 "model": model})


def test_zoo_train_reports_a_bad_attention_kernel_without_traceback(tmp_path) -> None:
    from click.testing import CliRunner

    from zoo.cli import cli

    result = CliRunner().invoke(cli, ["train", "--dry-run", "--backbone", "bert", "--objective", "mlm",
                                      "--size", "tiny", "--out", str(tmp_path / "run"),
                                      "--set", "model.attention=flash"])
    assert result.exit_code != 0
    assert "attention = 'flash' is not an attention kernel" in result.output
    assert "Traceback" not in result.output


def test_kernel_resolution_errors_name_model_attention() -> None:
    from zoo.errors import ConfigError
    from zoo.models.attention import resolve_kernel

    with pytest.raises(ConfigError, match="model.attention = 'flash' is not an attention kernel"):
        resolve_kernel("flash", "cpu")
    with pytest.raises(ConfigError, match="model.attention = 'xformers' runs on CUDA only.*use auto or sdpa"):
        resolve_kernel("xformers", "cpu")
    ours = _tiny("gpt", attention="xformers")
    with pytest.raises(ConfigError, match="model.attention = 'xformers'"):
        ours(torch.randint(5, 97, (1, 4)), AttentionLayout(causal=True))
    assert resolve_kernel("auto", "cpu") == "sdpa"


# --- Hugging Face configs and weights ---------------------------------------------------------------
def _hf_config(name: str, **options):
    if name == "bert":
        return transformers.BertConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=64, max_position_embeddings=64, **options)
    return transformers.GPT2Config(vocab_size=97, n_embd=32, n_layer=2, n_head=2, n_positions=64, **options)


@pytest.mark.parametrize("name,options,key", [
    ("bert", {"hidden_act": "relu"}, "hidden_act = 'relu'"),
    ("bert", {"hidden_act": "gelu_new"}, "hidden_act = 'gelu_new'"),
    ("bert", {"position_embedding_type": "relative_key"}, "position_embedding_type = 'relative_key'"),
    ("bert", {"is_decoder": True}, "is_decoder = True"),
    ("gpt", {"activation_function": "gelu"}, "activation_function = 'gelu'"),
    ("gpt", {"activation_function": "relu"}, "activation_function = 'relu'"),
    ("gpt", {"scale_attn_weights": False}, "scale_attn_weights = False"),
    ("gpt", {"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx = True"),
    ("gpt", {"add_cross_attention": True}, "add_cross_attention = True"),
])
def test_unsupported_hf_options_are_refused(tmp_path, name: str, options: dict, key: str) -> None:
    from zoo.errors import CheckpointError

    _hf_config(name, **options).save_pretrained(tmp_path)
    loaded = transformers.AutoConfig.from_pretrained(str(tmp_path))
    cls = registry.load("backbone", name)
    with pytest.raises(CheckpointError, match=rf"config.json {key} is not supported: the {name} backbone implements"):
        cls.config_from_hf(loaded)


@pytest.mark.parametrize("name", ["bert", "gpt"])
def test_supported_hf_configs_carry_every_option_over(tmp_path, name: str) -> None:
    eps = {"layer_norm_eps": 1e-7} if name == "bert" else {"layer_norm_epsilon": 1e-7}
    extra = {"hidden_act": "gelu"} if name == "bert" else {"activation_function": "gelu_pytorch_tanh",
                                                           "reorder_and_upcast_attn": True}
    _hf_config(name, **eps, **extra).save_pretrained(tmp_path)
    cls = registry.load("backbone", name)
    config = cls.config_from_hf(transformers.AutoConfig.from_pretrained(str(tmp_path)))
    assert config.layer_norm_eps == 1e-7 and config.hidden_size == 32 and config.num_layers == 2
    # the function is the same: our backbone equals the transformers model built from that config
    ours = cls(config).eval()
    hf_cfg = transformers.AutoConfig.from_pretrained(str(tmp_path))
    hf_cfg._attn_implementation = "eager"
    hf = (transformers.BertModel(hf_cfg, add_pooling_layer=False) if name == "bert"
          else transformers.GPT2Model(hf_cfg)).eval()
    ours.load_hf_state_dict(hf.state_dict())
    ids = torch.randint(5, 97, (2, 9), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        diff = (hf(input_ids=ids).last_hidden_state - ours(ids, AttentionLayout(causal=name == "gpt"))).abs().max()
    assert diff < TOL


@pytest.mark.parametrize("name", ["bert", "gpt"])
def test_strict_load_refuses_weights_with_more_layers_than_the_config(name: str) -> None:
    from zoo.errors import CheckpointError

    four = registry.load("backbone", name)
    cfg = four.Config(vocab_size=97, hidden_size=64, num_layers=4, num_heads=4)
    deeper = four(cfg).hf_state_dict()
    ours = _tiny(name)  # 2 layers
    with pytest.raises(CheckpointError, match=r"holds (32|24) tensor\(s\) this backbone has no place for, e\.g\. \['"
                                              r"(encoder\.layer|h)\.2\."):
        ours.load_hf_state_dict(deeper)
    ours.load_hf_state_dict(deeper, strict=False)  # not strict: the first two layers are taken


def test_strict_load_ignores_heads_and_buffers_of_hf_checkpoints() -> None:
    bert = _tiny("bert")
    cfg = bert.hf_config()
    pre = transformers.BertForPreTraining(cfg).state_dict()  # bert.*, bert.pooler.*, cls.*
    pre["bert.embeddings.position_ids"] = torch.arange(cfg.max_position_embeddings)[None]
    bert.load_hf_state_dict(pre)
    gpt = _tiny("gpt")
    lm = transformers.GPT2LMHeadModel(gpt.hf_config()).state_dict()  # transformer.*, lm_head.*
    lm["transformer.h.0.attn.bias"] = torch.ones(1, 1, 4, 4)
    lm["transformer.h.1.attn.masked_bias"] = torch.tensor(-1e4)
    gpt.load_hf_state_dict(lm)
    from zoo.errors import CheckpointError

    lm["transformer.h.0.attn.extra.weight"] = torch.zeros(2)
    with pytest.raises(CheckpointError, match=r"holds 1 tensor\(s\).*h\.0\.attn\.extra\.weight"):
        gpt.load_hf_state_dict(lm)


def _hf_dir(path, name: str, layers: int = 2, **options):
    """A Hugging Face directory as `zoo bench` reads it: config.json, model.safetensors, tokenizer.json."""
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, models

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefgh"])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.add_special_tokens(list(vocab)[:5])
    n = len(vocab)
    if name == "bert":
        cfg = transformers.BertConfig(vocab_size=n, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                                      intermediate_size=64, max_position_embeddings=32, **options)
        model = transformers.BertModel(cfg, add_pooling_layer=False)
    else:
        cfg = transformers.GPT2Config(vocab_size=n, n_embd=32, n_layer=layers, n_head=2, n_positions=32, **options)
        model = transformers.GPT2Model(cfg)
    path.mkdir(parents=True, exist_ok=True)
    cfg.save_pretrained(path)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path / "model.safetensors"))
    tok.save(str(path / "tokenizer.json"))
    return path


def test_zoo_bench_source_refuses_unsupported_hf_directories(tmp_path) -> None:
    import json

    from zoo.benchmarks.source import open_source
    from zoo.errors import CheckpointError

    ok = open_source(_hf_dir(tmp_path / "ok", "gpt"))
    assert ok.backbone().config.num_layers == 2
    bad = _hf_dir(tmp_path / "relu", "bert", hidden_act="relu")
    with pytest.raises(CheckpointError, match=r"relu/config.json: config.json hidden_act = 'relu' is not supported"):
        open_source(bad)
    bad = _hf_dir(tmp_path / "scaled", "gpt", scale_attn_by_inverse_layer_idx=True)
    with pytest.raises(CheckpointError, match="scale_attn_by_inverse_layer_idx = True is not supported"):
        open_source(bad)
    deep = _hf_dir(tmp_path / "deep", "bert", layers=4)  # weights of 4 layers, config.json says 2
    raw = json.loads((deep / "config.json").read_text())
    (deep / "config.json").write_text(json.dumps({**raw, "num_hidden_layers": 2}))
    with pytest.raises(CheckpointError, match=r"model.safetensors: does not fit config.json .*holds 32 tensor\(s\)"):
        open_source(deep)
