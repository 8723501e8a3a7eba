"""BERT masking: exact per-row counts, masking statistics, whole words, sparse head."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zoo.batch import SpecialTokens
from zoo.errors import ConfigError, DataError
from zoo.objectives.common import IGNORE
from zoo.objectives.compose import build_objective
from zoo.objectives.mlm import MaskedLM, MLMConfig
from zoo.objectives.spec import parse_spec
from zoo.testing import (
    special_tokens_for_tests,
    synthetic_rows,
    synthetic_source,
    tiny_backbone,
)
from zoo.typed_config import from_dict
from zoo.zoo_model import ZooModel

TOKENS = special_tokens_for_tests(vocab_size=8000)


@pytest.fixture(scope="module")
def big_rows():
    """~128k maskable tokens of packed encoder rows."""
    source = synthetic_source(TOKENS, num_documents=400, seed=0)
    return synthetic_rows(TOKENS, "encoder", batch_size=256, seq_len=512, seed=0, source=source)


def _mlm(**config) -> MaskedLM:
    spec = tiny_backbone("bert", TOKENS.vocab_size).spec
    return build_objective(parse_spec("mlm"), {"mlm": config}, TOKENS, spec)


def _masked(batch, original):
    """(rows, cols, original ids, new ids) of the predicted positions."""
    t = batch.targets["mlm"]
    keep = t["labels"] != IGNORE
    rows = np.broadcast_to(np.arange(keep.shape[0])[:, None], keep.shape)[keep]
    cols = t["positions"][keep]
    return rows, cols, original[rows, cols], batch.input_ids[rows, cols]


def _within(observed: float, p: float, n: int, sigmas: float = 3.0) -> bool:
    return abs(observed - p) <= sigmas * math.sqrt(p * (1 - p) / n)


def test_bert_masking_statistics(big_rows) -> None:
    objective = _mlm()
    batch = objective.prepare(big_rows, np.random.default_rng(0))
    original = big_rows.input_ids
    maskable = ~big_rows.special_mask & (big_rows.doc_ids >= 0)
    n_maskable = int(maskable.sum())
    assert n_maskable >= 100_000
    t = batch.targets["mlm"]
    assert t["positions"].shape == (256, math.ceil(0.15 * 512)) and t["positions"].dtype == np.int64

    # Google's create_pretraining_data count, per row
    per_row = (t["labels"] != IGNORE).sum(1)
    expected = np.maximum(1, np.round(maskable.sum(1) * 0.15)).astype(int)
    assert np.array_equal(per_row, expected)

    rows, cols, before, after = _masked(batch, original)
    assert len(rows) == per_row.sum()
    assert np.array_equal(t["labels"][t["labels"] != IGNORE], before)
    assert maskable[rows, cols].all(), "a special or padding token was masked"
    assert _within(len(rows) / n_maskable, 0.15, n_maskable)

    is_mask = after == TOKENS.mask
    unchanged = after == before
    random = ~is_mask & ~unchanged
    n = len(rows)
    pool = TOKENS.vocab_size - len(TOKENS.all_ids)
    print(f"masked {len(rows) / n_maskable:.4f} of {n_maskable} maskable; [MASK] {is_mask.mean():.4f}, "
          f"random {random.mean():.4f}, unchanged {unchanged.mean():.4f} of {n}")
    assert _within(is_mask.mean(), 0.8, n)
    assert _within(random.mean(), 0.1 * (1 - 1 / pool), n)  # a random draw can hit the original
    assert _within(unchanged.mean(), 0.1 + 0.1 / pool, n)
    assert not np.isin(after[random], list(TOKENS.all_ids)).any(), "random replacement drew a special token"
    assert (after < TOKENS.vocab_size).all()

    # nothing else changed; positions are unique and sorted within a row
    untouched = np.ones_like(maskable)
    untouched[rows, cols] = False
    assert np.array_equal(batch.input_ids[untouched], original[untouched])
    for r in range(0, 256, 17):
        p = t["positions"][r, :per_row[r]]
        assert np.all(np.diff(p) > 0)


def test_configurable_rates(big_rows) -> None:
    objective = _mlm(rate=0.3, mask_ratio=0.5, random_ratio=0.25)
    batch = objective.prepare(big_rows, np.random.default_rng(1))
    rows, cols, before, after = _masked(batch, big_rows.input_ids)
    n_maskable = int((~big_rows.special_mask & (big_rows.doc_ids >= 0)).sum())
    assert _within(len(rows) / n_maskable, 0.3, n_maskable)
    assert _within((after == TOKENS.mask).mean(), 0.5, len(rows))
    assert _within(((after != TOKENS.mask) & (after != before)).mean(), 0.25, len(rows), sigmas=3.5)
    assert batch.targets["mlm"]["positions"].shape[1] == math.ceil(0.3 * 512)


def _words(row_starts: np.ndarray, maskable: np.ndarray) -> list[np.ndarray]:
    """Words of a row as the test defines them: a word start plus the following non-start tokens."""
    words, current = [], []
    for i in range(len(row_starts)):
        if not maskable[i] or row_starts[i]:
            if current:
                words.append(np.array(current))
            current = [i] if maskable[i] else []
        else:
            current.append(i)
    if current:
        words.append(np.array(current))
    return words


def test_whole_word_masking_covers_whole_words(big_rows) -> None:
    objective = _mlm(whole_word=True)
    batch = objective.prepare(big_rows, np.random.default_rng(2))
    maskable = ~big_rows.special_mask & (big_rows.doc_ids >= 0)
    t = batch.targets["mlm"]
    chosen = np.zeros_like(maskable)
    keep = t["labels"] != IGNORE
    chosen[np.broadcast_to(np.arange(256)[:, None], keep.shape)[keep], t["positions"][keep]] = True
    assert not (chosen & ~maskable).any()
    multi_piece = 0
    for r in range(256):
        for word in _words(big_rows.word_starts[r], maskable[r]):
            picked = chosen[r, word]
            assert picked.all() or not picked.any(), f"row {r}: word {word.tolist()} partly masked"
            multi_piece += int(len(word) > 1 and picked.all())
        assert chosen[r].sum() <= max(1, round(maskable[r].sum() * 0.15))
    assert multi_piece > 1000, "whole-word masking should mask many multi-piece words"
    fraction = chosen.sum() / maskable.sum()
    print(f"whole-word masked fraction {fraction:.4f}")
    assert 0.14 < fraction <= 0.15 + 1e-9  # a word that does not fit the count is skipped (as Google)


def test_specials_padding_and_short_rows_never_masked() -> None:
    rows = synthetic_rows(TOKENS, "encoder", batch_size=4, seq_len=16, seed=3)
    rows.input_ids[1, 3:] = TOKENS.pad
    rows.doc_ids[1, 3:] = -1  # a row with a single maskable token
    rows.special_mask[1, 3:] = True
    rows.special_mask[2, :] = True  # a row with nothing to mask
    batch = _mlm().prepare(rows, np.random.default_rng(0))
    labels = batch.targets["mlm"]["labels"]
    assert (labels[1] != IGNORE).sum() == 1 and batch.targets["mlm"]["positions"][1, 0] == 1
    assert (labels[2] == IGNORE).all() and np.array_equal(batch.input_ids[2], rows.input_ids[2])


def test_special_mask_derived_when_absent() -> None:
    rows = synthetic_rows(TOKENS, "encoder", batch_size=8, seq_len=64, seed=3)
    batch = _mlm().prepare(rows.replace(special_mask=None), np.random.default_rng(0))
    pos = batch.targets["mlm"]["positions"][batch.targets["mlm"]["labels"] != IGNORE]
    assert not np.isin(rows.input_ids[np.nonzero(batch.targets["mlm"]["labels"] != IGNORE)[0], pos],
                       list(TOKENS.all_ids)).any()


def test_bad_config_and_missing_inputs() -> None:
    with pytest.raises(ConfigError, match="objectives.mlm"):
        from_dict(MLMConfig, {"rate": 1.5}, path="objectives.mlm")
    with pytest.raises(ConfigError, match="sum to at most 1"):
        from_dict(MLMConfig, {"mask_ratio": 0.9, "random_ratio": 0.2}, path="objectives.mlm")
    with pytest.raises(ConfigError, match="objectives.mlm.rat"):
        build_objective(parse_spec("mlm"), {"mlm": {"rat": 0.2}}, TOKENS, tiny_backbone("bert", 8000).spec)
    rows = synthetic_rows(TOKENS, "encoder", batch_size=2, seq_len=32)
    with pytest.raises(DataError, match="word starts"):
        _mlm(whole_word=True).prepare(rows.replace(word_starts=None), np.random.default_rng(0))
    no_mask = SpecialTokens(vocab_size=8000, pad=0, cls=2, sep=3)
    with pytest.raises(DataError, match="mask"):
        MaskedLM(None, no_mask, tiny_backbone("bert", 8000).spec)
    with pytest.raises(ConfigError, match="vocab_size"):
        MaskedLM(None, TOKENS, tiny_backbone("bert", 1000).spec)


def test_head_is_sparse_tied_and_namespaced() -> None:
    tokens = special_tokens_for_tests(vocab_size=400)
    backbone = tiny_backbone("bert", tokens.vocab_size)
    objective = build_objective(parse_spec("mlm"), {}, tokens, backbone.spec)
    model = ZooModel(backbone, objective)
    keys = [k for k in model.state_dict() if k.startswith("heads.")]
    assert sorted(keys) == ["heads.mlm.decoder.bias", "heads.mlm.dense.bias", "heads.mlm.dense.weight",
                            "heads.mlm.norm.bias", "heads.mlm.norm.weight"]
    assert model.heads["mlm"].decoder.weight is backbone.tok_emb.weight
    seen = []
    model.heads["mlm"].dense.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    batch = objective.prepare(synthetic_rows(tokens, "encoder", 4, 40), np.random.default_rng(0)).to("cpu")
    out = model(batch)
    assert seen == [(4, 6, 32)], "the head must run only at the P = ceil(0.15 T) gathered positions"
    # the sparse loss equals a dense computation over the whole sequence
    hidden = backbone(**batch.backbone_inputs())
    logits = model.heads["mlm"](hidden)  # (B, T, V)
    dense = torch.full(batch.input_ids.shape, IGNORE)
    t = batch.targets["mlm"]
    keep = t["labels"] != IGNORE
    dense[torch.arange(4)[:, None].expand_as(keep)[keep], t["positions"][keep]] = t["labels"][keep]
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, tokens.vocab_size), dense.reshape(-1))
    assert torch.allclose(out.loss, ref, atol=1e-6)
    assert int(out.count) == int(keep.sum())
    acc = (logits.argmax(-1)[dense != IGNORE] == dense[dense != IGNORE]).float().mean()
    assert torch.allclose(out.metrics["acc"], acc)
    h, v, rows = 32, tokens.vocab_size, 4 * 6
    assert objective.head_flops(batch) == 2.0 * rows * h * h + 2.0 * int(keep.sum()) * h * v
    # Rows with fewer maskable tokens leave slots empty: the vocabulary projection, which runs only at
    # filled slots, is charged only for those.
    rows = synthetic_rows(tokens, "encoder", 4, 40)
    ids = np.array(rows.input_ids, copy=True)
    ids[2:, 10:] = tokens.pad  # two rows of 8 tokens then padding: 1 prediction each, not 6
    batch = objective.prepare(rows.replace(input_ids=ids), np.random.default_rng(0)).to("cpu")
    labels = batch.targets["mlm"]["labels"]
    filled = int((labels != IGNORE).sum())
    assert filled < labels.numel()  # empty slots exist
    assert objective.head_flops(batch) == 2.0 * labels.numel() * h * h + 2.0 * filled * h * v


def test_unk_is_masked_like_text_as_in_google_bert() -> None:
    """Google's create_pretraining_data.py spares only [CLS] and [SEP]: [UNK] stands for text."""
    from zoo.objectives.common import special_mask_of, unmaskable_ids

    assert TOKENS.unk not in unmaskable_ids(TOKENS)
    assert {TOKENS.pad, TOKENS.cls, TOKENS.sep, TOKENS.mask, TOKENS.eos, *TOKENS.sentinels} == \
        set(unmaskable_ids(TOKENS).tolist())
    # a tokenizer whose [UNK] doubles as another special token keeps that token unmaskable
    shared = SpecialTokens(vocab_size=100, pad=0, unk=5, cls=2, sep=3, mask=4, eos=5)
    assert 5 in unmaskable_ids(shared)
    rows = synthetic_rows(TOKENS, "encoder", batch_size=32, seq_len=64, seed=4)
    ids = rows.input_ids.copy()
    body = ~np.isin(ids, [TOKENS.cls, TOKENS.sep]) & (rows.doc_ids >= 0)
    unk = body & (np.random.default_rng(1).random(ids.shape) < 0.3)
    ids[unk] = TOKENS.unk
    rows = rows.replace(input_ids=ids, special_mask=None)
    special = special_mask_of(rows, TOKENS)
    assert not special[unk].any() and special[~body].all()
    batch = _mlm().prepare(rows, np.random.default_rng(0))
    t = batch.targets["mlm"]
    chosen = np.zeros(ids.shape, dtype=bool)
    r, c = np.nonzero(t["labels"] != IGNORE)
    chosen[r, t["positions"][r, c]] = True
    assert not chosen[~body].any()
    # [UNK] is chosen at the rate of any other token: exactly round(15%) of each row's body tokens
    assert chosen[unk].sum() > 0.5 * 0.15 * unk.sum()
    assert all(chosen[b].sum() == max(1, round(body[b].sum() * 0.15)) for b in range(32))
