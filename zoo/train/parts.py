"""Training data per objective part: one data source and one resumable sampler for each part.

A run that is not a mixture has one part (label ``None``) whose sampler state is saved exactly as
it always was. A mixture has one part per member, each with the data unit and row length its own
objective asks for, drawn from the same token store; each part's sampler advances only in the
steps that run that part, and all the samplers' states are saved under ``{"mixture": {label: ...}}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.batch import Batch, SpecialTokens
from zoo.data import Sampler, make_source
from zoo.errors import CheckpointError, ConfigError
from zoo.objectives.base import Objective
from zoo.objectives.mixture import Member, Mixture

# For each step: the samplers' state after it, and this rank's micro-batches, each with the indices of its rows.
StepBatches = Iterator[tuple[dict[str, Any], list[tuple[np.ndarray, Batch]]]]


@dataclass
class Part:
    label: str | None  # None: the run's only part (not a mixture)
    objective: Objective
    share: float
    train: Any  # RowSource | SegmentSource
    valid: Any
    sampler: Sampler

    def prepare(self, data: Any, rng: np.random.Generator) -> Batch:
        batch = self.objective.prepare(data, rng)
        return batch if self.label is None else batch.replace(part=self.label)

    def peek(self, rows: int) -> Batch:
        """The first ``rows`` training rows prepared with a fixed seed (for estimates such as FLOPs)."""
        ids = np.arange(min(rows, len(self.train)))
        return self.prepare(self.train.get(ids), np.random.default_rng(0))


class Parts:
    """The parts of a run's objective and the step -> part rule."""

    def __init__(self, objective: Objective, data: Any, seq_len: int, tokens: SpecialTokens, family: str,
                 global_rows: int, seed: int) -> None:
        self.objective = objective
        self.mixture = objective if isinstance(objective, Mixture) else None
        self.seed = seed
        members = self.mixture.members if self.mixture else [Member("", objective, 1.0)]
        self.parts: list[Part] = []
        for i, m in enumerate(members):
            row_len = m.objective.row_length(seq_len)
            start = getattr(data, "doc_start", False)
            train = make_source(m.objective.unit, data.train, row_len, tokens, family, doc_start=start)
            valid = make_source(m.objective.unit, data.valid, row_len, tokens, family, doc_start=start)
            label = m.label if self.mixture else None
            if len(train) == 0:
                who = f" for mixture part {label}" if label else ""
                raise ConfigError(f"the training split yields no {m.objective.unit}{who} at seq_len {seq_len}")
            # Part i's sampler walks its own permutation stream (seed + i); part 0 is the plain run's.
            self.parts.append(Part(label, m.objective, m.share, train, valid, Sampler(len(train), global_rows, seed + i)))
        self.by_label = {p.label: p for p in self.parts}

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.parts)

    def at(self, step: int) -> Part:
        """The part that step ``step`` runs (the same on every rank and every micro-batch)."""
        if self.mixture is None:
            return self.parts[0]
        return self.by_label[self.mixture.draw(self.seed, step).label]

    def of(self, batch: Batch) -> Part:
        return self.parts[0] if self.mixture is None else self.by_label[batch.part]

    def step_batches(self, step: int, accum: int, world: int, rank: int, rows: int) -> StepBatches:
        """For each step after ``step``: the sampler state after it, and this rank's ``accum`` prepared
        micro-batches of ``rows`` rows (micro-batch ``m = k * world + rank`` is chunk ``m`` of the step's
        global batch), each with the indices of its rows."""
        while True:
            step += 1
            part = self.at(step)  # every micro-batch and every rank: the same part
            indices = part.sampler.next_indices()
            state = self.sampler_state()
            micro = []
            for k in range(accum):
                m = k * world + rank
                ids = indices[m * rows:(m + 1) * rows]
                rng = np.random.default_rng([self.seed, step, m])
                micro.append((ids, part.prepare(part.train.get(ids), rng).to("cpu")))
            yield state, micro

    def training_flops(self, batches: list[Batch], backbone_flops_per_token: float,
                       batch_flops: Callable[[Batch], float] | None = None) -> float:
        """Training FLOPs (forward + backward = 3 x forward) of ``batches``; a mixture's batches all come
        from the part that ran, which is charged with its backbone passes and head FLOPs. ``batch_flops``
        (an encoder-decoder's ``Backbone.batch_flops``) charges batches with decoder inputs."""
        return Parts.training_flops_split(self, batches, backbone_flops_per_token, batch_flops)[0]

    def training_flops_split(self, batches: list[Batch], backbone_flops_per_token: float,
                             batch_flops: Callable[[Batch], float] | None = None) -> tuple[float, float]:
        """``training_flops`` and the part of it spent in the objectives' heads."""
        body = head = 0.0
        for b in batches:
            objective = self.of(b).objective
            rows, seq = b.shape
            forward = (batch_flops(b) if batch_flops is not None and b.decoder_input_ids is not None
                       else backbone_flops_per_token * rows * seq)
            body += forward * objective.backbone_passes()
            head += objective.head_flops(b)
        return 3.0 * (body + head), 3.0 * head

    # --- sampler state ---------------------------------------------------------------------------
    def sampler_state(self) -> dict[str, Any]:
        if self.mixture is None:
            return self.parts[0].sampler.state_dict()
        return {"mixture": {p.label: p.sampler.state_dict() for p in self.parts}}

    def load_sampler_state(self, state: dict[str, Any]) -> None:
        if self.mixture is None:
            self.parts[0].sampler.load_state_dict(state)
            return
        saved = state.get("mixture")
        if not isinstance(saved, dict) or set(saved) != set(self.by_label):
            have = sorted(saved) if isinstance(saved, dict) else "none"
            raise CheckpointError(f"the checkpoint holds sampler states for parts {have}, the run has parts "
                                  f"{sorted(self.by_label)}")
        for label, part_state in saved.items():
            self.by_label[label].sampler.load_state_dict(part_state)
