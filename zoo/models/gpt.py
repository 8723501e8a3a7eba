"""GPT-2 decoder: pre-LayerNorm transformer, learned positions, GELU (tanh), final LayerNorm.

Numerically the same function as ``transformers.GPT2Model``. GPT-2 stores its projections as
``Conv1D`` (weight shape (in, out)); ``hf_state_dict`` / ``load_hf_state_dict`` transpose. The
attention pattern is the batch's: causal as GPT-2, or prefix-LM / bidirectional when the objective
asks for it. ``bias = False`` (off by default) drops the biases of every linear layer and
LayerNorm; such a model exports with zero biases, which computes the same function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from zoo.family import Family
from zoo.models import attention as attn
from zoo.models.attention import AttentionLayout
from zoo.models.base import (
    Backbone,
    BackboneConfig,
    HFNames,
    UsedKeys,
    bias_or_zeros,
    check_hf_exportable,
    check_hf_options,
    default_positions,
    init_weights,
    load_mapped,
)


@dataclass
class GPTConfig(BackboneConfig):
    max_positions: int = 1024
    layer_norm_eps: float = 1e-5


class GPTBlock(nn.Module):
    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        h = c.hidden_size
        self.num_heads = c.num_heads
        self.ln_1 = nn.LayerNorm(h, eps=c.layer_norm_eps, bias=c.bias)
        self.qkv = nn.Linear(h, 3 * h, bias=c.bias)
        self.attn_out = nn.Linear(h, h, bias=c.bias)
        self.ln_2 = nn.LayerNorm(h, eps=c.layer_norm_eps, bias=c.bias)
        self.ffn_in = nn.Linear(h, c.intermediate_size, bias=c.bias)
        self.ffn_out = nn.Linear(c.intermediate_size, h, bias=c.bias)
        self.dropout = nn.Dropout(c.dropout)
        self.attention_dropout = c.attention_dropout

    def forward(self, x: Tensor, mask: attn.PreparedMask) -> Tensor:
        batch, seq_len, hidden = x.shape  # (B, T, h)
        q, k, v = self.qkv(self.ln_1(x)).view(batch, seq_len, 3, self.num_heads, -1).unbind(2)
        a = attn.attend(q, k, v, mask, self.attention_dropout if self.training else 0.0)  # (B, T, H, D)
        x = x + self.dropout(self.attn_out(a.reshape(batch, seq_len, hidden)))
        y = self.ffn_out(F.gelu(self.ffn_in(self.ln_2(x)), approximate="tanh"))
        return x + self.dropout(y)


class GPTBackbone(Backbone):
    name = "gpt"
    family = Family.DECODER
    hf = HFNames("gpt2", "GPT2Model", "transformer", heads={("lm",): "GPT2LMHeadModel"})
    capabilities = frozenset({"bidirectional", "causal", "prefix", "packed"})
    Config = GPTConfig
    activation = "gelu_tanh"

    def __init__(self, config: GPTConfig) -> None:
        super().__init__(config.resolved())
        c = self.config
        self.tok_emb = nn.Embedding(c.vocab_size, c.hidden_size)
        self.pos_emb = nn.Embedding(c.max_positions, c.hidden_size)
        self.emb_dropout = nn.Dropout(c.dropout)
        self.layers = nn.ModuleList(GPTBlock(c) for _ in range(c.num_layers))
        self.ln_f = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps, bias=c.bias)
        init_weights(self, c.initializer_range)
        for layer in self.layers:  # GPT-2: residual projections scaled by 1/sqrt(2 * n_layer)
            for proj in (layer.attn_out, layer.ffn_out):
                nn.init.normal_(proj.weight, std=c.initializer_range / math.sqrt(2 * c.num_layers))

    def input_embedding(self) -> nn.Embedding:
        return self.tok_emb

    def position_embedding(self) -> nn.Embedding:
        return self.pos_emb

    def forward(self, input_ids: Tensor, layout: AttentionLayout, token_type_ids: Tensor | None = None,
                position_ids: Tensor | None = None) -> Tensor:
        if token_type_ids is not None:
            raise ValueError("the gpt backbone has no segment embeddings; separate segments with a token")
        batch, seq_len = input_ids.shape
        if position_ids is None:
            position_ids = default_positions(input_ids)
        x = self.emb_dropout(self.tok_emb(input_ids) + self.pos_emb(position_ids))  # (B, T, h)
        kernel = attn.resolve_kernel(self.config.attention, x.device)
        mask = attn.prepare(layout, kernel, batch, seq_len, self.config.num_heads, x.device, x.dtype)
        x = self.run_layers(x, self.layers, mask)
        return self.ln_f(x)  # (B, T, h)

    # --- Hugging Face GPT2Model layout -----------------------------------------------------------
    def hf_state_dict(self) -> dict[str, Tensor]:
        check_hf_exportable(self.config, self.name, _GPT_HF_OPTIONS)
        out = {"wte.weight": self.tok_emb.weight, "wpe.weight": self.pos_emb.weight,
               "ln_f.weight": self.ln_f.weight, "ln_f.bias": bias_or_zeros(self.ln_f)}
        for i, layer in enumerate(self.layers):
            for mine, theirs in _GPT_LAYER_NAMES.items():
                mod = getattr(layer, mine)
                conv = isinstance(mod, nn.Linear)  # Conv1D stores (in, out)
                out[f"h.{i}.{theirs}.weight"] = mod.weight.t() if conv else mod.weight
                out[f"h.{i}.{theirs}.bias"] = bias_or_zeros(mod)
        return {k: v.detach().clone().contiguous() for k, v in out.items()}

    def load_hf_state_dict(self, state: dict[str, Tensor], strict: bool = True) -> None:
        """Load GPT2Model weights (``transformer.`` prefixes stripped; heads and buffers ignored)."""
        src = UsedKeys({k.removeprefix("transformer."): v for k, v in state.items()})
        ours: dict[str, Any] = {
            "tok_emb.weight": src.get("wte.weight"), "pos_emb.weight": src.get("wpe.weight"),
            "ln_f.weight": src.get("ln_f.weight"), "ln_f.bias": src.get("ln_f.bias"),
        }
        for i, layer in enumerate(self.layers):
            for mine, theirs in _GPT_LAYER_NAMES.items():
                w = src.get(f"h.{i}.{theirs}.weight")
                conv = isinstance(getattr(layer, mine), nn.Linear)
                ours[f"layers.{i}.{mine}.weight"] = w.t() if (w is not None and conv) else w
                ours[f"layers.{i}.{mine}.bias"] = src.get(f"h.{i}.{theirs}.bias")
        load_mapped(self, ours, strict, "GPT2Model", src.unexpected(_GPT_NOT_BACKBONE))

    def hf_config(self) -> Any:
        from transformers import GPT2Config

        c = self.config
        check_hf_exportable(c, self.name, _GPT_HF_OPTIONS)
        return GPT2Config(
            vocab_size=c.vocab_size, n_positions=c.max_positions, n_embd=c.hidden_size,
            n_layer=c.num_layers, n_head=c.num_heads, n_inner=c.intermediate_size,
            activation_function="gelu_new", resid_pdrop=c.dropout, embd_pdrop=c.dropout,
            attn_pdrop=c.attention_dropout, layer_norm_epsilon=c.layer_norm_eps,
            initializer_range=c.initializer_range,
            bos_token_id=None, eos_token_id=None,  # GPT-2's 50256 is not ours; export sets the tokenizer's ids
        )

    @classmethod
    def config_from_hf(cls, hf: Any) -> GPTConfig:
        """Our config for a ``transformers.GPT2Config``; ``CheckpointError`` for options we do not compute.

        ``reorder_and_upcast_attn`` is accepted: it computes the same scores in fp32, a matter of
        precision, not of the function.
        """
        check_hf_options(hf, cls.name, {
            "activation_function": ("gelu_new", ("gelu_new", "gelu_pytorch_tanh"), "tanh-approximated GELU"),
            "scale_attn_weights": (True, (True,), "scores scaled by 1/sqrt(head_dim)"),
            "scale_attn_by_inverse_layer_idx": (False, (False,), "no per-layer score scaling"),
            "add_cross_attention": (False, (False,), "no cross-attention"),
        })
        return GPTConfig(
            vocab_size=hf.vocab_size, hidden_size=hf.n_embd, num_layers=hf.n_layer, num_heads=hf.n_head,
            intermediate_size=hf.n_inner or 4 * hf.n_embd, max_positions=hf.n_positions,
            dropout=hf.resid_pdrop, attention_dropout=hf.attn_pdrop,
            initializer_range=hf.initializer_range, layer_norm_eps=hf.layer_norm_epsilon,
        )


# GPT2LMHeadModel / task-model tensors and the attention-mask buffers of older checkpoints.
_GPT_NOT_BACKBONE = ("lm_head.*", "score.*", "h.*.attn.bias", "h.*.attn.masked_bias")

# Fields whose other values compute a function GPT2Model cannot (the export refuses them).
_GPT_HF_OPTIONS: dict[str, Any] = {}

_GPT_LAYER_NAMES = {
    "ln_1": "ln_1", "qkv": "attn.c_attn", "attn_out": "attn.c_proj",
    "ln_2": "ln_2", "ffn_in": "mlp.c_fc", "ffn_out": "mlp.c_proj",
}
