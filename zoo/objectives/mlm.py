"""Masked language modelling as in BERT (Devlin et al., 2019; Google's create_pretraining_data.py).

Per row, exactly ``max(1, round(n * rate))`` of the ``n`` maskable tokens (not special, not
padding) are chosen; each chosen token becomes [MASK] (80%), a random ordinary token (10%) or
stays unchanged (10%). With ``whole_word`` the row's words (``batch.word_starts``) are visited in
random order and a word is taken only if it fits the remaining count, as Google's whole-word
masking does, so a word is masked entirely or not at all.

Sparse prediction: the head runs only at the chosen positions, padded to a fixed per-row width
``P = ceil(rate * T)`` (label -100) so shapes are static; empty slots skip the vocabulary projection.

On an encoder-decoder (``t5``) it is Raffel et al.'s "BERT-style" objective (Table 4): the encoder reads
each packed piece with its chosen tokens corrupted as above, and the decoder reconstructs the whole
original piece with the LM head of ``clm``. (T5 replaced 90% of the chosen tokens by the mask and 10%
by random tokens: ``mask_ratio = 0.9``, ``random_ratio = 0.1``.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.batch import Batch, SpecialTokens
from zoo.errors import DataError
from zoo.family import Family
from zoo.models.base import Backbone, BackboneSpec, init_weights
from zoo.objectives.base import LossOutput, Objective, TiedLinear
from zoo.objectives.common import (
    IGNORE,
    check_vocab,
    document_runs,
    gather_positions,
    lm_flops,
    non_special_ids,
    require_tokens,
    special_mask_of,
    token_cross_entropy,
)

# What happens to a chosen token.
MASK, KEEP, RANDOM = 0, 1, 2


@dataclass
class MLMConfig:
    rate: float = 0.15  # fraction of maskable tokens to predict
    mask_ratio: float = 0.8  # of those: replaced by [MASK]
    random_ratio: float = 0.1  # replaced by a random ordinary token (the rest stay unchanged)
    whole_word: bool = False  # mask whole words (needs word starts from the data pipeline)
    chunk_rows: int = 8192  # rows of vocabulary logits computed at once

    def __post_init__(self) -> None:
        check_ratios(self.rate, self.mask_ratio, self.random_ratio)
        if self.chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {self.chunk_rows}")


def check_ratios(rate: float, mask_ratio: float, random_ratio: float) -> None:
    if not 0.0 < rate < 1.0:
        raise ValueError(f"rate must be in (0, 1), got {rate}")
    if mask_ratio < 0 or random_ratio < 0 or mask_ratio + random_ratio > 1.0 + 1e-9:
        raise ValueError(f"mask_ratio ({mask_ratio}) and random_ratio ({random_ratio}) must be >= 0 "
                         f"and sum to at most 1 (the rest stays unchanged)")


def max_predictions(seq_len: int, rate: float) -> int:
    """Fixed per-row width of the prediction arrays: ceil(rate * T), at least 1."""
    return max(1, math.ceil(seq_len * rate - 1e-9))


def draw_kinds(n: int, mask_ratio: float, random_ratio: float, rng: np.random.Generator) -> np.ndarray:
    """MASK / KEEP / RANDOM for ``n`` chosen tokens (or spans), independently."""
    u = rng.random(n)
    return np.where(u < mask_ratio, MASK, np.where(u < mask_ratio + random_ratio, RANDOM, KEEP))


def apply_kinds(ids: np.ndarray, positions: np.ndarray, kinds: np.ndarray, mask_id: int,
                pool: np.ndarray, rng: np.random.Generator) -> None:
    """Rewrite ``ids`` (1-D, in place) at ``positions`` according to ``kinds``."""
    ids[positions[kinds == MASK]] = mask_id
    rand = positions[kinds == RANDOM]
    ids[rand] = pool[rng.integers(0, len(pool), size=len(rand))]


def word_groups(candidates: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split sorted candidate positions into words: (group start, group end) indices into candidates.

    A word starts where ``starts`` says so or where the candidates are not contiguous (a special
    token or a document boundary lies between), so no word ever crosses a [SEP] or a document.
    """
    new = starts[candidates].copy()
    new[0] = True
    new[1:] |= np.diff(candidates) != 1
    first = np.flatnonzero(new)
    return first, np.append(first[1:], len(candidates))


