"""The types exchanged between the data pipeline, objectives, backbones and the trainer.

Data flows:  data pipeline -> ``Batch`` (packed rows) or ``Segments`` (sentence-aligned chunks)
-> ``objective.prepare(data, rng)`` -> ``Batch`` with targets -> ``batch.to(device)`` -> backbone.

While objectives prepare a batch its arrays are numpy arrays (cheap, seeded with a numpy
``Generator``); ``Batch.to(device)`` turns every array into a torch tensor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol

import numpy as np
import torch

from zoo.models.attention import AttentionLayout

Array = Any  # numpy.ndarray before ``Batch.to``, torch.Tensor after


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of the tokenizer's special tokens; ``None`` where the tokenizer has no such token."""

    vocab_size: int
    pad: int
    unk: int | None = None
    cls: int | None = None
    sep: int | None = None
    mask: int | None = None
    bos: int | None = None
    eos: int | None = None
    sentinels: tuple[int, ...] = ()
    # Further special tokens objectives declare (``Objective.special_tokens``), e.g. UL2's paradigm
    # tokens: their text ("[R]") -> id.
    extra: Mapping[str, int] = field(default_factory=dict, hash=False)

    @property
    def all_ids(self) -> frozenset[int]:
        ids = {self.pad, self.unk, self.cls, self.sep, self.mask, self.bos, self.eos, *self.sentinels,
               *self.extra.values()}
        return frozenset(i for i in ids if i is not None)

    def extra_id(self, token: str, by: str) -> int:
        """The id of the extra special token ``token``; ``ValueError`` naming ``by`` when the tokenizer lacks it."""
        if token not in self.extra:
            have = ", ".join(sorted(self.extra)) or "none"
            raise ValueError(f"{by} needs the special token {token!r}, which the tokenizer lacks (its extra "
                             f"special tokens: {have}); train the tokenizer with the objective that declares it")
        return self.extra[token]

    @property
    def separator(self) -> int:
        """The token that separates two segments: [SEP] for encoders, <|endoftext|> for decoders."""
        sep = self.sep if self.sep is not None else self.eos
        if sep is None:
            raise ValueError("the tokenizer has neither a [SEP] nor an end-of-text token")
        return sep

    def require(self, *names: str, by: str) -> None:
        """Fail clearly when an objective needs a token the tokenizer lacks."""
        missing = [n for n in names if getattr(self, n) is None or (n == "sentinels" and not self.sentinels)]
        if missing:
            raise ValueError(f"{by} needs the tokenizer's {', '.join(missing)} token(s), which it lacks")


@dataclass
class Batch:
    """One batch of rows. Positions with ``doc_ids == -1`` are padding."""

    input_ids: Array  # (B, T) int64
    doc_ids: Array  # (B, T) int32: document index inside the row (block-diagonal attention), -1 = pad
    position_ids: Array | None = None  # (B, T) int64, restarting at 0 for each packed document
    token_type_ids: Array | None = None  # (B, T) int64 segment ids (backbones with 'segments')
    special_mask: Array | None = None  # (B, T) bool: special tokens and padding, never masked/corrupted
    word_starts: Array | None = None  # (B, T) bool: first sub-token of each word (whole-word masking)
    causal: bool = False
    prefix: Array | None = None  # (B, T) bool: bidirectional prefix of a prefix-LM layout
    targets: dict[str, dict[str, Array]] = field(default_factory=dict)  # objective name -> its labels
    part: str | None = None  # the mixture part that prepared this batch (see zoo.objectives.mixture)
    # Encoder-decoder batches: the rows above are the encoder's input; the decoder reads these (causal,
    # decoder document d attending encoder document d). Labels stay in ``targets``, aligned with them.
    decoder_input_ids: Array | None = None  # (B, Td) int64: the target shifted right behind a start token
    decoder_doc_ids: Array | None = None  # (B, Td) int32, -1 = padding
    decoder_position_ids: Array | None = None  # (B, Td) int64, restarting at 0 per document

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.input_ids.shape)  # type: ignore[return-value]

    def slots(self) -> int:
        """Token positions the model reads, padding included: rows x width, plus the decoder's on an
        encoder-decoder batch (a prefix-LM row of input and target counts both too)."""
        rows, width = self.shape
        extra = 0 if self.decoder_input_ids is None else self.decoder_input_ids.shape[1]
        return rows * (width + extra)

    def num_tokens(self) -> int:
        """Non-padding tokens."""
        return int((self.doc_ids >= 0).sum())

    def layout(self) -> AttentionLayout:
        return AttentionLayout(causal=self.causal, doc_ids=self.doc_ids, prefix=self.prefix)

    def backbone_inputs(self) -> dict[str, Any]:
        """Keyword arguments of ``Backbone.forward`` (with the decoder's on encoder-decoder batches)."""
        out = {"input_ids": self.input_ids, "layout": self.layout(), "token_type_ids": self.token_type_ids,
               "position_ids": self.position_ids}
        if self.decoder_input_ids is not None:
            out.update(decoder_input_ids=self.decoder_input_ids, decoder_position_ids=self.decoder_position_ids,
                       decoder_layout=AttentionLayout(causal=True, doc_ids=self.decoder_doc_ids))
        return out

    def replace(self, **changes: Any) -> Batch:
        return replace(self, **changes)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy whose arrays are torch tensors on ``device``."""

        def conv(x: Any) -> Any:
            if x is None or isinstance(x, (bool, int, float, str)):
                return x
            if isinstance(x, dict):
                return {k: conv(v) for k, v in x.items()}
            t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
            return t.to(device, non_blocking=non_blocking)

        return Batch(**{f.name: conv(getattr(self, f.name)) for f in fields(self)})


class DocumentSource(Protocol):
    """Random access to tokenised documents split into sentences (the data pipeline's token store)."""

    def num_documents(self) -> int: ...

    def document_sentences(self, doc: int) -> list[np.ndarray]:
        """Token ids of each sentence of document ``doc`` (int64 arrays)."""
        ...

    def document_word_starts(self, doc: int) -> list[np.ndarray]:
        """Per sentence, a bool array marking the first sub-token of each word."""
        ...


@dataclass
class Chunk:
    """Consecutive sentences of one document, at most a target number of tokens together."""

    doc: int
    sentences: list[np.ndarray]  # token ids per sentence
    word_starts: list[np.ndarray]  # bool per sentence


@dataclass
class Segments:
    """Input for pair-building objectives (NSP, SOP): chunks plus access to other documents."""

    chunks: Sequence[Chunk]
    seq_len: int  # length of the rows the pair builder must produce
    source: DocumentSource
