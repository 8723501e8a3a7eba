"""T5 span corruption: exact counts against T5's formula, sentinel rows, encoder span masking."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zoo.errors import ConfigError
from zoo.objectives.common import IGNORE
from zoo.objectives.compose import build_objective
from zoo.objectives.mlm import KEEP, MASK, RANDOM
from zoo.objectives.noise import random_spans_noise_mask
from zoo.objectives.spec import parse_spec
from zoo.testing import special_tokens_for_tests, synthetic_rows, synthetic_source, tiny_backbone

TOKENS = special_tokens_for_tests(vocab_size=8000, num_sentinels=100)
GPT = tiny_backbone("gpt", TOKENS.vocab_size, max_positions=1024).spec
BERT = tiny_backbone("bert", TOKENS.vocab_size, max_positions=1024).spec


def t5_counts(length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0) -> tuple[int, int]:
    """Direct port of the counts in T5's random_spans_noise_mask (t5/data/preprocessors.py)."""
    length = max(length, 2)  # "increase length to avoid degeneracy"
    num_noise_tokens = int(np.round(np.float32(length) * np.float32(noise_density)))  # tf.round, float32
    num_noise_tokens = min(max(num_noise_tokens, 1), length - 1)
    num_noise_spans = int(np.round(np.float32(num_noise_tokens) / np.float32(mean_noise_span_length)))
    return num_noise_tokens, max(num_noise_spans, 1)


def _spans(mask: np.ndarray) -> int:
    return int((mask & ~np.concatenate([[False], mask[:-1]])).sum())


@pytest.mark.parametrize("density,mean", [(0.15, 3.0), (0.3, 5.0), (0.5, 2.0)])
def test_noise_mask_counts_equal_t5(density: float, mean: float) -> None:
    rng = np.random.default_rng(0)
    for length in list(range(2, 300)) + [511, 512, 568, 1024]:
        n, s = t5_counts(length, density, mean)
        for _ in range(3):
            mask = random_spans_noise_mask(length, density, mean, rng)
            assert mask.shape == (length,) and mask.dtype == bool
            assert mask.sum() == n, f"length {length}"
            assert _spans(mask) == s, f"length {length}"
            assert not mask[0] and mask[-1]  # non-noise first, noise last (T5)
    assert not random_spans_noise_mask(1, density, mean, rng).any()  # T5's degenerate case


def test_noise_mask_segmentation_is_random() -> None:
    rng = np.random.default_rng(1)
    masks = np.stack([random_spans_noise_mask(100, 0.15, 3.0, rng) for _ in range(2000)])
    assert (masks.sum(1) == 15).all()
    assert len({m.tobytes() for m in masks}) == len(masks)  # no two alike
    lengths = []
    for m in masks:
        edges = np.flatnonzero(np.diff(np.concatenate([[0], m.astype(int), [0]])))
        lengths += (edges[1::2] - edges[::2]).tolist()
    # 15 noise tokens cut at 4 of 14 uniformly chosen gaps: span length 1 has probability C(13,3)/C(14,4)
    assert abs(np.mean(np.array(lengths) == 1) - 286 / 1001) < 0.02
    assert masks[:, 1:60].mean() > 0.1  # spans land everywhere, not only at the end


def _row_length_bruteforce(seq_len: int) -> int:
    best = 0
    for length in range(2, seq_len + 1):
        n, s = t5_counts(length)
        if (length - n + s + 1) + (n + s + 1) <= seq_len:
            best = length
    return best


def test_row_length_is_exact() -> None:
    objective = build_objective(parse_spec("span"), {}, TOKENS, GPT)
    for seq_len in (16, 64, 100, 128, 256, 512, 1024):
        assert objective.row_length(seq_len) == _row_length_bruteforce(seq_len)
    # the T5 paper's setting: 568 raw tokens -> 512 inputs (incl. eos) and 114 targets; one row of 626
    assert _row_length_bruteforce(626) == 568


def test_decoder_rows_sentinels_and_reconstruction() -> None:
    objective = build_objective(parse_spec("span"), {}, TOKENS, GPT)
    seq_len = 256
    raw_len = objective.row_length(seq_len)
    source = synthetic_source(TOKENS, num_documents=200, seed=2)
    rows = synthetic_rows(TOKENS, "decoder", batch_size=64, seq_len=raw_len, seed=2, source=source)
    batch = objective.prepare(rows, np.random.default_rng(0))
    assert batch.causal and batch.prefix is not None and batch.input_ids.shape[1] <= seq_len
    sentinels = np.asarray(TOKENS.sentinels)
    labels = batch.targets["span"]["labels"]
    total_noise = total_tokens = 0
    for r in range(64):
        text = rows.input_ids[r][rows.doc_ids[r] >= 0]
        n, s = t5_counts(len(text))
        row = batch.input_ids[r][batch.doc_ids[r] >= 0]
        a = int(batch.prefix[r].sum())
        assert batch.prefix[r, :a].all() and len(row) == len(text) + 2 * s + 2
        inputs, target = row[:a], row[a:]
        assert inputs[-1] == TOKENS.eos and target[-1] == TOKENS.eos
        in_sent = inputs[np.isin(inputs, sentinels)]
        tg_sent = target[np.isin(target, sentinels)]
        assert np.array_equal(in_sent, sentinels[:s]), "sentinels unique and in order <extra_id_0>, ..."
        assert np.array_equal(tg_sent, sentinels[:s]) and target[0] == sentinels[0]
        assert len(target) - s - 1 == n  # exactly the noise tokens are targets
        # put the spans back: the original text
        spans = np.split(target[:-1], np.flatnonzero(np.isin(target[:-1], sentinels)))[1:]
        rebuilt = []
        for tok in inputs[:-1]:
            rebuilt.extend(spans[int(np.flatnonzero(sentinels == tok)[0])][1:] if tok in sentinels else [tok])
        assert np.array_equal(rebuilt, text)
        # loss only on the target part: position t predicts t + 1
        want = np.full(batch.input_ids.shape[1], IGNORE)
        want[a - 1:len(row) - 1] = row[a:]
        assert np.array_equal(labels[r], want)
        total_noise, total_tokens = total_noise + n, total_tokens + len(text)
    print(f"span (decoder): {total_noise / total_tokens:.4f} of {total_tokens} tokens in noise spans")


