"""Sentence-pair rows shared by NSP and SOP: splitting a chunk, truncation, ``[CLS] A [SEP] B [SEP]``
rows, and the pooled two-way classification head.

A chunk of consecutive sentences is split at a random sentence boundary into A and its actual
continuation B (as BERT's create_instances_from_document picks ``a_end``). A chunk holding a
single sentence is split at a random word boundary inside it instead, so that every chunk with
two or more tokens can yield a genuine continuation. The pair is then truncated to fit exactly
as BERT's ``truncate_seq_pair``: one token at a time from the longer side, front or back at random.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.batch import Batch, Chunk, DocumentSource, Segments, SpecialTokens
from zoo.errors import ConfigError, DataError
from zoo.models.base import Backbone, BackboneSpec, init_weights
from zoo.objectives.base import LossOutput, Objective
from zoo.objectives.common import IGNORE, check_vocab, require_tokens


@dataclass
class Piece:
    """Token ids and word starts of one side of a pair."""

    ids: np.ndarray
    starts: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Pair:
    a: Piece
    b: Piece
    label: int  # IGNORE when the chunk cannot form a pair for this objective


def _join(sentences: list[np.ndarray], starts: list[np.ndarray]) -> Piece:
    if not sentences:
        return Piece(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool))
    return Piece(np.concatenate(sentences).astype(np.int64), np.concatenate(starts).astype(bool))


def _sentences(sentences: list[np.ndarray], starts: list[np.ndarray], where: str) -> tuple[list, list]:
    if len(sentences) != len(starts):
        raise DataError(f"{where}: {len(sentences)} sentences but {len(starts)} word-start arrays")
    keep = [i for i, s in enumerate(sentences) if len(s) > 0]
    for i in keep:
        if len(starts[i]) != len(sentences[i]):
            raise DataError(f"{where}: sentence {i} has {len(sentences[i])} tokens but "
                            f"{len(starts[i])} word starts")
    return [np.asarray(sentences[i]) for i in keep], [np.asarray(starts[i]) for i in keep]


def whole_chunk(chunk: Chunk) -> Piece:
    return _join(*_sentences(chunk.sentences, chunk.word_starts, f"chunk of document {chunk.doc}"))


def split_chunk(chunk: Chunk, rng: np.random.Generator) -> tuple[Piece, Piece] | None:
    """A (first sentences) and its actual continuation B; None if the chunk has fewer than 2 tokens."""
    sents, starts = _sentences(chunk.sentences, chunk.word_starts, f"chunk of document {chunk.doc}")
    if len(sents) >= 2:
        a_end = int(rng.integers(1, len(sents)))  # 1 .. len-1, as create_pretraining_data
        return _join(sents[:a_end], starts[:a_end]), _join(sents[a_end:], starts[a_end:])
    if not sents or len(sents[0]) < 2:
        return None
    ids, ws = sents[0].astype(np.int64), starts[0].astype(bool)
    cuts = np.flatnonzero(ws[1:]) + 1  # word boundaries inside the sentence
    if len(cuts) == 0:
        cuts = np.arange(1, len(ids))
    cut = int(rng.choice(cuts))
    return Piece(ids[:cut], ws[:cut]), Piece(ids[cut:], ws[cut:])


def random_document_piece(source: DocumentSource, exclude: int, target_len: int,
                          rng: np.random.Generator) -> Piece:
    """Sentences of a random document other than ``exclude`` from a random start, >= target_len tokens."""
    n = source.num_documents()
    if n < 2:
        raise DataError(f"random next sentences come from another document, but this split of the corpus "
                        f"holds {n} document(s); use a corpus (and validation split) with at least 2 documents")
    for _ in range(10):
        doc = int(rng.integers(0, n - 1))
        doc += doc >= exclude  # uniform over the other documents
        sents, starts = _sentences(source.document_sentences(doc), source.document_word_starts(doc),
                                   f"document {doc}")
        if sents:
            break
    else:
        raise DataError("10 randomly chosen documents were all empty; the corpus holds empty documents")
    start = int(rng.integers(0, len(sents)))
    end, total = start, 0
    while end < len(sents):  # at least one sentence, as create_pretraining_data
        total += len(sents[end])
        end += 1
        if total >= target_len:
            break
    return _join(sents[start:end], starts[start:end])


def truncate_pair(a: Piece, b: Piece, max_tokens: int, rng: np.random.Generator) -> tuple[Piece, Piece]:
    """BERT's truncate_seq_pair: drop from the longer side, front or back at random, until it fits."""
    spans = [[0, len(a)], [0, len(b)]]
    while (spans[0][1] - spans[0][0]) + (spans[1][1] - spans[1][0]) > max_tokens:
        longer = 0 if spans[0][1] - spans[0][0] > spans[1][1] - spans[1][0] else 1
        if rng.random() < 0.5:
            spans[longer][0] += 1
        else:
            spans[longer][1] -= 1
    cut = []
    for piece, (lo, hi) in zip((a, b), spans, strict=True):
        starts = piece.starts[lo:hi].copy()
        if len(starts):
            starts[0] = True  # a word cut at the front still starts the piece
        cut.append(Piece(piece.ids[lo:hi], starts))
    return cut[0], cut[1]


