"""The seeded, rank-aware, resumable sampler."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zoo.data import Sampler
from zoo.errors import CheckpointError, ConfigError, DataError


def run(sampler: Sampler, steps: int) -> list[np.ndarray]:
    return [sampler.next_indices() for _ in range(steps)]


def test_epochs_are_permutations_and_nothing_is_dropped() -> None:
    n, bs = 10, 4  # batches straddle epoch boundaries
    s = Sampler(n, bs, seed=1)
    stream = np.concatenate(run(s, 15))  # 60 items = 6 epochs
    epochs = stream.reshape(6, n)
    for e in range(6):
        assert sorted(epochs[e].tolist()) == list(range(n))
        assert np.array_equal(epochs[e], np.random.default_rng([1, e]).permutation(n))
    assert len({tuple(e) for e in epochs.tolist()}) > 1  # a new permutation every epoch
    assert s.step == 15 and s.epoch == 6


def test_seed_determinism() -> None:
    a, b, c = Sampler(50, 8, seed=7), Sampler(50, 8, seed=7), Sampler(50, 8, seed=8)
    ra, rb, rc = run(a, 20), run(b, 20), run(c, 20)
    assert all(np.array_equal(x, y) for x, y in zip(ra, rb, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(ra, rc, strict=True))


@pytest.mark.parametrize("stop", [0, 1, 3, 5, 6, 7, 12, 25])  # 13 items, batch 5: epoch boundaries mid-batch
def test_restore_yields_the_uninterrupted_batches(stop: int) -> None:
    reference = run(Sampler(13, 5, seed=3), 30)
    s = Sampler(13, 5, seed=3)
    run(s, stop)
    state = json.loads(json.dumps(s.state_dict()))  # JSON-able, exactly
    restored = Sampler(13, 5, seed=3)
    restored.load_state_dict(state)
    assert restored.step == stop and restored.epoch == s.epoch
    rest = run(restored, 30 - stop)
    assert all(np.array_equal(x, y) for x, y in zip(rest, reference[stop:], strict=True))


@pytest.mark.parametrize("world", [2, 4])
def test_rank_union_equals_single_process(world: int) -> None:
    single = Sampler(23, 8, seed=5)
    ranks = [Sampler(23, 8, seed=5, rank=r, world_size=world) for r in range(world)]
    for _ in range(12):
        expected = single.next_indices()
        parts = [r.next_indices() for r in ranks]
        assert all(len(p) == 8 // world for p in parts)
        assert np.array_equal(np.concatenate(parts), expected)


def test_restore_with_another_world_size() -> None:
    a = Sampler(23, 8, seed=5, rank=1, world_size=2)
    run(a, 4)
    single = Sampler(23, 8, seed=5)
    single.load_state_dict(a.state_dict())
    b0, b1 = Sampler(23, 8, seed=5, rank=0, world_size=2), Sampler(23, 8, seed=5, rank=1, world_size=2)
    b0.load_state_dict(a.state_dict())
    b1.load_state_dict(a.state_dict())
    for _ in range(5):
        assert np.array_equal(np.concatenate([b0.next_indices(), b1.next_indices()]), single.next_indices())


def test_batch_larger_than_the_dataset() -> None:
    s = Sampler(3, 7, seed=0)
    first = s.next_indices()
    assert len(first) == 7 and s.epoch == 2
    assert sorted(first[:3].tolist()) == [0, 1, 2] and sorted(first[3:6].tolist()) == [0, 1, 2]


def test_errors() -> None:
    with pytest.raises(DataError, match="empty"):
        Sampler(0, 4, seed=0)
    with pytest.raises(ConfigError, match="not divisible"):
        Sampler(10, 6, seed=0, rank=0, world_size=4)
    with pytest.raises(ValueError, match="invalid rank"):
        Sampler(10, 4, seed=0, rank=2, world_size=2)
    state = Sampler(10, 4, seed=0).state_dict()
    with pytest.raises(CheckpointError, match="num_items=10 but this sampler has num_items=11"):
        Sampler(11, 4, seed=0).load_state_dict(state)
    with pytest.raises(CheckpointError, match="seed"):
        Sampler(10, 4, seed=1).load_state_dict(state)
