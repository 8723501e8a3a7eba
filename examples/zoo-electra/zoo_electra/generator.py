"""ELECTRA's generator and discriminator head (Clark et al., 2020; google-research/electra).

The generator is a narrow BERT: it embeds tokens with the discriminator's own token (and
position) embedding tables, normalises, projects down to its width (ELECTRA's
``embeddings_project``), runs ``layers`` BERT layers and predicts the masked tokens with a head
whose decoder is tied to the shared token embedding. Shared tables are held by reference, not
registered, so they are saved once, under ``backbone.*``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.models import AttentionLayout, Backbone
from zoo.models import attention as attn
from zoo.models.base import init_weights
from zoo.models.bert import BertConfig, BertLayer
from zoo.objectives import TiedLinear, position_embedding


@dataclass(frozen=True)
class GeneratorDims:
    hidden_size: int
    num_heads: int
    intermediate_size: int
    num_layers: int


class Generator(nn.Module):
    """Masked-LM generator sharing the backbone's embedding tables."""

    def __init__(self, backbone: Backbone, dims: GeneratorDims) -> None:
        super().__init__()
        spec = backbone.spec
        h, g = spec.hidden_size, dims.hidden_size
        dropout = float(getattr(backbone.config, "dropout", 0.1))
        self.attention = str(getattr(backbone.config, "attention", "auto"))
        self.num_heads = dims.num_heads
        object.__setattr__(self, "_tok_emb", backbone.input_embedding())  # shared, not a submodule
        shared_pos = position_embedding(backbone)
        object.__setattr__(self, "_shared_pos", shared_pos)
        # A backbone without a position table (rotary, relative) gives the generator its own.
        self.pos_emb = nn.Embedding(spec.max_positions, h) if shared_pos is None else None
        self.type_emb = nn.Embedding(spec.type_vocab_size, h) if spec.type_vocab_size > 0 else None
        self.emb_norm = nn.LayerNorm(h, eps=spec.layer_norm_eps)
        self.emb_proj = nn.Linear(h, g)
        self.dropout = nn.Dropout(dropout)
        layer = BertConfig(vocab_size=spec.vocab_size, hidden_size=g, num_layers=dims.num_layers,
                           num_heads=dims.num_heads, intermediate_size=dims.intermediate_size,
                           dropout=dropout, attention_dropout=float(getattr(backbone.config, "attention_dropout",
                                                                            dropout)),
                           layer_norm_eps=spec.layer_norm_eps).resolved()
        self.layers = nn.ModuleList(BertLayer(layer) for _ in range(dims.num_layers))
        # prediction head: dense (g -> h) -> GELU -> LayerNorm, decoder tied to the token embedding
        self.dense = nn.Linear(g, h)
        self.norm = nn.LayerNorm(h, eps=spec.layer_norm_eps)
        init_weights(self, spec.initializer_range)
        self.decoder = TiedLinear(self._tok_emb, bias=True)

    def forward(self, input_ids: Tensor, layout: AttentionLayout, token_type_ids: Tensor | None = None,
                position_ids: Tensor | None = None) -> Tensor:  # (B, T) -> (B, T, g)
        batch, seq_len = input_ids.shape
        if position_ids is None:
            position_ids = torch.arange(seq_len, device=input_ids.device)[None].expand(batch, -1)
        pos = self._shared_pos if self._shared_pos is not None else self.pos_emb
        x = self._tok_emb(input_ids) + pos(position_ids)  # (B, T, h)
        if self.type_emb is not None:
            x = x + (self.type_emb(token_type_ids) if token_type_ids is not None else self.type_emb.weight[0])
        x = self.emb_proj(self.dropout(self.emb_norm(x)))  # (B, T, g)
        kernel = attn.resolve_kernel(self.attention, x.device)
        mask = attn.prepare(layout, kernel, batch, seq_len, self.num_heads, x.device, x.dtype)
        for layer in self.layers:
            x = layer(x, mask)
        return x

    def logits(self, x: Tensor) -> Tensor:  # (..., g) -> (..., vocab)
        return self.decoder(self.norm(F.gelu(self.dense(x))))


class DiscriminatorHead(nn.Module):
    """ELECTRA's discriminator head: dense -> GELU -> one logit per token (replaced or not)."""

    def __init__(self, hidden_size: int, initializer_range: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.prediction = nn.Linear(hidden_size, 1)
        init_weights(self, initializer_range)

    def forward(self, hidden: Tensor) -> Tensor:  # (B, T, h) -> (B, T)
        return self.prediction(F.gelu(self.dense(hidden))).squeeze(-1)


class RTDHeads(nn.Module):
    """Everything ``rtd`` adds to the backbone: saved as ``heads.rtd.generator.*`` and
    ``heads.rtd.discriminator.*``."""

    def __init__(self, backbone: Backbone, dims: GeneratorDims) -> None:
        super().__init__()
        spec = backbone.spec
        self.generator = Generator(backbone, dims)
        self.discriminator = DiscriminatorHead(spec.hidden_size, spec.initializer_range)
