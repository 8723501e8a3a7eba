"""BERT encoder: post-LayerNorm transformer, learned positions, token types, GELU (erf).

Numerically the same function as ``transformers.BertModel`` (without its pooler): the query,
key and value projections are fused into one matmul, and ``hf_state_dict`` /
``load_hf_state_dict`` translate to and from BertModel's parameter names and shapes. The attention
pattern is the batch's: bidirectional as BERT, or causal / prefix-LM when the objective asks for it.

Two options depart from BertModel (cramming, Geiping & Goldstein 2023), off by default:
``norm_position = "pre"`` normalises each sublayer's input instead of the residual sum and adds
a final LayerNorm (as GPT-2 does): that is RoBERTa-PreLayerNorm's layout, so such a model exports
to ``RobertaPreLayerNormModel`` / ``...ForMaskedLM`` (positions shifted past the padding id, as
RoBERTa counts them); ``bias = False`` drops the biases of every linear layer and LayerNorm, which
export as zero biases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.errors import CheckpointError
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
class BertConfig(BackboneConfig):
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    norm_position: str = "post"  # post (BERT) | pre (each sublayer's input, plus a final LayerNorm)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.norm_position not in NORM_POSITIONS:
            raise ValueError(f"norm_position = {self.norm_position!r}; expected one of {', '.join(NORM_POSITIONS)}")


NORM_POSITIONS = ("post", "pre")


class BertLayer(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        h = c.hidden_size
        self.num_heads = c.num_heads
        self.pre_norm = c.norm_position == "pre"
        self.qkv = nn.Linear(h, 3 * h, bias=c.bias)
        self.attn_out = nn.Linear(h, h, bias=c.bias)
        self.attn_norm = nn.LayerNorm(h, eps=c.layer_norm_eps, bias=c.bias)
        self.ffn_in = nn.Linear(h, c.intermediate_size, bias=c.bias)
        self.ffn_out = nn.Linear(c.intermediate_size, h, bias=c.bias)
        self.ffn_norm = nn.LayerNorm(h, eps=c.layer_norm_eps, bias=c.bias)
        self.dropout = nn.Dropout(c.dropout)
        self.attention_dropout = c.attention_dropout

    def forward(self, x: Tensor, mask: attn.PreparedMask) -> Tensor:
        batch, seq_len, hidden = x.shape  # (B, T, h)
        y = self.attn_norm(x) if self.pre_norm else x
        q, k, v = self.qkv(y).view(batch, seq_len, 3, self.num_heads, -1).unbind(2)  # 3 x (B, T, H, D)
        a = attn.attend(q, k, v, mask, self.attention_dropout if self.training else 0.0)
        x = x + self.dropout(self.attn_out(a.reshape(batch, seq_len, hidden)))
        if not self.pre_norm:
            x = self.attn_norm(x)
        y = self.ffn_out(F.gelu(self.ffn_in(self.ffn_norm(x) if self.pre_norm else x)))  # (B, T, h)
        x = x + self.dropout(y)
        return x if self.pre_norm else self.ffn_norm(x)


class BertBackbone(Backbone):
    name = "bert"
    family = Family.ENCODER
    capabilities = frozenset({"bidirectional", "causal", "prefix", "segments", "packed"})
    Config = BertConfig
    hf = HFNames("bert", "BertModel", "bert", pooler=True, heads={
        ("mlm", "nsp"): "BertForPreTraining", ("mlm",): "BertForMaskedLM", ("nsp",): "BertForNextSentencePrediction"},
        aliases=("roberta-prelayernorm",))

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config.resolved())
        c = self.config
        self.tok_emb = nn.Embedding(c.vocab_size, c.hidden_size)
        self.pos_emb = nn.Embedding(c.max_positions, c.hidden_size)
        self.type_emb = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.emb_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps, bias=c.bias)
        self.emb_dropout = nn.Dropout(c.dropout)
        self.layers = nn.ModuleList(BertLayer(c) for _ in range(c.num_layers))
        # pre-LN leaves the residual stream unnormalised: normalise the output once, as GPT-2 does
        self.final_norm = (nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps, bias=c.bias)
                           if c.norm_position == "pre" else None)
        init_weights(self, c.initializer_range)

    def input_embedding(self) -> nn.Embedding:
        return self.tok_emb

    def position_embedding(self) -> nn.Embedding:
        return self.pos_emb

    def hf_names(self) -> HFNames | None:
        return PRE_LN_HF if self.config.norm_position == "pre" and self.hf is not None else self.hf

    def forward(self, input_ids: Tensor, layout: AttentionLayout, token_type_ids: Tensor | None = None,
                position_ids: Tensor | None = None) -> Tensor:
        batch, seq_len = input_ids.shape
        if position_ids is None:
            position_ids = default_positions(input_ids)
        x = self.tok_emb(input_ids) + self.pos_emb(position_ids)  # (B, T, h)
        x = x + (self.type_emb(token_type_ids) if token_type_ids is not None else self.type_emb.weight[0])
        x = self.emb_dropout(self.emb_norm(x))
        kernel = attn.resolve_kernel(self.config.attention, x.device)
        mask = attn.prepare(layout, kernel, batch, seq_len, self.config.num_heads, x.device, x.dtype)
        x = self.run_layers(x, self.layers, mask)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x  # (B, T, h)

    # --- Hugging Face BertModel (post-LN) / RobertaPreLayerNormModel (pre-LN) layout ---------------
    def _layer_names(self) -> dict[str, str]:
        return _PRE_LN_LAYER_NAMES if self.config.norm_position == "pre" else _BERT_LAYER_NAMES

    def hf_state_dict(self) -> dict[str, Tensor]:
        """The weights under BertModel's names (pre-LN: RobertaPreLayerNormModel's, whose position
        table ``zoo.interop`` shifts past the padding id); absent biases as zeros."""
        check_hf_exportable(self.config, self.name, _BERT_HF_OPTIONS)
        h = self.config.hidden_size
        out = {
            "embeddings.word_embeddings.weight": self.tok_emb.weight,
            "embeddings.token_type_embeddings.weight": self.type_emb.weight,
            "embeddings.LayerNorm.weight": self.emb_norm.weight,
            "embeddings.LayerNorm.bias": bias_or_zeros(self.emb_norm),
        }
        if self.position_embedding() is not None:  # a subclass may encode positions another way
            out["embeddings.position_embeddings.weight"] = self.pos_emb.weight
        for i, layer in enumerate(self.layers):
            p = f"encoder.layer.{i}."
            qkv_bias = bias_or_zeros(layer.qkv)
            for j, part in enumerate(("query", "key", "value")):
                out[f"{p}attention.self.{part}.weight"] = layer.qkv.weight[j * h:(j + 1) * h]
                out[f"{p}attention.self.{part}.bias"] = qkv_bias[j * h:(j + 1) * h]
            for ours, theirs in self._layer_names().items():
                mod = getattr(layer, ours)
                out[f"{p}{theirs}.weight"] = mod.weight
                out[f"{p}{theirs}.bias"] = bias_or_zeros(mod)
        if self.final_norm is not None:
            out["LayerNorm.weight"] = self.final_norm.weight
            out["LayerNorm.bias"] = bias_or_zeros(self.final_norm)
        return {k: v.detach().clone().contiguous() for k, v in out.items()}

    def load_hf_state_dict(self, state: dict[str, Tensor], strict: bool = True) -> None:
        """Load BertModel (pre-LN: RobertaPreLayerNormModel) weights, the base model's prefix stripped;
        pooler and heads ignored. A RoBERTa position table's leading rows (the padding id's and those
        before it) are dropped."""
        names = self.hf_names()
        prefix = f"{names.prefix}." if names is not None else "bert."
        src = UsedKeys({k.removeprefix(prefix): v for k, v in state.items()})
        ours: dict[str, Tensor | None] = {
            "tok_emb.weight": src.get("embeddings.word_embeddings.weight"),
            "type_emb.weight": src.get("embeddings.token_type_embeddings.weight"),
            "emb_norm.weight": src.get("embeddings.LayerNorm.weight"),
            "emb_norm.bias": src.get("embeddings.LayerNorm.bias"),
        }
        if self.position_embedding() is not None:
            table = src.get("embeddings.position_embeddings.weight")
            if table is not None and names is not None and names.positions_after_pad:
                table = table[-self.config.max_positions:]  # rows pad_token_id + 1 onwards
            ours["pos_emb.weight"] = table
        if self.final_norm is not None:
            ours["final_norm.weight"], ours["final_norm.bias"] = src.get("LayerNorm.weight"), src.get("LayerNorm.bias")
        for i in range(len(self.layers)):
            p = f"encoder.layer.{i}."
            for kind in ("weight", "bias"):
                parts = [src.get(f"{p}attention.self.{n}.{kind}") for n in ("query", "key", "value")]
                ours[f"layers.{i}.qkv.{kind}"] = None if any(t is None for t in parts) else torch.cat(parts)
                for mine, theirs in self._layer_names().items():
                    ours[f"layers.{i}.{mine}.{kind}"] = src.get(f"{p}{theirs}.{kind}")
        ignored = _BERT_NOT_BACKBONE + (names.generated if names is not None else ())
        load_mapped(self, ours, strict, names.base if names is not None else "BertModel", src.unexpected(ignored))

    def hf_config(self) -> Any:
        c = self.config
        check_hf_exportable(c, self.name, _BERT_HF_OPTIONS)
        common = dict(
            vocab_size=c.vocab_size, hidden_size=c.hidden_size, num_hidden_layers=c.num_layers,
            num_attention_heads=c.num_heads, intermediate_size=c.intermediate_size, hidden_act="gelu",
            hidden_dropout_prob=c.dropout, attention_probs_dropout_prob=c.attention_dropout,
            max_position_embeddings=c.max_positions, type_vocab_size=c.type_vocab_size,
            layer_norm_eps=c.layer_norm_eps, initializer_range=c.initializer_range,
        )
        if c.norm_position == "pre":  # zoo.interop adds the rows before the first position
            from transformers import RobertaPreLayerNormConfig

            return RobertaPreLayerNormConfig(**common, bos_token_id=None, eos_token_id=None)
        from transformers import BertConfig as HFBertConfig

        return HFBertConfig(**common)

    @classmethod
    def config_from_hf(cls, hf: Any) -> BertConfig:
        """Our config for a ``transformers.BertConfig`` or ``RobertaPreLayerNormConfig`` (pre-LN, its
        positions counted from the padding id + 1); ``CheckpointError`` for options we do not compute."""
        check_hf_options(hf, cls.name, {
            "hidden_act": ("gelu", ("gelu", "gelu_python"), "exact (erf) GELU"),
            "position_embedding_type": ("absolute", ("absolute",), "learned absolute positions"),
            "is_decoder": (False, (False,), "a bidirectional encoder"),
            "add_cross_attention": (False, (False,), "no cross-attention"),
        })
        pre = getattr(hf, "model_type", "bert") == PRE_LN_HF.model_type
        positions = hf.max_position_embeddings
        if pre:
            pad = hf.pad_token_id if hf.pad_token_id is not None else 0
            positions -= pad + 1
            if positions < 1:
                raise CheckpointError(f"max_position_embeddings = {hf.max_position_embeddings} leaves no position "
                                      f"after the padding id {pad} (RoBERTa's positions start at pad_token_id + 1)")
        return BertConfig(
            vocab_size=hf.vocab_size, hidden_size=hf.hidden_size, num_layers=hf.num_hidden_layers,
            num_heads=hf.num_attention_heads, intermediate_size=hf.intermediate_size,
            max_positions=positions, dropout=hf.hidden_dropout_prob,
            attention_dropout=hf.attention_probs_dropout_prob, initializer_range=hf.initializer_range,
            type_vocab_size=hf.type_vocab_size, layer_norm_eps=hf.layer_norm_eps,
            norm_position="pre" if pre else "post",
        )


# BertForPreTraining / task-model tensors and buffers that are not part of the encoder.
_BERT_NOT_BACKBONE = ("pooler.*", "cls.*", "lm_head.*", "classifier.*", "qa_outputs.*", "embeddings.position_ids",
                      "embeddings.token_type_ids")

# Fields whose other values compute a function no transformers class does (the export refuses them).
_BERT_HF_OPTIONS: dict[str, Any] = {}

# Pre-LN: RoBERTa-PreLayerNorm's classes, RoBERTa's masked-LM head (``lm_head``) under its names.
PRE_LN_HF = HFNames("roberta-prelayernorm", "RobertaPreLayerNormModel", "roberta_prelayernorm", pooler=True,
                    heads={("mlm",): "RobertaPreLayerNormForMaskedLM"}, positions_after_pad=True,
                    head_keys={"cls.predictions.transform.dense.": "lm_head.dense.",
                               "cls.predictions.transform.LayerNorm.": "lm_head.layer_norm.",
                               "cls.predictions.decoder.": "lm_head.decoder.",
                               "cls.predictions.bias": "lm_head.bias"})

_BERT_LAYER_NAMES = {
    "attn_out": "attention.output.dense",
    "attn_norm": "attention.output.LayerNorm",
    "ffn_in": "intermediate.dense",
    "ffn_out": "output.dense",
    "ffn_norm": "output.LayerNorm",
}
_PRE_LN_LAYER_NAMES = {
    "attn_out": "attention.output.dense",
    "attn_norm": "attention.LayerNorm",  # normalises the attention's input
    "ffn_in": "intermediate.dense",
    "ffn_out": "output.dense",
    "ffn_norm": "intermediate.LayerNorm",  # normalises the feed-forward's input
}

