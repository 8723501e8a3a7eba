"""Causal language modelling (next-token prediction) on packed rows, as GPT-2.

Rows hold several documents; attention is block-diagonal causal (``batch.causal`` with the
row's ``doc_ids``), so no token sees another document. The label at position t is the token at
t + 1 when both belong to the same document, else -100. The output projection is tied to the
input embedding without a bias (``GPT2LMHeadModel``); logits are computed only at labelled
positions, a chunk of rows at a time.

On an encoder-decoder (``t5``) the model is a language model of the decoder alone, as in Raffel et
al.'s Table 2: the encoder reads an empty input (the end-of-text token that ends an empty text) per
document piece, and the decoder predicts the piece from its start token on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor, nn

from zoo.batch import Batch, SpecialTokens
from zoo.errors import ConfigError
from zoo.family import Family
from zoo.models.base import Backbone, BackboneSpec
from zoo.objectives.base import LossOutput, Objective, TiedLinear, perplexity
from zoo.objectives.common import IGNORE, check_vocab, labelled_rows, lm_flops, token_cross_entropy


@dataclass
class LMConfig:
    chunk_rows: int = 8192  # rows of vocabulary logits computed at once

    def __post_init__(self) -> None:
        if self.chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {self.chunk_rows}")


def next_token_labels(ids: np.ndarray, doc_ids: np.ndarray) -> np.ndarray:
    """(B, T): token t + 1 where positions t and t + 1 hold the same document, else IGNORE."""
    labels = np.full(ids.shape, IGNORE, dtype=np.int64)
    same = (doc_ids[:, 1:] == doc_ids[:, :-1]) & (doc_ids[:, :-1] >= 0)
    labels[:, :-1] = np.where(same, ids[:, 1:], IGNORE)
    return labels


def paradigm_id(tokens: SpecialTokens, paradigm: str, by: str) -> int | None:
    """The id of a configured paradigm token (None for ""); a ``ConfigError`` naming the option if the
    tokenizer lacks it."""
    if not paradigm:
        return None
    try:
        return tokens.extra_id(paradigm, by=f"objectives.{by}.paradigm")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def lm_loss(head: TiedLinear, hidden: Tensor, labels: Tensor, chunk_rows: int) -> LossOutput:
    """Mean next-token cross-entropy over the labelled positions. hidden (B, T, h), labels (B, T)."""
    if head.scale != 1.0:
        hidden = hidden * head.scale
    loss_sum, correct, count = token_cross_entropy(hidden, head.weight, head.bias, labels,
                                                   chunk_rows=chunk_rows, select=True)
    denom = count.clamp(min=1)
    loss = loss_sum / denom
    return LossOutput(loss, count, {"loss": loss.detach(), "acc": correct / denom})


def decoder_lm_head(backbone: Backbone) -> TiedLinear:
    """The LM head of an encoder-decoder's decoder (T5): its output projection and output scale."""
    return TiedLinear(backbone.output_projection(), bias=False, scale=backbone.output_scale)


def lm_head_flops(spec: BackboneSpec, labels: Any) -> float:
    return lm_flops(labelled_rows(labels), spec.hidden_size, spec.vocab_size)


class LanguageModelBase(Objective):
    """Shared head, loss and accounting of the next-token objectives (clm, prefix, span-lm, deshuffle).

    A config with a ``paradigm`` option names a special token that leads every prepared row (UL2's
    ``[R]`` / ``[S]`` / ``[X]``); ``self.lead`` is its id, or None.
    """

    Config = LMConfig
    head_key = "lm"

    def __init__(self, config: Any | None, tokens: SpecialTokens, spec: BackboneSpec,
                 name: str | None = None) -> None:
        super().__init__(config, tokens, spec, name)
        check_vocab(tokens, spec, self.name)
        self.lead = paradigm_id(tokens, getattr(self.config, "paradigm", ""), self.name)

    @classmethod
    def declared_special_tokens(cls, config: Any | None) -> tuple[str, ...]:
        paradigm = getattr(config, "paradigm", "")
        return (*cls.special_tokens, *((paradigm,) if paradigm else ()))

    def build_heads(self, backbone: Backbone) -> nn.Module:
        if backbone.family == Family.ENCODER_DECODER:
            return decoder_lm_head(backbone)
        return TiedLinear(backbone.input_embedding(), bias=False)

    def loss(self, heads: nn.Module | None, hidden: Tensor, batch: Batch) -> LossOutput:
        return lm_loss(heads, hidden, batch.targets[self.name]["labels"], self.config.chunk_rows)

    def head_flops(self, batch: Batch) -> float:
        return lm_head_flops(self.spec, batch.targets[self.name]["labels"])

    def derived_metrics(self, means: dict[str, float]) -> dict[str, float]:
        return {"ppl": perplexity(means["loss"])} if "loss" in means else {}


class CausalLM(LanguageModelBase):
    """GPT-style next-token prediction with block-diagonal causal attention."""

    name = "clm"
    requires = frozenset({"causal", "packed"})
    attention = "causal"
    randomized = False
    encoder_decoder = True

    @classmethod
    def layout_for(cls, family: str) -> str | None:
        return "bidirectional" if family == Family.ENCODER_DECODER else "causal"  # the encoder's layout

    def prepare(self, data: Batch | Any, rng: np.random.Generator) -> Batch:
        if not isinstance(data, Batch):
            raise TypeError(f"{self.name} prepares packed rows (a Batch), got {type(data).__name__}")
        if self.spec.family == Family.ENCODER_DECODER:
            from zoo.objectives.seq2seq import document_texts, end_token, packed_seq2seq_rows

            empty = np.array([end_token(self.tokens)], dtype=np.int64)  # an empty text, ended
            rows = [[(empty, text) for text in texts] for texts in document_texts(data)]
            batch, labels = packed_seq2seq_rows(rows, self.tokens.pad, empty)
            return batch.replace(targets={**data.targets, self.name: {"labels": labels}})
        labels = next_token_labels(np.asarray(data.input_ids, dtype=np.int64), np.asarray(data.doc_ids))
        targets = {**data.targets, self.name: {"labels": labels}}
        return data.replace(causal=True, prefix=None, targets=targets)
