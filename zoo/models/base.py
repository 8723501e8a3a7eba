"""The backbone contract: token ids (+ segments, + an attention layout) in, hidden states out.

A backbone has no heads and no losses. It declares what it can do (``capabilities``) so that
objectives can check compatibility before anything is allocated, and exposes a ``spec`` and
its input embedding so that objectives can build (weight-tied) heads.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from zoo.errors import CheckpointError, ConfigError
from zoo.family import Family
from zoo.models.attention import KERNELS, AttentionLayout
from zoo.sizes import SIZES

CAPABILITIES = ("bidirectional", "causal", "prefix", "segments", "packed", "encoder-decoder")



@dataclass(frozen=True)
class BackboneSpec:
    """What heads need to know about a backbone."""

    name: str
    family: Family
    capabilities: frozenset[str]
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int
    type_vocab_size: int  # 0 when the backbone has no segment embeddings
    layer_norm_eps: float
    activation: str  # "gelu" (erf) or "gelu_tanh"
    initializer_range: float


@dataclass(frozen=True)
class HFNames:
    """How a backbone is called in ``transformers`` (the interop hook's names; ``zoo.interop`` uses them).

    ``heads`` maps the sorted roles of the exported heads (``zoo.interop.ROLES``) to the class holding
    them, e.g. ``("mlm", "nsp") -> "BertForPreTraining"``; with no exported head the export is ``base``.
    """

    model_type: str  # config.json "model_type", e.g. "bert"
    base: str  # the class of the backbone alone, e.g. "BertModel"
    prefix: str  # the base model's attribute inside the head classes, e.g. "bert" (``bert.encoder...``)
    heads: dict[tuple[str, ...], str] = field(default_factory=dict)
    pooler: bool = False  # ``base`` can hold a trained pooler (BertModel's ``add_pooling_layer``)
    generated: tuple[str, ...] = ()  # tensors the transformers class computes itself (sinusoid tables)
    # Head parameter names (BERT's, ``cls.predictions.*``) renamed for this model type: old prefix -> new.
    head_keys: dict[str, str] = field(default_factory=dict)
    # Position ids start at pad_token_id + 1 (RoBERTa): the exported position table gets that many
    # unused rows first, and max_position_embeddings counts them.
    positions_after_pad: bool = False
    aliases: tuple[str, ...] = ()  # other config.json model types this backbone reads (``config_from_hf``)


@dataclass
class BackboneConfig:
    """Fields every built-in backbone shares; plugins may define their own Config dataclass."""

    vocab_size: int = 8000
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 0  # 0 -> hidden_size // 64
    intermediate_size: int = 0  # 0 -> 4 * hidden_size
    max_positions: int = 512
    dropout: float = 0.1
    attention_dropout: float = 0.1
    initializer_range: float = 0.02
    attention: str = "auto"  # auto | eager | sdpa | xformers
    activation_checkpointing: bool = False
    bias: bool = True  # False: no biases in linear layers and LayerNorms (cramming); exported as zero biases

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "num_layers", "max_positions"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_heads", "intermediate_size"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 1 (or 0 for the default), got {getattr(self, name)}")
        for name in ("dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.initializer_range <= 0:
            raise ValueError(f"initializer_range must be > 0, got {self.initializer_range}")
        if self.attention not in ("auto", *KERNELS):
            raise ValueError(f"attention = {self.attention!r} is not an attention kernel; expected one of "
                             f"auto, {', '.join(KERNELS)}")
        if self.hidden_size % self.heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.heads}")

    @property
    def heads(self) -> int:
        """``num_heads``, or hidden / 64 when it is 0 (the default)."""
        return self.num_heads or max(1, self.hidden_size // 64)

    def resolved(self) -> BackboneConfig:
        return replace(self, num_heads=self.heads, intermediate_size=self.intermediate_size or 4 * self.hidden_size)


def config_for_size(config_cls: type, size: str | None, **overrides: Any) -> Any:
    """A backbone config from a size preset (tiny .. base) plus any field overrides."""
    values: dict[str, Any] = {}
    if size is not None:
        if size not in SIZES:
            raise ValueError(f"unknown size {size!r}; expected one of {', '.join(SIZES)}")
        values["num_layers"], values["hidden_size"] = SIZES[size]
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown backbone field(s) {unknown}; expected some of {sorted(known)}")
    values.update(overrides)
    return config_cls(**values)


class Backbone(nn.Module):
    """Base class of every backbone plugin.

    Subclasses set ``name``, ``family``, ``capabilities`` and ``Config``, build their layers in
    ``__init__(config)`` and implement ``forward``.
    """

    name: ClassVar[str]
    # The architecture's lineage (``zoo.family.Family``, or its string), which picks the tokenizer and
    # row format; it never limits the attention patterns: those are ``capabilities``.
    family: ClassVar[Family | str]
    # What the architecture can run: "bidirectional", "causal", "prefix" (attention patterns, every
    # one with padding), "packed" (block-diagonal documents), "segments" (segment embeddings).
    capabilities: ClassVar[frozenset[str]]
    Config: ClassVar[type] = BackboneConfig
    activation: ClassVar[str] = "gelu"  # "gelu" (erf) or "gelu_tanh", for heads that match it

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    @property
    def spec(self) -> BackboneSpec:
        """Built from the config's standard fields; backbones with other configs override this."""
        c = self.config
        return BackboneSpec(
            name=self.name, family=Family.of(self.family), capabilities=self.capabilities,
            vocab_size=c.vocab_size, hidden_size=c.hidden_size, num_layers=c.num_layers,
            num_heads=c.num_heads, intermediate_size=c.intermediate_size, max_positions=c.max_positions,
            type_vocab_size=getattr(c, "type_vocab_size", 0), layer_norm_eps=getattr(c, "layer_norm_eps", 1e-5),
            activation=self.activation, initializer_range=c.initializer_range,
        )

    def run_layers(self, x: Tensor, layers: nn.ModuleList, *args: Any) -> Tensor:
        """Apply ``layers`` in order (with activation checkpointing when configured and training)."""
        use_checkpoint = getattr(self.config, "activation_checkpointing", False) and self.training
        for layer in layers:
            x = checkpoint(layer, x, *args, use_reentrant=False) if use_checkpoint else layer(x, *args)
        return x

    def forward(
        self,
        input_ids: Tensor,  # (B, T) long
        layout: AttentionLayout,
        token_type_ids: Tensor | None = None,  # (B, T) long, backbones with 'segments'
        position_ids: Tensor | None = None,  # (B, T) long; None -> 0..T-1
    ) -> Tensor:  # (B, T, hidden)
        raise NotImplementedError

    def input_embedding(self) -> nn.Embedding:
        """The token embedding, for heads whose decoder is tied to it."""
        raise NotImplementedError

    def position_embedding(self) -> nn.Embedding | None:
        """The learned absolute position table, for heads that share it; None when positions are
        encoded another way (rotary, relative)."""
        return None

    # --- the transformers hook (optional; docs/plugins.md). ``zoo.interop`` is its only user ---------
    # The transformers names of this architecture; None: it has no transformers counterpart.
    hf: ClassVar[HFNames | None] = None

    def hf_names(self) -> HFNames | None:
        """The transformers names of this model: ``hf``, unless a config option (bert's pre-LN
        ``norm_position``) makes it another transformers architecture."""
        return self.hf

    def hf_export_notes(self) -> list[str]:
        """What an export of this model should say about how its weights were translated."""
        if getattr(self.config, "bias", True) is False:
            return ["model.bias = False: the model was trained without biases in its linear layers and "
                    "LayerNorms; the export holds them as zero biases, which computes the same function"]
        return []

    def hf_state_dict(self) -> dict[str, Tensor]:
        """The weights under the parameter names and shapes of ``hf.base``."""
        raise NotImplementedError

    def load_hf_state_dict(self, state: dict[str, Tensor], strict: bool = True) -> None:
        """Load weights of ``hf.base`` (or of a head class, under ``hf.prefix``)."""
        raise NotImplementedError

    def hf_config(self) -> Any:
        """The matching ``transformers`` config object (e.g. BertConfig)."""
        raise NotImplementedError

    @classmethod
    def config_from_hf(cls, hf: Any) -> Any:
        """This backbone's Config for a ``transformers`` config; ``CheckpointError`` for options it does
        not compute."""
        raise NotImplementedError

    # --- compute accounting ------------------------------------------------------------------
    def flops_per_token(self, seq_len: int) -> float:
        """Forward-pass FLOPs per token (matmuls incl. attention scores), excluding heads."""
        s = self.spec
        h, f, layers = s.hidden_size, s.intermediate_size, s.num_layers
        per_layer = 2 * (4 * h * h + 2 * h * f) + 2 * 2 * seq_len * h  # projections + QK^T and AV
        return float(layers * per_layer)

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Embedding))
        return n


