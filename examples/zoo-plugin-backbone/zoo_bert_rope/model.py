"""BERT with rotary position embeddings (RoPE; Su et al., 2021).

The built-in BERT encoder with one change: no learned position table; instead each layer rotates
queries and keys by an angle proportional to the token's position (the "rotate half" layout of
GPT-NeoX and Llama), so attention scores depend only on relative positions. Packed documents
restart their ``position_ids`` at 0, exactly as for ``bert``.

Through zoo's transformers hook (``hf``, ``hf_config``, ``hf_state_dict``, ...) it exports as
``transformers.RoFormerModel`` / ``RoFormerForMaskedLM`` and benches from such a directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.models import AttentionLayout, Backbone
from zoo.models import attention as attn
from zoo.models.base import HFNames, check_hf_exportable, check_hf_options, default_positions, init_weights
from zoo.models.bert import BertBackbone, BertConfig, BertLayer


@dataclass
class RopeBertConfig(BertConfig):
    rope_base: float = 10000.0  # theta: wavelengths grow geometrically from 2*pi to 2*pi*base

    def resolved(self) -> RopeBertConfig:
        out = super().resolved()
        if (out.hidden_size // out.num_heads) % 2:
            raise ValueError(f"rotary embeddings need an even head size, got {out.hidden_size // out.num_heads}")
        return out


def rotary_tables(position_ids: Tensor, head_dim: int, base: float) -> tuple[Tensor, Tensor]:
    """cos, sin: (B, T, 1, D) for positions (B, T)."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, device=position_ids.device).float() / head_dim)
    angles = position_ids.float()[..., None] * inv_freq  # (B, T, D/2)
    emb = torch.cat([angles, angles], dim=-1)[:, :, None, :]  # (B, T, 1, D)
    return emb.cos(), emb.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate (B, T, H, D) by the position angles (rotate-half layout)."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


class RopeBertLayer(BertLayer):
    """A BERT layer whose queries and keys are rotated before attention."""

    def forward(self, x: Tensor, mask: attn.PreparedMask, cos: Tensor, sin: Tensor) -> Tensor:  # type: ignore[override]
        batch, seq_len, hidden = x.shape  # (B, T, h)
        q, k, v = self.qkv(x).view(batch, seq_len, 3, self.num_heads, -1).unbind(2)  # 3 x (B, T, H, D)
        q, k = apply_rotary(q, cos, sin).to(v.dtype), apply_rotary(k, cos, sin).to(v.dtype)
        a = attn.attend(q, k, v, mask, self.attention_dropout if self.training else 0.0)
        x = self.attn_norm(x + self.dropout(self.attn_out(a.reshape(batch, seq_len, hidden))))
        y = self.ffn_out(F.gelu(self.ffn_in(x)))
        return self.ffn_norm(x + self.dropout(y))


