"""T5's span sampler (Raffel et al., 2020) and ``span``, the name that picks the form of span
corruption fitting the backbone.

The noise mask is T5's ``random_spans_noise_mask``: exactly ``round(L * density)`` noise tokens in
``round(noise / mean_span_length)`` spans, span lengths from a uniformly random segmentation,
alternating non-noise / noise starting with non-noise (float32 rounding as in T5's TensorFlow code).

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

import numpy as np

from zoo.batch import SpecialTokens
from zoo.errors import ConfigError
from zoo.family import Family
from zoo.models.base import BackboneSpec
from zoo.objectives.base import Objective
from zoo.objectives.mlm import check_ratios


def check_noise(noise_density: float, mean_span_length: float, chunk_rows: int) -> None:
    """Validate the span sampler's options (``ValueError`` naming the option)."""
    if not 0.0 < noise_density <= 0.5:
        raise ValueError(f"noise_density must be in (0, 0.5], got {noise_density}")
    if mean_span_length < 1.0:
        raise ValueError(f"mean_span_length must be >= 1, got {mean_span_length}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")


def noise_counts(length: int, density: float, mean_span_length: float) -> tuple[int, int]:
    """(noise tokens, noise spans) of a text of ``length`` tokens, exactly as T5 computes them."""
    length = max(length, 2)
    num_noise = int(np.round(np.float32(length) * np.float32(density)))
    num_noise = min(max(num_noise, 1), length - 1)
    num_spans = int(np.round(np.float32(num_noise) / np.float32(mean_span_length)))
    # T5 leaves more spans than non-noise tokens undefined (possible only for tiny texts with
    # mean_span_length < 2); cap them so that every non-noise span stays non-empty.
    return num_noise, min(max(num_spans, 1), length - num_noise)


def _random_segmentation(num_items: int, num_segments: int, rng: np.random.Generator) -> np.ndarray:
    """Random partition of ``num_items`` into ``num_segments`` non-empty segments (their lengths)."""
    first = rng.permutation(np.arange(num_items - 1) < num_segments - 1)
    segment_id = np.cumsum(np.concatenate([[False], first]))
    return np.bincount(segment_id, minlength=num_segments)


def random_spans_noise_mask(length: int, density: float, mean_span_length: float,
                            rng: np.random.Generator) -> np.ndarray:
    """T5's noise mask: (length,) bool, True on noise tokens."""
    if length == 0:
        return np.zeros(0, dtype=bool)
    orig_length, length = length, max(length, 2)
    num_noise, num_spans = noise_counts(length, density, mean_span_length)
    noise_lengths = _random_segmentation(num_noise, num_spans, rng)
    nonnoise_lengths = _random_segmentation(length - num_noise, num_spans, rng)
    interleaved = np.stack([nonnoise_lengths, noise_lengths], axis=1).reshape(-1)
    starts = np.zeros(length, dtype=np.int64)
    starts[np.cumsum(interleaved)[:-1]] = 1
    return (np.cumsum(starts) % 2 == 1)[:orig_length]


def span_starts(noise: np.ndarray) -> np.ndarray:
    """First token of each noise span."""
    prev = np.concatenate([[False], noise[:-1]])
    return noise & ~prev


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