def init_weights(module: nn.Module, std: float) -> None:
    """BERT / GPT-2 initialisation: normal(0, std) weights, zero biases, unit LayerNorm."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=std)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def bias_or_zeros(module: nn.Module, size: int | None = None) -> Tensor:
    """A linear layer's or LayerNorm's bias, or zeros of its size when it has none (``bias = False``):
    a bias-free layer is a biased one whose biases are zero."""
    if module.bias is not None:
        return module.bias
    return torch.zeros(size or module.weight.shape[0], dtype=module.weight.dtype, device=module.weight.device)


def default_positions(input_ids: Tensor) -> Tensor:
    return torch.arange(input_ids.shape[1], device=input_ids.device)[None].expand_as(input_ids)


def check_hf_exportable(config: Any, backbone: str, options: dict[str, Any]) -> None:
    """Refuse to describe ``config`` as a transformers model when a field differs from ``options``
    (field -> the value transformers computes): the export would be another function."""
    for key, value in options.items():
        if getattr(config, key, value) != value:
            raise ConfigError(f"model.{key} = {getattr(config, key)!r} has no transformers counterpart: the "
                              f"{backbone} backbone exports only with {key} = {value!r}")


def check_hf_options(hf: Any, backbone: str, options: dict[str, tuple[Any, tuple[Any, ...], str]]) -> None:
    """Refuse a ``transformers`` config whose options change the function this backbone computes.

    ``options`` maps a config.json key to (value when the key is absent, accepted values, what the
    backbone implements). Raises ``CheckpointError`` naming the key, its value and what is supported.
    """
    for key, (default, accepted, what) in options.items():
        value = getattr(hf, key, default)
        if value not in accepted:
            raise CheckpointError(f"config.json {key} = {value!r} is not supported: the {backbone} backbone "
                                  f"implements {what} ({key} = {' or '.join(map(repr, accepted))})")


class UsedKeys:
    """``state.get`` that remembers which keys were read, to find what a load left over."""

    def __init__(self, state: dict[str, Tensor]) -> None:
        self.state = state
        self.used: set[str] = set()

    def get(self, key: str) -> Tensor | None:
        self.used.add(key)
        return self.state.get(key)

    def unexpected(self, ignored: tuple[str, ...]) -> list[str]:
        """Keys never read that match none of the ``ignored`` (fnmatch) patterns, sorted."""
        return sorted(k for k in self.state if k not in self.used
                      and not any(fnmatch.fnmatchcase(k, pat) for pat in ignored))


def load_mapped(module: nn.Module, mapped: dict[str, Tensor | None], strict: bool, source: str,
                unexpected: Sequence[str] = ()) -> None:
    """Copy translated tensors into ``module``, checking names and shapes.

    With ``strict``, a missing tensor is a ``KeyError`` and ``unexpected`` (tensors of the source
    that have no place here, e.g. layers beyond ``num_layers``) a ``CheckpointError``.
    """
    missing = sorted(k for k, v in mapped.items() if v is None)
    if missing and strict:
        raise KeyError(f"{source} state dict lacks tensors for {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected and strict:
        raise CheckpointError(
            f"{source} state dict holds {len(unexpected)} tensor(s) this backbone has no place for, e.g. "
            f"{list(unexpected[:5])}; the config (number of layers, sizes) does not describe these weights")
    own = module.state_dict()
    with torch.no_grad():
        for name, tensor in mapped.items():
            if tensor is None:
                continue
            if own[name].shape != tensor.shape:
                raise ValueError(f"{source} tensor for {name} has shape {tuple(tensor.shape)}, "
                                 f"expected {tuple(own[name].shape)}")
            own[name].copy_(tensor)