def choose_whole_words(candidates: np.ndarray, starts: np.ndarray, num: int,
                       rng: np.random.Generator) -> np.ndarray:
    """Google's whole-word selection: words in random order, skipping any that would exceed ``num``."""
    first, end = word_groups(candidates, starts)
    chosen: list[np.ndarray] = []
    total = 0
    for g in rng.permutation(len(first)):
        if total >= num:
            break
        size = int(end[g] - first[g])
        if total + size > num:
            continue
        chosen.append(candidates[first[g]:end[g]])
        total += size
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


class MaskedLMHead(nn.Module):
    """BERT's ``cls.predictions``: dense -> GELU -> LayerNorm, then a decoder tied to the input embedding."""

    hf_role = "mlm"  # the transformers hook (zoo.interop): a masked-LM head, ``cls.predictions``

    def __init__(self, spec: BackboneSpec, embedding: nn.Embedding) -> None:
        super().__init__()
        h = spec.hidden_size
        self.dense = nn.Linear(h, h)
        self.norm = nn.LayerNorm(h, eps=spec.layer_norm_eps)
        self.approximate = "tanh" if spec.activation == "gelu_tanh" else "none"
        init_weights(self, spec.initializer_range)
        self.decoder = TiedLinear(embedding, bias=True)

    def transform(self, x: Tensor) -> Tensor:  # (..., h) -> (..., h)
        return self.norm(F.gelu(self.dense(x), approximate=self.approximate))

    def forward(self, x: Tensor) -> Tensor:  # (..., h) -> (..., vocab)
        return self.decoder(self.transform(x))

    def hf_parameters(self) -> dict[str, nn.Parameter]:
        """The head's own parameters under the names of transformers' masked-LM classes (export and
        ``--init``); the decoder weight is the word embedding, its bias is ``cls.predictions.bias``."""
        return {
            "cls.predictions.transform.dense.weight": self.dense.weight,
            "cls.predictions.transform.dense.bias": self.dense.bias,
            "cls.predictions.transform.LayerNorm.weight": self.norm.weight,
            "cls.predictions.transform.LayerNorm.bias": self.norm.bias,
            "cls.predictions.bias": self.decoder.bias,
        }

    def hf_state_dict(self) -> dict[str, Tensor]:
        """``hf_parameters`` and the decoder bias (transformers stores it twice); weight = embeddings."""
        out = {k: v.detach().clone() for k, v in self.hf_parameters().items()}
        out["cls.predictions.decoder.bias"] = out["cls.predictions.bias"].clone()
        return out


def masked_lm_loss(head: MaskedLMHead, hidden: Tensor, positions: Tensor, labels: Tensor,
                   chunk_rows: int) -> LossOutput:
    """Loss at the gathered positions. hidden (B, T, h); positions, labels (B, P).

    Only labelled slots are projected onto the vocabulary (rows with fewer maskable tokens leave
    some of their P slots empty); under ``torch.compile`` all B * P are, which keeps shapes static.
    """
    x = head.transform(gather_positions(hidden, positions))  # (B, P, h)
    loss_sum, correct, count = token_cross_entropy(x, head.decoder.weight, head.decoder.bias, labels,
                                                   chunk_rows=chunk_rows,
                                                   select=not torch.compiler.is_compiling())
    denom = count.clamp(min=1)
    loss = loss_sum / denom
    return LossOutput(loss, count, {"loss": loss.detach(), "acc": correct / denom})


def mlm_head_flops(spec: BackboneSpec, positions: Any, labels: Any) -> float:
    """What ``masked_lm_loss`` computes: the transform at all B * P gathered slots, the vocabulary
    projection only at the filled (labelled) ones."""
    slots = int(np.prod(tuple(positions.shape)))
    filled = int((labels != IGNORE).sum())
    h = spec.hidden_size
    return 2.0 * slots * h * h + lm_flops(filled, h, spec.vocab_size)