def pair_rows(pairs: list[Pair], seq_len: int, tokens: SpecialTokens) -> Batch:
    """``[CLS] A [SEP] B [SEP]`` rows padded to ``seq_len``, with segment ids and masks."""
    batch = len(pairs)
    ids = np.full((batch, seq_len), tokens.pad, dtype=np.int64)
    types = np.zeros((batch, seq_len), dtype=np.int64)
    doc_ids = np.full((batch, seq_len), -1, dtype=np.int32)
    special = np.ones((batch, seq_len), dtype=bool)
    starts = np.zeros((batch, seq_len), dtype=bool)
    for r, p in enumerate(pairs):
        la, lb = len(p.a), len(p.b)
        n = la + lb + 3
        if n > seq_len:
            raise ValueError(f"pair of {n} tokens does not fit rows of {seq_len}")
        ids[r, :n] = np.concatenate([[tokens.cls], p.a.ids, [tokens.sep], p.b.ids, [tokens.sep]])
        types[r, la + 2:n] = 1
        doc_ids[r, :n] = 0
        special[r, 1:la + 1] = False
        special[r, la + 2:n - 1] = False
        starts[r, :n] = np.concatenate([[True], p.a.starts, [True], p.b.starts, [True]])
    positions = np.broadcast_to(np.arange(seq_len, dtype=np.int64), (batch, seq_len)).copy()
    return Batch(input_ids=ids, doc_ids=doc_ids, position_ids=positions, token_type_ids=types,
                 special_mask=special, word_starts=starts)


class PairHead(nn.Module):
    """BERT's pooler (dense + tanh on [CLS]) and a two-way classifier.

    ``hf_role`` (the transformers hook, ``zoo.interop``): "nsp" when the classifier is BERT's
    next-sentence head ``cls.seq_relationship``, else "pooler" (only the pooler has a counterpart)."""

    def __init__(self, spec: BackboneSpec, hf_role: str = "pooler") -> None:
        super().__init__()
        self.hf_role = hf_role
        self.pooler = nn.Linear(spec.hidden_size, spec.hidden_size)
        self.classifier = nn.Linear(spec.hidden_size, 2)
        init_weights(self, spec.initializer_range)

    def forward(self, hidden: Tensor) -> Tensor:  # (B, T, h) -> (B, 2)
        return self.classifier(torch.tanh(self.pooler(hidden[:, 0])))

    def hf_parameters(self) -> dict[str, nn.Parameter]:
        """The parameters under ``transformers.BertForPreTraining`` names (export and ``--init``; the
        base model's ``bert.`` becomes another class's prefix in ``zoo.interop``)."""
        return {
            "bert.pooler.dense.weight": self.pooler.weight,
            "bert.pooler.dense.bias": self.pooler.bias,
            "cls.seq_relationship.weight": self.classifier.weight,
            "cls.seq_relationship.bias": self.classifier.bias,
        }

    def hf_state_dict(self) -> dict[str, Tensor]:
        """``hf_parameters``, detached copies."""
        return {k: v.detach().clone() for k, v in self.hf_parameters().items()}


