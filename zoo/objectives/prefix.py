"""Prefix language modelling on a decoder (as the prefix LM of Raffel et al., 2020).

Each packed document piece is split at a random point k (1 <= k < n): its first k tokens form a
bidirectional prefix, the rest is predicted token by token. Attention: key j is visible to query
i iff both are in the same document and (j <= i or j is in the prefix), so the last prefix
position predicts the first suffix token without seeing it. Only suffix tokens are targets.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.batch import Batch
from zoo.objectives.clm import LanguageModelBase, lm_incompatibility, next_token_labels
from zoo.objectives.common import IGNORE


def document_runs(doc_ids: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of one document id >= 0 in a row."""
    change = np.flatnonzero(np.diff(doc_ids)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(doc_ids)]])
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True) if doc_ids[s] >= 0]


class PrefixLM(LanguageModelBase):
    """Bidirectional prefix, causal suffix; loss on the suffix."""

    name = "prefix"
    requires = frozenset({"prefix", "packed"})
    attention = "prefix"

    @classmethod
    def incompatibility(cls, capabilities: frozenset[str], family: str) -> str | None:
        return lm_incompatibility(capabilities, family, "prefix", "prefix-LM (bidirectional prefix, causal rest)")

    def prepare(self, data: Batch | Any, rng: np.random.Generator) -> Batch:
        if not isinstance(data, Batch):
            raise TypeError(f"{self.name} prepares packed rows (a Batch), got {type(data).__name__}")
        ids = np.asarray(data.input_ids, dtype=np.int64)
        doc_ids = np.asarray(data.doc_ids)
        prefix = np.zeros(ids.shape, dtype=bool)
        for b in range(ids.shape[0]):
            for start, end in document_runs(doc_ids[b]):
                if end - start >= 2:
                    prefix[b, start:start + int(rng.integers(1, end - start))] = True
        labels = next_token_labels(ids, doc_ids)
        labels[:, :-1][prefix[:, 1:]] = IGNORE  # prefix tokens are context, not targets
        targets = {**data.targets, self.name: {"labels": labels}}
        return data.replace(causal=True, prefix=prefix, targets=targets)