class MaskedLM(Objective):
    """BERT masked language modelling with sparse prediction."""

    name = "mlm"
    Config = MLMConfig
    requires = frozenset({"bidirectional"})
    attention = "bidirectional"
    corrupts_inputs = True
    head_key = "mlm"
    encoder_decoder = True

    def __init__(self, config: MLMConfig | None, tokens: SpecialTokens, spec: BackboneSpec,
                 name: str | None = None) -> None:
        super().__init__(config, tokens, spec, name)
        require_tokens(tokens, "mask", by=self.name)
        check_vocab(tokens, spec, self.name)
        self.pool = non_special_ids(tokens)
        self.seq2seq = spec.family == Family.ENCODER_DECODER

    def prepare(self, data: Batch | Any, rng: np.random.Generator) -> Batch:
        if not isinstance(data, Batch):
            raise TypeError(f"{self.name} prepares packed rows (a Batch), got {type(data).__name__}")
        c: MLMConfig = self.config
        ids = np.array(data.input_ids, dtype=np.int64, copy=True)  # (B, T)
        special = special_mask_of(data, self.tokens)
        batch_size, seq_len = ids.shape
        width = max_predictions(seq_len, c.rate)
        positions = np.zeros((batch_size, width), dtype=np.int64)
        labels = np.full((batch_size, width), IGNORE, dtype=np.int64)
        if c.whole_word:
            if data.word_starts is None:
                raise DataError(f"{self.name}.whole_word needs word starts from the data pipeline; "
                                f"this batch has none")
            starts = np.asarray(data.word_starts, dtype=bool)
        for b in range(batch_size):
            cand = np.flatnonzero(~special[b])
            if len(cand) == 0:
                continue
            num = min(width, max(1, round(len(cand) * c.rate)))
            if c.whole_word:
                chosen = choose_whole_words(cand, starts[b], num, rng)
            else:
                chosen = np.sort(rng.choice(cand, size=num, replace=False))
            n = len(chosen)
            positions[b, :n] = chosen
            labels[b, :n] = ids[b, chosen]
            kinds = draw_kinds(n, c.mask_ratio, c.random_ratio, rng)
            apply_kinds(ids[b], chosen, kinds, self.tokens.mask, self.pool, rng)
        if self.seq2seq:
            return self._reconstruct(data, ids)
        targets = {**data.targets, self.name: {"positions": positions, "labels": labels}}
        return data.replace(input_ids=ids, special_mask=special, causal=False, prefix=None, targets=targets)

    def _reconstruct(self, data: Batch, corrupted: np.ndarray) -> Batch:
        """Encoder-decoder rows: each corrupted piece in, the original piece as the decoder's target."""
        from zoo.objectives.seq2seq import packed_seq2seq_rows

        original, doc_ids = np.asarray(data.input_ids, dtype=np.int64), np.asarray(data.doc_ids)
        rows = [[(corrupted[b, s:e], original[b, s:e]) for s, e in document_runs(doc_ids[b])]
                for b in range(original.shape[0])]
        batch, labels = packed_seq2seq_rows(rows, self.tokens.pad, np.array([self.tokens.mask]))
        return batch.replace(targets={**data.targets, self.name: {"labels": labels}})

    def build_heads(self, backbone: Backbone) -> nn.Module:
        if self.seq2seq:
            from zoo.objectives.clm import decoder_lm_head

            return decoder_lm_head(backbone)
        return MaskedLMHead(backbone.spec, backbone.input_embedding())

    def loss(self, heads: nn.Module | None, hidden: Tensor, batch: Batch) -> LossOutput:
        t = batch.targets[self.name]
        if self.seq2seq:
            from zoo.objectives.clm import lm_loss

            return lm_loss(heads, hidden, t["labels"], self.config.chunk_rows)
        return masked_lm_loss(heads, hidden, t["positions"], t["labels"], self.config.chunk_rows)

    def head_flops(self, batch: Batch) -> float:
        t = batch.targets[self.name]
        if self.seq2seq:
            from zoo.objectives.clm import lm_head_flops

            return lm_head_flops(self.spec, t["labels"])
        return mlm_head_flops(self.spec, t["positions"], t["labels"])
