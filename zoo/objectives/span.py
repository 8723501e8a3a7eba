"""``span``, the name that picks the form of span corruption fitting the backbone (T5's span sampler,
which both forms draw from, is ``zoo.objectives.noise``).

Span corruption has two real forms, each its own objective:

* ``span-mask`` (``zoo.objectives.span_mask``): SpanBERT-style span masking, bidirectional, with
  the masked-LM head;
* ``span-lm`` (``zoo.objectives.span_lm``): T5's sentinel form as one prefix-LM row, with the tied LM head.

``span`` is the form that fits the backbone's lineage: span masking on an encoder architecture
(bert), the prefix-LM form on a decoder (gpt). Its options are the union of both forms'; an option
the chosen form does not have must stay at its default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from zoo.batch import SpecialTokens
from zoo.errors import ConfigError
from zoo.family import Family
from zoo.models.base import BackboneSpec
from zoo.objectives.base import Objective
from zoo.objectives.mlm import check_ratios
from zoo.objectives.noise import check_noise


@dataclass
class SpanConfig:
    """Options of ``span``: those of ``span-mask`` and ``span-lm`` together."""

    noise_density: float = 0.15  # fraction of tokens in noise spans
    mean_span_length: float = 3.0
    mask_ratio: float = 0.8  # span-mask: spans replaced by [MASK]
    random_ratio: float = 0.1  # span-mask: spans replaced by random tokens (the rest stay unchanged)
    paradigm: str = ""  # span-lm: a special token prepended to every row
    chunk_rows: int = 8192  # rows of vocabulary logits computed at once

    def __post_init__(self) -> None:
        check_noise(self.noise_density, self.mean_span_length, self.chunk_rows)
        check_ratios(self.noise_density, self.mask_ratio, self.random_ratio)


class SpanCorruption(Objective):
    """``span``: builds ``span-mask`` on an encoder architecture, ``span-lm`` on a decoder.

    ``SpanCorruption(config, tokens, spec)`` returns an instance of the chosen form, named ``span``
    (its head is saved as ``heads.span.*``); the class methods answer for the chosen form.
    """

    name = "span"
    sentinel_targets = True  # in its decoder form (span-lm); the encoder form is scored bidirectionally
    Config = SpanConfig
    corrupts_inputs = True
    encoder_decoder = True  # its span-lm form has one

    @staticmethod
    def form(family: str) -> type[Objective]:
        """The objective class ``span`` stands for on a backbone of ``family``."""
        if family == Family.ENCODER:
            from zoo.objectives.span_mask import SpanMasking

            return SpanMasking
        from zoo.objectives.span_lm import SpanLM

        return SpanLM

    def __new__(cls, config: SpanConfig | None, tokens: SpecialTokens, spec: BackboneSpec,
                name: str | None = None) -> Any:
        form = cls.form(spec.family)
        config = config if config is not None else SpanConfig()
        known = {f.name for f in dataclasses.fields(form.Config)}
        for f in dataclasses.fields(SpanConfig):
            if f.name not in known and getattr(config, f.name) != f.default:
                raise ConfigError(f"objectives.{name or cls.name}.{f.name} is an option of the other form of "
                                  f"span; on {spec.name} span is {form.name}, whose options are "
                                  f"{', '.join(sorted(known))}")
        own = form.Config(**{k: getattr(config, k) for k in known})
        return form(own, tokens, spec, name=name or cls.name)

    @classmethod
    def incompatibility(cls, capabilities: frozenset[str], family: str) -> str | None:
        return cls.form(family).incompatibility(capabilities, family)

    @classmethod
    def layout_for(cls, family: str) -> str | None:
        return cls.form(family).layout_for(family)

    @classmethod
    def rebuilds_rows_for(cls, family: str) -> bool:
        return cls.form(family).rebuilds_rows_for(family)

    @classmethod
    def min_seq_len(cls, family: str) -> int:
        return cls.form(family).min_seq_len(family)

    @classmethod
    def declared_special_tokens(cls, config: Any | None) -> tuple[str, ...]:
        paradigm = getattr(config, "paradigm", "")
        return (paradigm,) if paradigm else ()
