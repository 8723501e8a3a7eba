"""Next-sentence prediction as in BERT (Devlin et al., 2019; create_pretraining_data.py).

Segment A is the first k sentences of a chunk (k random). With probability ``negative_rate`` B is
taken from a random *other* document, starting at a random sentence and long enough to fill the
row (label 1, "NotNext"); otherwise B is A's actual continuation (label 0, "IsNext"), the label
convention of ``transformers.BertForPreTraining``. A chunk that cannot be split (a single token)
always gets a random B, as in BERT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoo.batch import Chunk, DocumentSource
from zoo.objectives.pairs import Pair, PairObjective, random_document_piece, split_chunk, whole_chunk

IS_NEXT, NOT_NEXT = 0, 1


@dataclass
class NSPConfig:
    negative_rate: float = 0.5  # fraction of pairs whose B comes from another document

    def __post_init__(self) -> None:
        if not 0.0 <= self.negative_rate <= 1.0:
            raise ValueError(f"negative_rate must be in [0, 1], got {self.negative_rate}")


class NextSentencePrediction(PairObjective):
    """BERT next-sentence prediction on ``[CLS] A [SEP] B [SEP]`` rows."""

    name = "nsp"
    Config = NSPConfig
    task = "next-sentence prediction"
    hf_role = "nsp"  # BERT's own pre-training head: pooler + cls.seq_relationship

    def make_pair(self, chunk: Chunk, source: DocumentSource, max_tokens: int,
                  rng: np.random.Generator) -> Pair:
        split = split_chunk(chunk, rng)
        if split is None or rng.random() < self.config.negative_rate:
            a = whole_chunk(chunk) if split is None else split[0]
            b = random_document_piece(source, chunk.doc, max_tokens - len(a), rng)
            return Pair(a, b, NOT_NEXT)
        return Pair(split[0], split[1], IS_NEXT)
