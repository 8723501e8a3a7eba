"""The objective contract.

An objective
  * chooses the attention pattern of its batches (``attention``) and declares the backbone
    capabilities it needs (``requires``, or ``incompatibility`` for rules more subtle than a set;
    ``zoo.objectives.compat`` applies them, the one compatibility rule),
  * builds its heads from the backbone (``build_heads``), saved under ``heads.<name>.*``,
  * turns data into a batch (``prepare``, numpy, seeded by the ``rng`` it is given), and
  * computes ``loss(heads, hidden, batch) -> LossOutput(loss, count, metrics)``.

Objectives whose forward pass is not "backbone once, then heads" (ELECTRA's generator, for
example) override ``compute``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from zoo.batch import Batch, Segments, SpecialTokens
from zoo.family import Family
from zoo.models.base import Backbone, BackboneSpec

if TYPE_CHECKING:
    from zoo.zoo_model import ZooModel


@dataclass
class NoConfig:
    """Config of an objective that has no options."""


@dataclass
class LossOutput:
    loss: Tensor  # scalar, mean over ``count`` predictions
    count: Tensor | int  # number of predictions the loss averages over (weights metric averages)
    metrics: dict[str, Tensor | float] = field(default_factory=dict)  # batch means, e.g. {"acc": ...}
    # Per-metric weights where they differ from ``count`` (a composition weighs ``mlm/acc`` by the
    # number of masked tokens and ``nsp/acc`` by the number of pairs); metrics absent here use ``count``.
    metric_counts: dict[str, Tensor | int] = field(default_factory=dict)


class Objective:
    """Base class of every objective plugin (built-in or third-party)."""

    name: ClassVar[str]
    Config: ClassVar[type] = NoConfig
    requires: ClassVar[frozenset[str]] = frozenset()
    # "pairs": builds [CLS] A [SEP] B [SEP] rows from ``Segments`` (runs first in a composition);
    # "tokens": works on the rows it is given (masking, corruption, labels).
    role: ClassVar[str] = "tokens"
    # The attention layout ``prepare`` sets: "bidirectional", "causal", "prefix", or None when the
    # objective keeps whatever layout its input rows have. Compositions refuse mixed layouts.
    attention: ClassVar[str | None] = None
    # True when ``prepare`` rewrites input ids (masking, corruption); a composition allows one such part.
    corrupts_inputs: ClassVar[bool] = False
    # True when ``prepare`` draws from its ``rng`` (different seeds give different batches).
    randomized: ClassVar[bool] = True
    # True when ``prepare`` builds new rows (another width, positions and layout) from the rows it is
    # given, as span corruption does on a decoder: any other part's targets and layout would refer to
    # rows that no longer exist, so a composition refuses such a part beside any other.
    rebuilds_rows: ClassVar[bool] = False
    # Which output head this objective's predictions use: objectives with the same key read the same
    # alignment through the same head and so may share one (a mixture such as ``mntp|clm`` trains a
    # single LM head). "lm": the tied next-token projection of ``clm`` (prediction for token t + 1 read
    # at t); "mlm": BERT's transform + tied decoder at the masked position; None: a head of its own.
    head_key: ClassVar[str | None] = None
    # How a token-level head's predictions line up with the tokens, for zero-shot scoring: the
    # prediction for token i is read at position i - ``read_offset`` (1 for masked next-token
    # prediction); ``sentinel_targets``: rows are rebuilt as ``input | target`` with T5 sentinels.
    read_offset: ClassVar[int] = 0
    sentinel_targets: ClassVar[bool] = False
    # The registered zero-shot reading (entry-point group ``zoo.scorers``) a model trained with this
    # objective is scored with; None: the one its attention layout implies (zoo.benchmarks.lm_scoring).
    scorer: ClassVar[str | None] = None
    # Special tokens the objective needs beyond the standard ones (e.g. UL2's paradigm tokens "[R]",
    # "[S]", "[X]"): the tokenizer reserves them when it is trained for a run of this objective, the
    # run's tokenizer and ``zoo export`` carry them, and ``SpecialTokens.extra`` maps them to ids.
    special_tokens: ClassVar[tuple[str, ...]] = ()
    # True when the objective has an encoder-decoder form: on a backbone of the ``encoder-decoder``
    # family, ``prepare`` then fills the batch's decoder fields (what the encoder reads, what the decoder
    # reads and predicts), and ``requires`` (the layouts of the single-stack form) does not apply there.
    # ``zoo.objectives.compat`` refuses the others on such a backbone.
    encoder_decoder: ClassVar[bool] = False

    def __init__(self, config: Any | None, tokens: SpecialTokens, spec: BackboneSpec,
                 name: str | None = None) -> None:
        self.config = config if config is not None else self.Config()
        self.tokens = tokens
        self.spec = spec
        self.name = name or type(self).name

    # --- compatibility -----------------------------------------------------------------------
    @classmethod
    def incompatibility(cls, capabilities: frozenset[str], family: str) -> str | None:
        """Why a backbone with these capabilities cannot be trained by this objective, or None.

        The per-objective hook of ``zoo.objectives.compat.incompatibility``; ``family`` is the
        architecture's lineage, which decides nothing about attention: refuse only what is missing."""
        missing = sorted(cls.requires - capabilities)
        if missing:
            return f"needs backbone capabilities {missing}, the backbone has {sorted(capabilities)}"
        return None

    @classmethod
    def layout_for(cls, family: str) -> str | None:
        """The attention layout this objective sets on a backbone of ``family`` (see ``attention``)."""
        return cls.attention

    @classmethod
    def min_seq_len(cls, family: str) -> int:
        """The shortest rows this objective can fill on a backbone of ``family`` (checked before any
        data work): an encoder row needs [CLS], a token and [SEP]; a decoder row a token and its successor."""
        return 3 if family == Family.ENCODER else 2

    @classmethod
    def rebuilds_rows_for(cls, family: str) -> bool:
        """Whether ``prepare`` rebuilds the rows on a backbone of ``family`` (see ``rebuilds_rows``); every
        encoder-decoder form does (into encoder and decoder rows)."""
        return cls.rebuilds_rows or (cls.encoder_decoder and family == Family.ENCODER_DECODER)

    @classmethod
    def declared_special_tokens(cls, config: Any | None) -> tuple[str, ...]:
        """The extra special tokens a run with ``config`` needs: ``special_tokens``, plus any a config
        option names (a paradigm token, for example)."""
        return cls.special_tokens

    # --- data ----------------------------------------------------------------------------------
    @property
    def unit(self) -> str:
        """What the data pipeline must deliver: 'rows' (packed ``Batch``) or 'segments'."""
        return "segments" if self.role == "pairs" else "rows"

    def row_length(self, seq_len: int) -> int:
        """Length of the raw rows to request so that prepared rows are ``seq_len`` long."""
        return seq_len

    def prepare(self, data: Batch | Segments, rng: np.random.Generator) -> Batch:
        raise NotImplementedError

    # --- model ---------------------------------------------------------------------------------
    def build_heads(self, backbone: Backbone) -> nn.Module | None:
        return None

    def heads(self, backbone: Backbone) -> dict[str, nn.Module]:
        """Heads by objective name (a composition returns one entry per part)."""
        head = self.build_heads(backbone)
        return {} if head is None else {self.name: head}

    def loss(self, heads: nn.Module | None, hidden: Tensor, batch: Batch) -> LossOutput:
        raise NotImplementedError

    def compute(self, model: ZooModel, batch: Batch) -> LossOutput:
        """Forward pass and loss. Default: run the backbone once, then ``loss``."""
        hidden = model.backbone(**batch.backbone_inputs())
        return self.loss(model.heads[self.name] if self.name in model.heads else None, hidden, batch)

    # --- accounting ------------------------------------------------------------------------------
    def head_flops(self, batch: Batch) -> float:
        """Forward FLOPs of this objective's heads on ``batch`` (for compute-matched budgets)."""
        return 0.0

    def backbone_passes(self) -> int:
        """Backbone forward passes per batch (the trainer charges each one). An objective that
        overrides ``compute`` to run the backbone more than once says so here."""
        return 1

    def derived_metrics(self, means: dict[str, float]) -> dict[str, float]:
        """Metrics computed from averaged ones (e.g. perplexity = exp(mean loss))."""
        return {}