_WHAT = {"bidirectional": "bidirectional attention", "segments": "segment embeddings (capability 'segments')"}


class PairObjective(Objective):
    """Base of sentence-pair objectives: builds rows from ``Segments`` and classifies the pair."""

    role = "pairs"
    requires = frozenset({"bidirectional", "segments"})
    attention = "bidirectional"
    task: ClassVar[str] = "sentence pairs"
    hf_role: ClassVar[str] = "pooler"  # its head's transformers counterpart (``PairHead``)

    @classmethod
    def min_seq_len(cls, family: str) -> int:
        return 5  # [CLS] A [SEP] B [SEP], one token on each side

    def __init__(self, config: Any | None, tokens: SpecialTokens, spec: BackboneSpec,
                 name: str | None = None) -> None:
        super().__init__(config, tokens, spec, name)
        require_tokens(tokens, "cls", "sep", by=self.name)
        check_vocab(tokens, spec, self.name)

    @classmethod
    def incompatibility(cls, capabilities: frozenset[str], family: str) -> str | None:
        missing = [c for c in ("bidirectional", "segments") if c not in capabilities]
        if missing:
            # [CLS] A [SEP] B [SEP] rows tell the two sides apart by their segment embeddings
            return (f"needs {' and '.join(_WHAT[c] for c in missing)} for {cls.task}; this backbone "
                    f"offers {', '.join(sorted(capabilities))}")
        return None

    def make_pair(self, chunk: Chunk, source: DocumentSource, max_tokens: int,
                  rng: np.random.Generator) -> Pair:
        raise NotImplementedError

    def prepare(self, data: Segments | Any, rng: np.random.Generator) -> Batch:
        if not isinstance(data, Segments):
            raise TypeError(f"{self.name} builds sentence pairs from Segments, got {type(data).__name__}")
        max_tokens = data.seq_len - 3  # [CLS], [SEP], [SEP]
        if max_tokens < 2:
            raise ConfigError(f"{self.name} needs rows of at least 5 tokens, got seq_len={data.seq_len}")
        pairs = []
        for i, chunk in enumerate(data.chunks):
            if not any(len(s) for s in chunk.sentences):
                raise DataError(f"chunk {i} (document {chunk.doc}) holds no tokens")
            pair = self.make_pair(chunk, data.source, max_tokens, rng)
            a, b = truncate_pair(pair.a, pair.b, max_tokens, rng)
            pairs.append(Pair(a, b, pair.label))
        batch = pair_rows(pairs, data.seq_len, self.tokens)
        labels = np.array([p.label for p in pairs], dtype=np.int64)
        batch.targets = {self.name: {"labels": labels}}
        return batch

    def build_heads(self, backbone: Backbone) -> nn.Module:
        return PairHead(backbone.spec, self.hf_role)

    def loss(self, heads: nn.Module | None, hidden: Tensor, batch: Batch) -> LossOutput:
        labels = batch.targets[self.name]["labels"]  # (B,)
        logits = heads(hidden).float()  # (B, 2)
        count = (labels != IGNORE).sum()
        denom = count.clamp(min=1)
        loss = F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum") / denom
        correct = ((logits.detach().argmax(-1) == labels) & (labels != IGNORE)).sum()
        return LossOutput(loss, count, {"loss": loss.detach(), "acc": correct / denom})

    def head_flops(self, batch: Batch) -> float:
        h = self.spec.hidden_size
        return float(batch.input_ids.shape[0]) * (2.0 * h * h + 2.0 * h * 2)
