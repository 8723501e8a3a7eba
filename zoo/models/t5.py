"""T5 encoder-decoder: pre-RMSNorm stacks, bucketed relative positions, cross-attention, no biases.

Numerically the same function as ``transformers.T5Model`` (and, with the LM head of
``zoo.objectives.seq2seq``, ``T5ForConditionalGeneration``). What sets T5 apart from ``bert`` / ``gpt``:

* one token embedding shared by the encoder, the decoder and (tied) the output projection;
* no position embeddings: each stack learns a bias per head and *relative-position bucket*
  (bidirectional in the encoder, past-only in the decoder), computed once and shared by all its layers;
  cross-attention has no position bias;
* RMSNorm (scale only, no mean, no bias) before every sublayer and once after each stack;
* scores are not scaled by 1/sqrt(d) (T5's initialisation absorbs it), and with tied embeddings the
  decoder output is scaled by d_model**-0.5 before the output projection (``output_scale``).

Attention layouts are the batch's, as for the other backbones: the encoder takes ``layout``
(bidirectional, padding, packed documents), the decoder ``decoder_layout`` (causal); cross-attention
lets decoder document d see encoder document d only, so packed examples never see each other in any of
the three attentions. Relative positions come from ``position_ids``, which restart per packed document.

Sizes: the presets give (layers, hidden) to each stack; heads = hidden / 64, FFN = 4 x hidden, so
``base`` is t5-base (12 + 12 layers, 768, 12 heads, d_ff 3072, ReLU FFN, tied embeddings: T5 v1.0).
``feed_forward = "gated-gelu"`` with ``tie_word_embeddings = False`` is T5 v1.1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
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
    BackboneSpec,
    HFNames,
    UsedKeys,
    check_hf_options,
    load_mapped,
)

# feed_forward -> (activation, gated); the names transformers' T5Config.feed_forward_proj takes.
FEED_FORWARD = {
    "relu": ("relu", False), "gelu": ("gelu", False), "silu": ("silu", False),
    "gated-gelu": ("gelu_tanh", True),  # transformers maps "gated-gelu" to gelu_new (tanh)
    "gated-relu": ("relu", True), "gated-silu": ("silu", True),
}


@dataclass
class T5Config(BackboneConfig):
    num_decoder_layers: int = 0  # 0 -> num_layers
    head_dim: int = 0  # d_kv; 0 -> hidden_size // num_heads
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_eps: float = 1e-6
    feed_forward: str = "relu"  # relu (T5 v1.0) | gated-gelu (v1.1) | gelu | silu | gated-relu | gated-silu
    tie_word_embeddings: bool = True  # False: an output projection of its own and no output scaling (v1.1)
    initializer_factor: float = 1.0  # T5's init: stds scaled by this factor
    bias: bool = False  # T5 has no biases anywhere

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bias:
            raise ValueError("bias = true is not available on t5: T5 has no biases in its linear layers or norms")
        if self.feed_forward not in FEED_FORWARD:
            raise ValueError(f"feed_forward = {self.feed_forward!r}; expected one of {', '.join(FEED_FORWARD)}")
        for name in ("num_decoder_layers", "head_dim"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 1 (or 0 for the default), got {getattr(self, name)}")
        if self.relative_attention_num_buckets < 2 or self.relative_attention_max_distance < 2:
            raise ValueError("relative_attention_num_buckets and relative_attention_max_distance must be >= 2")

    def resolved(self) -> T5Config:
        heads = self.heads
        return replace(self, num_heads=heads, intermediate_size=self.intermediate_size or 4 * self.hidden_size,
                       num_decoder_layers=self.num_decoder_layers or self.num_layers,
                       head_dim=self.head_dim or self.hidden_size // heads)


class RMSNorm(nn.Module):
    """T5LayerNorm: x / sqrt(mean(x^2) + eps) * weight, the mean of squares taken in fp32."""

    def __init__(self, hidden: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        variance = x.to(torch.float32).pow(2).mean(-1, keepdim=True)  # (..., 1)
        x = x * torch.rsqrt(variance + self.eps)
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            x = x.to(self.weight.dtype)
        return self.weight * x


def relative_position_bucket(relative: Tensor, bidirectional: bool, num_buckets: int, max_distance: int) -> Tensor:
    """T5's bucket of each ``relative`` position (key - query): exact buckets for small distances,
    logarithmic ones up to ``max_distance``; bidirectional buckets split by sign, unidirectional ones
    see only the past (future distances fall in bucket 0)."""
    buckets = torch.zeros_like(relative)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative > 0).long() * num_buckets
        relative = relative.abs()
    else:
        relative = -torch.clamp(relative, max=0)
    max_exact = num_buckets // 2
    large = max_exact + (torch.log(relative.float() / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).long()
    large = torch.clamp(large, max=num_buckets - 1)
    return buckets + torch.where(relative < max_exact, relative, large)


class RelativePositionBias(nn.Module):
    """One learned bias per (bucket, head); a stack computes it once and all its layers add it."""

    def __init__(self, c: T5Config, bidirectional: bool) -> None:
        super().__init__()
        self.bias = nn.Embedding(c.relative_attention_num_buckets, c.num_heads)
        self.bidirectional = bidirectional
        self.num_buckets = c.relative_attention_num_buckets
        self.max_distance = c.relative_attention_max_distance

    def forward(self, positions: Tensor) -> Tensor:  # (B|1, T) -> (B|1, H, T, T)
        relative = positions[:, None, :] - positions[:, :, None]  # key - query: (B|1, Tq, Tk)
        buckets = relative_position_bucket(relative, self.bidirectional, self.num_buckets, self.max_distance)
        return self.bias(buckets).permute(0, 3, 1, 2)


class T5Attention(nn.Module):
    """Multi-head attention without biases or score scaling; keys and values from ``memory`` when given."""

    def __init__(self, c: T5Config) -> None:
        super().__init__()
        inner = c.num_heads * c.head_dim
        self.num_heads, self.head_dim = c.num_heads, c.head_dim
        self.q = nn.Linear(c.hidden_size, inner, bias=False)
        self.k = nn.Linear(c.hidden_size, inner, bias=False)
        self.v = nn.Linear(c.hidden_size, inner, bias=False)
        self.o = nn.Linear(inner, c.hidden_size, bias=False)
        self.dropout = c.attention_dropout

    def forward(self, x: Tensor, bias: Tensor, kernel: str, memory: Tensor | None = None) -> Tensor:
        batch, tq, _ = x.shape  # (B, Tq, h)
        memory = x if memory is None else memory  # (B, Tk, h)
        tk = memory.shape[1]
        q = self.q(x).view(batch, tq, self.num_heads, self.head_dim)  # (B, Tq, H, D)
        k = self.k(memory).view(batch, tk, self.num_heads, self.head_dim)  # (B, Tk, H, D)
        v = self.v(memory).view(batch, tk, self.num_heads, self.head_dim)
        a = attn.attend_biased(q, k, v, bias, kernel, self.dropout if self.training else 0.0, scale=1.0)
        return self.o(a.reshape(batch, tq, -1))  # (B, Tq, h)


class T5FeedForward(nn.Module):
    """wo(act(wi x)), or wo(act(wi_0 x) * wi_1 x) when gated; dropout on the inner activations."""

    def __init__(self, c: T5Config) -> None:
        super().__init__()
        self.activation, self.gated = FEED_FORWARD[c.feed_forward]
        h, f = c.hidden_size, c.intermediate_size
        self.wi = nn.Linear(h, f, bias=False)
        self.wi_1 = nn.Linear(h, f, bias=False) if self.gated else None
        self.wo = nn.Linear(f, h, bias=False)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x: Tensor) -> Tensor:
        y = self.wi(x)  # (B, T, f)
        if self.activation == "gelu_tanh":
            y = F.gelu(y, approximate="tanh")
        else:
            y = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu}[self.activation](y)
        if self.wi_1 is not None:
            y = y * self.wi_1(x)
        return self.wo(self.dropout(y))  # (B, T, h)


class T5Layer(nn.Module):
    """Pre-norm residual blocks: self-attention, cross-attention over ``memory`` (decoder layers only:
    ``cross``), feed-forward."""

    def __init__(self, c: T5Config, cross: bool = False) -> None:
        super().__init__()
        self.self_norm = RMSNorm(c.hidden_size, c.layer_norm_eps)
        self.self_attn = T5Attention(c)
        self.cross_norm = RMSNorm(c.hidden_size, c.layer_norm_eps) if cross else None
        self.cross_attn = T5Attention(c) if cross else None
        self.ffn_norm = RMSNorm(c.hidden_size, c.layer_norm_eps)
        self.ffn = T5FeedForward(c)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x: Tensor, bias: Tensor, kernel: str, memory: Tensor | None = None,
                cross_bias: Tensor | None = None) -> Tensor:  # (B, T, h) -> (B, T, h)
        x = x + self.dropout(self.self_attn(self.self_norm(x), bias, kernel))
        if self.cross_attn is not None:
            x = x + self.dropout(self.cross_attn(self.cross_norm(x), cross_bias, kernel, memory))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


def cross_mask(decoder_docs: Tensor | None, encoder_docs: Tensor | None, td: int, te: int,
               device: torch.device) -> Tensor | None:
    """Bool (B|1, 1, Td, Te): decoder document d sees encoder document d; None when nothing is hidden.

    Padding decoder positions see every key (their output is never read), so no row is empty; a real
    decoder position whose document has no encoder token is an error (the row would attend to nothing).
    """
    if encoder_docs is None:
        return None
    enc = encoder_docs.to(device)
    dec = decoder_docs.to(device) if decoder_docs is not None else torch.zeros(enc.shape[0], td, dtype=enc.dtype,
                                                                            device=device)
    allowed = (dec[:, :, None] == enc[:, None, :]) | (dec < 0)[:, :, None]  # (B, Td, Te)
    if not bool(allowed.any(-1).all()):
        raise ValueError("a decoder document has no encoder tokens to attend to (its encoder input is empty "
                         "or its document ids do not match the encoder's)")
    return allowed[:, None]


class T5Backbone(Backbone):
    """Encoder-decoder: ``forward`` with decoder inputs returns the decoder's states, without them
    the encoder's (what a classification head or an encoder-only objective reads)."""

    name = "t5"
    family = Family.ENCODER_DECODER
    capabilities = frozenset({"bidirectional", "packed", "encoder-decoder"})
    Config = T5Config
    activation = "gelu"
    hf = HFNames("t5", "T5Model", "", heads={("lm",): "T5ForConditionalGeneration"})

    def __init__(self, config: T5Config) -> None:
        super().__init__(config.resolved())
        c = self.config
        self.tok_emb = nn.Embedding(c.vocab_size, c.hidden_size)  # shared by both stacks (and the tied head)
        self.dropout = nn.Dropout(c.dropout)
        self.encoder_bias = RelativePositionBias(c, bidirectional=True)
        self.encoder_layers = nn.ModuleList(T5Layer(c) for _ in range(c.num_layers))
        self.encoder_norm = RMSNorm(c.hidden_size, c.layer_norm_eps)
        self.decoder_bias = RelativePositionBias(c, bidirectional=False)
        self.decoder_layers = nn.ModuleList(T5Layer(c, cross=True) for _ in range(c.num_decoder_layers))
        self.decoder_norm = RMSNorm(c.hidden_size, c.layer_norm_eps)
        # An untied output projection belongs to the architecture (T5 v1.1), so it lives here.
        self.lm_head = None if c.tie_word_embeddings else nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """T5's initialisation (transformers' T5PreTrainedModel._init_weights, ``initializer_factor``)."""
        c, f = self.config, self.config.initializer_factor
        inner = c.num_heads * c.head_dim
        nn.init.normal_(self.tok_emb.weight, std=f)
        if self.lm_head is not None:
            nn.init.normal_(self.lm_head.weight, std=f)
        for rel in (self.encoder_bias, self.decoder_bias):
            nn.init.normal_(rel.bias.weight, std=f * c.hidden_size ** -0.5)
        for m in self.modules():
            if isinstance(m, RMSNorm):
                nn.init.constant_(m.weight, f)
            elif isinstance(m, T5Attention):
                nn.init.normal_(m.q.weight, std=f * (c.hidden_size * c.head_dim) ** -0.5)
                nn.init.normal_(m.k.weight, std=f * c.hidden_size ** -0.5)
                nn.init.normal_(m.v.weight, std=f * c.hidden_size ** -0.5)
                nn.init.normal_(m.o.weight, std=f * inner ** -0.5)
            elif isinstance(m, T5FeedForward):
                for w in (m.wi, m.wi_1):
                    if w is not None:
                        nn.init.normal_(w.weight, std=f * c.hidden_size ** -0.5)
                nn.init.normal_(m.wo.weight, std=f * c.intermediate_size ** -0.5)

    @property
    def spec(self) -> BackboneSpec:
        s = super().spec
        return replace(s, num_layers=self.config.num_layers + self.config.num_decoder_layers)

    @property
    def output_scale(self) -> float:
        """Factor on the decoder states before the output projection: d_model**-0.5 when it is tied."""
        return self.config.hidden_size ** -0.5 if self.config.tie_word_embeddings else 1.0

    def input_embedding(self) -> nn.Embedding:
        return self.tok_emb

    def output_projection(self) -> nn.Module:
        """The vocabulary projection of the decoder states: the shared embedding (tied) or ``lm_head``."""
        return self.lm_head if self.lm_head is not None else self.tok_emb

    def _positions(self, ids: Tensor, position_ids: Tensor | None) -> Tensor:
        return position_ids if position_ids is not None else torch.arange(ids.shape[1], device=ids.device)[None]

    def encode(self, input_ids: Tensor, layout: AttentionLayout, position_ids: Tensor | None = None) -> Tensor:
        """Encoder states (B, Te, h) after the final norm."""
        if layout.causal:
            raise ValueError("the t5 encoder is bidirectional; a causal layout belongs to the decoder")
        kernel = attn.resolve_kernel(self.config.attention, input_ids.device)
        x = self.dropout(self.tok_emb(input_ids))  # (B, Te, h)
        bias = self.encoder_bias(self._positions(input_ids, position_ids))  # (B|1, H, Te, Te)
        mask = attn.additive_mask(layout.dense_mask(input_ids.shape[1], x.device), bias.dtype)
        bias = bias if mask is None else bias + mask
        x = self.run_layers(x, self.encoder_layers, bias, kernel)
        return self.dropout(self.encoder_norm(x))

    def decode(self, decoder_input_ids: Tensor, memory: Tensor, decoder_layout: AttentionLayout | None = None,
               layout: AttentionLayout | None = None, decoder_position_ids: Tensor | None = None) -> Tensor:
        """Decoder states (B, Td, h) after the final norm, attending ``memory`` (the encoder states).

        ``decoder_layout`` (causal; None: causal, one document per row) and the encoder's ``layout``
        give the documents: decoder document d attends encoder document d."""
        decoder_layout = decoder_layout or AttentionLayout(causal=True)
        if not decoder_layout.causal or decoder_layout.prefix is not None:
            raise ValueError("the t5 decoder is causal; pass a causal decoder_layout without a prefix")
        kernel = attn.resolve_kernel(self.config.attention, decoder_input_ids.device)
        td, te = decoder_input_ids.shape[1], memory.shape[1]
        x = self.dropout(self.tok_emb(decoder_input_ids))  # (B, Td, h)
        bias = self.decoder_bias(self._positions(decoder_input_ids, decoder_position_ids))  # (B|1, H, Td, Td)
        bias = bias + attn.additive_mask(decoder_layout.dense_mask(td, x.device), bias.dtype)
        enc_docs = layout.doc_ids if layout is not None else None
        allowed = cross_mask(decoder_layout.doc_ids, enc_docs, td, te, x.device)
        cross_bias = (torch.zeros(1, 1, td, te, dtype=x.dtype, device=x.device) if allowed is None
                      else attn.additive_mask(allowed, x.dtype))  # (B|1, 1, Td, Te), no position bias
        x = self.run_layers(x, self.decoder_layers, bias, kernel, memory, cross_bias)
        return self.dropout(self.decoder_norm(x))

    def forward(self, input_ids: Tensor, layout: AttentionLayout, token_type_ids: Tensor | None = None,
                position_ids: Tensor | None = None, decoder_input_ids: Tensor | None = None,
                decoder_layout: AttentionLayout | None = None,
                decoder_position_ids: Tensor | None = None) -> Tensor:
        if token_type_ids is not None:
            raise ValueError("the t5 backbone has no segment embeddings; separate segments with a token")
        memory = self.encode(input_ids, layout, position_ids)  # (B, Te, h)
        if decoder_input_ids is None:
            return memory
        return self.decode(decoder_input_ids, memory, decoder_layout, layout, decoder_position_ids)  # (B, Td, h)

    # --- compute accounting ------------------------------------------------------------------
    def flops_per_token(self, seq_len: int) -> float:
        """Forward FLOPs per encoder token of an encoder-decoder step whose decoder rows are as long as
        its encoder rows (see ``seq2seq_flops`` for other shapes)."""
        return seq2seq_flops(self.config, seq_len, seq_len) / seq_len

    def batch_flops(self, batch: Any) -> float:
        """Forward FLOPs of an encoder-decoder batch: its rows at their padded widths (``seq2seq_flops``)."""
        rows, te = batch.input_ids.shape
        return rows * seq2seq_flops(self.config, te, batch.decoder_input_ids.shape[1])

    # --- Hugging Face T5Model layout -----------------------------------------------------------
    def hf_state_dict(self) -> dict[str, Tensor]:
        """The weights under T5Model's names, plus ``lm_head.weight`` when the output projection is untied
        (T5ForConditionalGeneration's)."""
        out: dict[str, Tensor] = {"shared.weight": self.tok_emb.weight, "encoder.embed_tokens.weight": self.tok_emb.weight,
                                  "decoder.embed_tokens.weight": self.tok_emb.weight}
        for ours, theirs in self._hf_names().items():
            out[theirs] = self.get_parameter(ours)
        if self.lm_head is not None:
            out["lm_head.weight"] = self.lm_head.weight
        return {k: v.detach().clone().contiguous() for k, v in out.items()}

    def load_hf_state_dict(self, state: dict[str, Tensor], strict: bool = True) -> None:
        """Load T5Model / T5ForConditionalGeneration weights (``transformer.`` prefixes stripped)."""
        src = UsedKeys({k.removeprefix("transformer."): v for k, v in state.items()})
        shared = src.get("shared.weight")
        for key in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
            shared = shared if shared is not None else src.get(key)
            src.get(key)
        ours: dict[str, Tensor | None] = {"tok_emb.weight": shared}
        ours.update({mine: src.get(theirs) for mine, theirs in self._hf_names().items()})
        if self.lm_head is not None:
            head = src.get("lm_head.weight")
            ours["lm_head.weight"] = head if head is not None else shared  # transformers >= 5 ties it always
        else:
            src.get("lm_head.weight")  # the tied projection is the shared embedding
        load_mapped(self, ours, strict, "T5Model", src.unexpected(_T5_NOT_BACKBONE))

    def _hf_names(self) -> dict[str, str]:
        """Our parameter name -> T5Model's, for everything but the shared embedding."""
        names = {"encoder_bias.bias.weight": "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                 "decoder_bias.bias.weight": "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                 "encoder_norm.weight": "encoder.final_layer_norm.weight",
                 "decoder_norm.weight": "decoder.final_layer_norm.weight"}
        ffn = {"wi": "wi_0" if self.config.feed_forward.startswith("gated") else "wi", "wi_1": "wi_1", "wo": "wo"}
        for stack, layers in (("encoder", self.encoder_layers), ("decoder", self.decoder_layers)):
            subs = [("self", "SelfAttention")] + ([("cross", "EncDecAttention")] if stack == "decoder" else [])
            for i, layer in enumerate(layers):
                p = f"{stack}.block.{i}.layer."
                for j, (mine, theirs) in enumerate(subs):
                    names[f"{stack}_layers.{i}.{mine}_norm.weight"] = f"{p}{j}.layer_norm.weight"
                    for proj in "qkvo":
                        names[f"{stack}_layers.{i}.{mine}_attn.{proj}.weight"] = f"{p}{j}.{theirs}.{proj}.weight"
                j = len(subs)
                names[f"{stack}_layers.{i}.ffn_norm.weight"] = f"{p}{j}.layer_norm.weight"
                for mine, theirs in ffn.items():
                    if getattr(layer.ffn, mine) is not None:
                        names[f"{stack}_layers.{i}.ffn.{mine}.weight"] = f"{p}{j}.DenseReluDense.{theirs}.weight"
        return names

    def hf_config(self) -> Any:
        from transformers import T5Config as HFT5Config

        c = self.config
        return HFT5Config(
            vocab_size=c.vocab_size, d_model=c.hidden_size, d_kv=c.head_dim, d_ff=c.intermediate_size,
            num_layers=c.num_layers, num_decoder_layers=c.num_decoder_layers, num_heads=c.num_heads,
            relative_attention_num_buckets=c.relative_attention_num_buckets,
            relative_attention_max_distance=c.relative_attention_max_distance, dropout_rate=c.dropout,
            layer_norm_epsilon=c.layer_norm_eps, initializer_factor=c.initializer_factor,
            feed_forward_proj=c.feed_forward, tie_word_embeddings=c.tie_word_embeddings,
            decoder_start_token_id=0,  # T5's: the pad id (zoo export sets the tokenizer's)
        )

    @classmethod
    def config_from_hf(cls, hf: Any) -> T5Config:
        """Our config for a ``transformers.T5Config``; ``CheckpointError`` for options we do not compute."""
        proj = getattr(hf, "feed_forward_proj", "relu")
        if proj not in FEED_FORWARD:
            raise CheckpointError(f"config.json feed_forward_proj = {proj!r} is not supported: the t5 backbone "
                                  f"implements {', '.join(FEED_FORWARD)}")
        check_hf_options(hf, cls.name, {"is_decoder": (False, (False,), "an encoder-decoder"),
                                        "is_encoder_decoder": (True, (True,), "an encoder-decoder")})
        tied = getattr(hf, "scale_decoder_outputs", getattr(hf, "tie_word_embeddings", True))
        return T5Config(
            vocab_size=hf.vocab_size, hidden_size=hf.d_model, num_layers=hf.num_layers,
            num_decoder_layers=hf.num_decoder_layers or hf.num_layers, num_heads=hf.num_heads, head_dim=hf.d_kv,
            intermediate_size=hf.d_ff, relative_attention_num_buckets=hf.relative_attention_num_buckets,
            relative_attention_max_distance=hf.relative_attention_max_distance, dropout=hf.dropout_rate,
            attention_dropout=hf.dropout_rate, layer_norm_eps=hf.layer_norm_epsilon,
            initializer_factor=hf.initializer_factor, feed_forward=proj, tie_word_embeddings=bool(tied),
        )


