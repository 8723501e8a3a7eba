"""A seeded, rank-aware, exactly resumable batch sampler.

The sampler walks one global stream of item indices: the permutation of epoch 0, then the
permutation of epoch 1, ... where epoch ``e`` uses ``numpy.random.default_rng([seed, e])``.
Step ``s`` takes stream positions ``[s * B, (s + 1) * B)`` for the global batch size ``B``, so a
batch that straddles an epoch boundary is completed from the next epoch and nothing is dropped.
Rank ``r`` of ``W`` gets the ``r``-th contiguous slice of ``B / W`` indices of that global batch:
the union over ranks equals the single-process batch.

The state is the stream position (plus the parameters that define the stream), so restoring it
yields exactly the batches an uninterrupted run would have yielded, with any world size that
divides the global batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.errors import CheckpointError, ConfigError, DataError

STATE_VERSION = 1


class Sampler:
    def __init__(self, num_items: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if num_items <= 0:
            raise DataError(f"cannot sample from {num_items} items: the dataset is empty")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if world_size <= 0 or not 0 <= rank < world_size:
            raise ValueError(f"invalid rank {rank} for world_size {world_size}")
        if batch_size % world_size:
            raise ConfigError(f"global batch size {batch_size} is not divisible by the world size {world_size}")
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.position = 0  # items of the global stream consumed so far
        self.step = 0  # batches drawn so far
        self._perm_epoch = -1
        self._perm = np.empty(0, dtype=np.int64)

    @property
    def epoch(self) -> int:
        """The epoch the next item comes from."""
        return self.position // self.num_items

    @property
    def local_batch_size(self) -> int:
        return self.batch_size // self.world_size

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_items)
            self._perm_epoch = epoch
        return self._perm

    def _stream(self, start: int, count: int) -> np.ndarray:
        """Global stream positions [start, start + count) as item indices."""
        out = np.empty(count, dtype=np.int64)
        filled = 0
        while filled < count:
            epoch, offset = divmod(start + filled, self.num_items)
            take = min(count - filled, self.num_items - offset)
            out[filled:filled + take] = self.permutation(epoch)[offset:offset + take]
            filled += take
        return out

    def next_indices(self) -> np.ndarray:
        """This rank's indices for the next step."""
        local = self.local_batch_size
        out = self._stream(self.position + self.rank * local, local)
        self.position += self.batch_size
        self.step += 1
        return out

    def __iter__(self) -> Sampler:
        return self

    def __next__(self) -> np.ndarray:
        return self.next_indices()

    def state_dict(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "num_items": self.num_items, "batch_size": self.batch_size,
                "seed": self.seed, "position": self.position, "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise CheckpointError(f"sampler state version {state.get('version')!r} is not {STATE_VERSION}")
        for key in ("num_items", "batch_size", "seed"):
            if state[key] != getattr(self, key):
                raise CheckpointError(f"sampler state has {key}={state[key]} but this sampler has {key}="
                                 f"{getattr(self, key)}; the data or the batch size changed since the checkpoint")
        self.position, self.step = int(state["position"]), int(state["step"])

    def __repr__(self) -> str:
        return (f"Sampler(items={self.num_items}, batch={self.batch_size}, seed={self.seed}, rank={self.rank}/"
                f"{self.world_size}, step={self.step}, epoch={self.epoch})")