def test_too_few_sentinels_is_a_clear_error() -> None:
    tokens = special_tokens_for_tests(vocab_size=8000, num_sentinels=4)
    objective = build_objective(parse_spec("span"), {}, tokens, GPT)
    assert objective.row_length(64) > 0
    with pytest.raises(ConfigError, match="sentinel"):
        objective.row_length(512)


def test_encoder_span_masking() -> None:
    objective = build_objective(parse_spec("span"), {}, TOKENS, BERT)
    assert objective.row_length(512) == 512
    source = synthetic_source(TOKENS, num_documents=300, seed=3)
    rows = synthetic_rows(TOKENS, "encoder", batch_size=128, seq_len=512, seed=3, source=source)
    batch = objective.prepare(rows, np.random.default_rng(0))
    t = batch.targets["span"]
    maskable = ~rows.special_mask & (rows.doc_ids >= 0)
    kinds = []
    for r in range(128):
        cand = np.flatnonzero(maskable[r])
        k = t["labels"][r] != IGNORE
        pos = t["positions"][r][k]
        assert len(pos) == t5_counts(len(cand))[0] and maskable[r, pos].all()
        assert np.array_equal(t["labels"][r][k], rows.input_ids[r, pos])
        for span in np.split(pos, np.flatnonzero(np.diff(pos) != 1) + 1):
            new, old = batch.input_ids[r, span], rows.input_ids[r, span]
            if (new == TOKENS.mask).all():
                kinds.append(MASK)
            elif (new == old).all():
                kinds.append(KEEP)
            else:  # a whole span of random ordinary tokens
                assert not (new == TOKENS.mask).any() and not np.isin(new, list(TOKENS.all_ids)).any()
                kinds.append(RANDOM)
    kinds = np.array(kinds)
    n = len(kinds)
    print(f"span (encoder): {n} spans; [MASK] {np.mean(kinds == MASK):.3f}, random {np.mean(kinds == RANDOM):.3f}")
    for kind, p in ((MASK, 0.8), (RANDOM, 0.1), (KEEP, 0.1)):
        assert abs(np.mean(kinds == kind) - p) <= 3 * math.sqrt(p * (1 - p) / n) + 1e-3


@pytest.mark.parametrize("backbone,form,family", [(BERT, "span-mask", "encoder"), (GPT, "span-lm", "decoder")])
def test_span_is_the_form_that_fits_the_backbone(backbone, form: str, family: str) -> None:
    """``span`` on bert is span-mask, on gpt span-lm: the same batches from the same seed."""
    alias = build_objective(parse_spec("span"), {}, TOKENS, backbone)
    named = build_objective(parse_spec(form), {}, TOKENS, backbone)
    assert type(alias) is type(named) and type(named).name == form and alias.name == "span"
    rows = synthetic_rows(TOKENS, family, 4, named.row_length(64))
    a, b = alias.prepare(rows, np.random.default_rng(3)), named.prepare(rows, np.random.default_rng(3))
    assert (a.input_ids == b.input_ids).all()
    assert all((a.targets["span"][k] == b.targets[form][k]).all() for k in b.targets[form])


@pytest.mark.parametrize("form,other,family", [("span-mask", GPT, "decoder"), ("span-lm", BERT, "encoder")])
def test_both_forms_run_on_the_other_architecture(form: str, other, family: str) -> None:
    obj = build_objective(parse_spec(form), {}, TOKENS, other)
    batch = obj.prepare(synthetic_rows(TOKENS, family, 4, obj.row_length(64)), np.random.default_rng(0))
    assert (batch.prefix is not None) == (form == "span-lm") and batch.causal == (form == "span-lm")


def test_span_refuses_an_option_of_the_other_form() -> None:
    with pytest.raises(ConfigError, match=r"objectives.span.mask_ratio is an option of the other form of span; "
                                          r"on gpt span is span-lm"):
        build_objective(parse_spec("span"), {"span": {"mask_ratio": 0.5}}, TOKENS, GPT)
    with pytest.raises(ConfigError, match=r"objectives.span.paradigm .* on bert span is span-mask"):
        build_objective(parse_spec("span"), {"span": {"paradigm": "[R]"}}, TOKENS, BERT)
