"""T5's span sampler (Raffel et al., 2020), shared by the forms of span corruption (``span-mask``,
``span-lm``) and UL2's denoisers.

The noise mask is T5's ``random_spans_noise_mask``: exactly ``round(L * density)`` noise tokens in
``round(noise / mean_span_length)`` spans, span lengths from a uniformly random segmentation,
alternating non-noise / noise starting with non-noise (float32 rounding as in T5's TensorFlow code).
"""

from __future__ import annotations

import numpy as np


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
