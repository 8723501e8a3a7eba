"""Architecture options off the transformers path: pre-LN encoder, bias-free layers (cramming)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo import registry
from zoo.errors import ConfigError
from zoo.models.attention import AttentionLayout


def _tiny(name: str, **kw):
    cls = registry.load("backbone", name)
    cfg = cls.Config(vocab_size=97, hidden_size=64, num_layers=2, num_heads=4, dropout=0.0,
                     attention_dropout=0.0, attention="eager", **kw)
    torch.manual_seed(0)
    return cls(cfg).eval()


def _layout(name: str, batch: int, seq: int) -> AttentionLayout:
    return AttentionLayout(causal=name == "gpt", doc_ids=torch.zeros(batch, seq, dtype=torch.long))


def test_defaults_are_the_transformers_architecture() -> None:
    bert, gpt = _tiny("bert"), _tiny("gpt")
    assert bert.config.norm_position == "post" and bert.config.bias and gpt.config.bias
    assert bert.final_norm is None  # BertModel has no final LayerNorm
    assert all(m.bias is not None for m in bert.modules() if isinstance(m, (torch.nn.Linear, torch.nn.LayerNorm)))


def _pre_ln_reference(model, ids: torch.Tensor) -> torch.Tensor:
    """Pre-LN BERT written out with functional ops: x + attn(LN(x)), x + ffn(LN(x)), final LN."""
    c = model.config
    ln = lambda x, m: F.layer_norm(x, (c.hidden_size,), m.weight, m.bias, c.layer_norm_eps)  # noqa: E731
    lin = lambda x, m: F.linear(x, m.weight, m.bias)  # noqa: E731
    pos = torch.arange(ids.shape[1])
    x = ln(model.tok_emb.weight[ids] + model.pos_emb.weight[pos] + model.type_emb.weight[0], model.emb_norm)
    b, t, h = x.shape
    for layer in model.layers:
        q, k, v = lin(ln(x, layer.attn_norm), layer.qkv).split(h, dim=-1)
        q, k, v = (z.view(b, t, c.num_heads, -1).transpose(1, 2) for z in (q, k, v))  # (B, H, T, D)
        scores = q @ k.transpose(-1, -2) / math.sqrt(h // c.num_heads)
        a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, h)
        x = x + lin(a, layer.attn_out)
        x = x + lin(F.gelu(lin(ln(x, layer.ffn_norm), layer.ffn_in)), layer.ffn_out)
    return ln(x, model.final_norm)


@pytest.mark.parametrize("bias", [True, False])
def test_pre_ln_bert_computes_the_pre_ln_function(bias: bool) -> None:
    model = _tiny("bert", norm_position="pre", bias=bias)
    assert model.final_norm is not None
    with torch.no_grad():
        for p in model.parameters():  # move off the unit/zero init so every term shows
            p.add_(0.05 * torch.randn_like(p))
    ids = torch.randint(5, 97, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(ids, _layout("bert", 2, 9))
        ref = _pre_ln_reference(model, ids)
    assert (out - ref).abs().max().item() < 1e-5
    post = _tiny("bert", bias=bias)
    post.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("final_norm")})
    with torch.no_grad():
        assert (post(ids, _layout("bert", 2, 9)) - out).abs().max().item() > 1e-2  # a different function


@pytest.mark.parametrize("name", ["bert", "gpt"])
def test_bias_free_layers_have_no_bias_and_every_parameter_learns(name: str) -> None:
    with_bias, without = _tiny(name), _tiny(name, bias=False)
    biases = {k for k, _ in with_bias.named_parameters() if k.endswith(".bias")}
    assert biases and not any(k.endswith(".bias") for k, _ in without.named_parameters())
    dropped = sum(p.numel() for k, p in with_bias.named_parameters() if k in biases)
    assert without.num_parameters() == with_bias.num_parameters() - dropped
    kw = {"norm_position": "pre"} if name == "bert" else {}
    for model in (without, _tiny(name, bias=False, **kw)):
        model.train()
        ids = torch.randint(5, 97, (2, 8), generator=torch.Generator().manual_seed(2))
        model(ids, _layout(name, 2, 8)).square().mean().backward()
        for k, p in model.named_parameters():
            if k == "type_emb.weight":
                continue  # only segment 0 is used
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, k


@pytest.mark.parametrize("backbone,model,message", [
    ("bert", {"norm_position": "middle"}, r"\[model\]: norm_position = 'middle'; expected one of post, pre"),
    ("gpt", {"norm_position": "pre"}, r"\[model\]: unknown backbone field\(s\) \['norm_position'\]"),
])
def test_bad_options_are_config_errors(backbone: str, model: dict, message: str) -> None:
    from zoo.train.resolve import resolve

    with pytest.raises(ConfigError, match=message):
        resolve({"backbone": backbone, "objective": "mlm" if backbone == "bert" else "clm", "size": "tiny",
                 "model": model})


@pytest.mark.parametrize("name,options,base", [
    ("bert", {"norm_position": "pre"}, "RobertaPreLayerNormModel"),
    ("bert", {"norm_position": "pre", "bias": False}, "RobertaPreLayerNormModel"),
    ("bert", {"bias": False}, "BertModel"),
    ("gpt", {"bias": False}, "GPT2Model"),
])
def test_the_options_are_transformers_classes(name: str, options: dict, base: str) -> None:
    """Bias-free layers are biased ones with zero biases; pre-LN bert is RoBERTa-PreLayerNorm, whose
    positions start after the padding id (here 0: one unused row first)."""
    import transformers

    model = _tiny(name, **options)
    config, state = model.hf_config(), model.hf_state_dict()
    assert type(config).__name__ == base.replace("Model", "Config")
    if base.startswith("Roberta"):
        config.pad_token_id = 0
        table = state["embeddings.position_embeddings.weight"]
        state["embeddings.position_embeddings.weight"] = torch.cat([torch.zeros(1, table.shape[1]), table])
        config.max_position_embeddings = table.shape[0] + 1
    config.attn_implementation = "eager"
    kw = {"add_pooling_layer": False} if name == "bert" else {}
    hf = getattr(transformers, base)(config, **kw).eval()
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected and not [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
    if options.get("bias") is False:
        assert all(not v.any() for k, v in state.items() if k.endswith(".bias"))
    ids = torch.randint(1, 97, (2, 9))
    with torch.no_grad():
        ours = model(ids, _layout(name, 2, 9))
        theirs = hf(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=0), float((ours - theirs).abs().max())