class RopeBertBackbone(BertBackbone):
    """``bert`` with rotary positions; same capabilities, same spec, same FLOPs."""

    name = "bert-rope"
    capabilities = BertBackbone.capabilities
    Config = RopeBertConfig

    def __init__(self, config: RopeBertConfig) -> None:
        Backbone.__init__(self, config.resolved())  # BertBackbone's layers are replaced, not built twice
        c = self.config
        self.tok_emb = nn.Embedding(c.vocab_size, c.hidden_size)
        self.type_emb = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.emb_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.emb_dropout = nn.Dropout(c.dropout)
        self.layers = nn.ModuleList(RopeBertLayer(c) for _ in range(c.num_layers))
        self.final_norm = None  # post-LN layers: no final LayerNorm (bert's pre-LN option is not offered here)
        init_weights(self, c.initializer_range)

    def position_embedding(self) -> None:
        return None  # positions are rotary: there is no table to share

    def forward(self, input_ids: Tensor, layout: AttentionLayout, token_type_ids: Tensor | None = None,
                position_ids: Tensor | None = None) -> Tensor:
        c = self.config
        batch, seq_len = input_ids.shape
        if position_ids is None:
            position_ids = default_positions(input_ids)
        x = self.tok_emb(input_ids)  # (B, T, h): no position table
        x = x + (self.type_emb(token_type_ids) if token_type_ids is not None else self.type_emb.weight[0])
        x = self.emb_dropout(self.emb_norm(x))
        cos, sin = rotary_tables(position_ids, c.hidden_size // c.num_heads, c.rope_base)
        kernel = attn.resolve_kernel(c.attention, x.device)
        mask = attn.prepare(layout, kernel, batch, seq_len, c.num_heads, x.device, x.dtype)
        x = self.run_layers(x, self.layers, mask, cos, sin)
        return x  # (B, T, h)

    # --- the transformers hook: RoFormer ------------------------------------------------------------
    # RoFormer is this function with queries and keys rotated in interleaved pairs (2i, 2i+1) instead
    # of halves (i, i + D/2), at the same frequencies when rope_base is 10000. Permuting the rows of
    # each head's query and key projections (the same permutation for both, so scores are unchanged)
    # turns one layout into the other.
    hf = HFNames("roformer", "RoFormerModel", "roformer", heads={("mlm",): "RoFormerForMaskedLM"},
                 generated=("encoder.embed_positions.weight",))

    def _interleave(self, inverse: bool = False) -> Tensor:
        """Row order of a query/key projection: ours -> RoFormer's (or back, with ``inverse``)."""
        c = self.config
        d = c.hidden_size // c.num_heads
        half = torch.arange(d // 2)
        per_head = torch.stack([half, half + d // 2], dim=-1).flatten()  # (D,): 0, D/2, 1, D/2+1, ...
        if inverse:
            per_head = torch.argsort(per_head)
        return (torch.arange(c.num_heads)[:, None] * d + per_head).flatten()  # (H * D,)

    def _permute_qk(self, state: dict[str, Tensor], order: Tensor, prefix: str = "") -> dict[str, Tensor]:
        out = dict(state)
        for i in range(self.config.num_layers):
            for part in ("query", "key"):
                for kind in ("weight", "bias"):
                    key = f"{prefix}encoder.layer.{i}.attention.self.{part}.{kind}"
                    if key in out:
                        out[key] = out[key][order].contiguous()
        return out

    def hf_state_dict(self) -> dict[str, Tensor]:
        check_hf_exportable(self.config, self.name, {"rope_base": 10000.0})
        return self._permute_qk(super().hf_state_dict(), self._interleave())

    def load_hf_state_dict(self, state: dict[str, Tensor], strict: bool = True) -> None:
        prefix = "roformer." if any(k.startswith("roformer.") for k in state) else ""
        super().load_hf_state_dict(self._permute_qk(state, self._interleave(inverse=True), prefix), strict)

    def hf_config(self) -> Any:
        from transformers import RoFormerConfig

        c = self.config
        check_hf_exportable(c, self.name, {"rope_base": 10000.0, "norm_position": "post", "bias": True})
        return RoFormerConfig(
            vocab_size=c.vocab_size, embedding_size=c.hidden_size, hidden_size=c.hidden_size,
            num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads, intermediate_size=c.intermediate_size,
            hidden_act="gelu", hidden_dropout_prob=c.dropout, attention_probs_dropout_prob=c.attention_dropout,
            max_position_embeddings=c.max_positions, type_vocab_size=c.type_vocab_size,
            initializer_range=c.initializer_range, layer_norm_eps=c.layer_norm_eps, rotary_value=False,
        )

    @classmethod
    def config_from_hf(cls, hf: Any) -> RopeBertConfig:
        check_hf_options(hf, cls.name, {
            "rotary_value": (False, (False,), "rotation of queries and keys only"),
            "embedding_size": (hf.hidden_size, (hf.hidden_size,), "embeddings of the hidden size"),
        })
        return RopeBertConfig(**vars(super().config_from_hf(hf)))  # BERT's fields and checks