class TiedLinear(nn.Module):
    """Output projection whose weight is a backbone's input embedding (weight tying).

    The embedding is held by reference, not registered, so the head's state dict never
    duplicates the embedding matrix.
    """

    def __init__(self, embedding: nn.Embedding | nn.Linear, bias: bool = True, scale: float = 1.0) -> None:
        super().__init__()
        object.__setattr__(self, "_embedding", embedding)  # not a submodule
        self.bias = nn.Parameter(torch.zeros(embedding.weight.shape[0])) if bias else None
        self.scale = scale  # on the input, before the projection (T5's d_model**-0.5 with tied embeddings)

    @property
    def weight(self) -> Tensor:
        return self._embedding.weight

    def forward(self, x: Tensor) -> Tensor:  # (..., h) -> (..., vocab)
        return nn.functional.linear(x * self.scale if self.scale != 1.0 else x, self.weight, self.bias)

    @property
    def hf_role(self) -> str | None:
        """The transformers hook (``zoo.interop``): without a bias, a tied causal-LM head (``lm_head``)."""
        return "lm" if self.bias is None else None


def position_embedding(backbone: Backbone) -> nn.Embedding | None:
    """The backbone's learned absolute position table, for heads that share it (ELECTRA's generator
    shares token and position embeddings with the discriminator), or None when the backbone encodes
    positions another way (rotary, relative).

    Like ``TiedLinear``, hold the result by reference (``object.__setattr__``) so that it is not
    saved twice.
    """
    return backbone.position_embedding()


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))