def seq2seq_flops(c: T5Config, encoder_len: int, decoder_len: int, cross_len: int | None = None) -> float:
    """Forward matmul FLOPs of one encoder-decoder row: 2 per multiply-add, heads excluded.

    Multiply-adds, with inner width i = heads x head_dim and FFN width f:
      encoder, per token and layer   4 h i (q, k, v, o) + 2 h f (3 h f gated) + 2 i Te (QK^T and AV)
      decoder, per token and layer   the same over Td, plus cross-attention 2 h i (q, o) + 2 i Te'
                                     (scores and AV over the Te' encoder tokens it sees, default Te)
      decoder, per encoder token     2 h i per layer (cross-attention keys and values, computed once)
    """
    h, f, i = c.hidden_size, c.intermediate_size, c.num_heads * c.head_dim
    ffn = (3 if FEED_FORWARD[c.feed_forward][1] else 2) * h * f
    te, td = encoder_len, decoder_len
    cross = te if cross_len is None else cross_len
    encoder = c.num_layers * te * (4 * h * i + ffn + 2 * i * te)
    decoder = c.num_decoder_layers * (td * (4 * h * i + ffn + 2 * i * td + 2 * h * i + 2 * i * cross)
                                      + te * 2 * h * i)
    return float(2 * (encoder + decoder))


# T5ForConditionalGeneration / task-model tensors that are not part of the backbone.
_T5_NOT_BACKBONE = ("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight", "classification_head.*",
                    "qa_outputs.*", "classifier.*")
