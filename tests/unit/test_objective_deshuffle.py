"""T5's deshuffling objective as a prefix LM: a permutation visible, the original order predicted."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.errors import ConfigError
from zoo.objectives.common import IGNORE
from zoo.objectives.compose import build_objective
from zoo.objectives.spec import parse_spec
from zoo.testing import special_tokens_for_tests, synthetic_rows, tiny_backbone

TOKENS = special_tokens_for_tests()


@pytest.mark.parametrize("family,backbone", [("encoder", "bert"), ("decoder", "gpt")])
def test_shuffled_prefix_original_target_no_leak(family: str, backbone: str) -> None:
    obj = build_objective(parse_spec("deshuffle"), {}, TOKENS, tiny_backbone(backbone, TOKENS.vocab_size).spec)
    raw_len = obj.row_length(64)
    assert raw_len == 31
    rows = synthetic_rows(TOKENS, family, batch_size=6, seq_len=raw_len, seed=3)
    batch = obj.prepare(rows, np.random.default_rng(0))
    assert batch.input_ids.shape == (6, 64) and batch.causal
    labels = batch.targets["deshuffle"]["labels"]
    end = TOKENS.eos
    orders = set()
    for b in range(6):
        text = rows.input_ids[b][rows.doc_ids[b] >= 0]
        n = len(text)
        prefix = np.flatnonzero(batch.prefix[b])
        assert prefix.tolist() == list(range(n + 1))
        shuffled = batch.input_ids[b, :n]
        assert sorted(shuffled.tolist()) == sorted(text.tolist())  # a permutation of the text
        assert batch.input_ids[b, n] == end
        target = labels[b][labels[b] != IGNORE]
        assert target.tolist() == [*text.tolist(), end]  # the original order, then end
        at = np.flatnonzero(labels[b] != IGNORE)
        assert at.tolist() == list(range(n, 2 * n + 1))  # read from the end token on: after the prefix
        assert not batch.prefix[b, at + 1].any()  # no predicted token is visible to its predictor
        orders.add(tuple(shuffled.tolist()))
    assert len(orders) == 6


def test_permutations_are_uniform() -> None:
    """Each of the 6 orders of a 3-token text is drawn about equally often."""
    from zoo.objectives.deshuffle import deshuffle_pair

    rng = np.random.default_rng(0)
    counts: dict[tuple, int] = {}
    for _ in range(6000):
        inputs, target = deshuffle_pair(np.array([10, 11, 12]), 5, rng)
        counts[tuple(inputs[:3])] = counts.get(tuple(inputs[:3]), 0) + 1
        assert target.tolist() == [10, 11, 12, 5]
    assert len(counts) == 6 and all(900 < c < 1100 for c in counts.values())


def test_short_rows_are_a_config_error() -> None:
    obj = build_objective(parse_spec("deshuffle"), {}, TOKENS, tiny_backbone("gpt", TOKENS.vocab_size).spec)
    with pytest.raises(ConfigError, match="too short"):
        obj.row_length(5)
