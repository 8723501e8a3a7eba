"""Backbone families: an architecture's lineage, which picks the tokenizer and the row format."""

from __future__ import annotations

from enum import Enum


class Family(str, Enum):
    """``encoder``: [CLS] A [SEP] rows and a WordPiece tokenizer (BERT's lineage); ``decoder``:
    end-of-text separated rows and a byte-level BPE tokenizer (GPT-2's); ``encoder-decoder`` (T5's):
    the decoder's rows and tokenizer, an encoder input and a decoder input per row. A member equals its string,
    so a plugin may write ``family = "encoder"``. The family never limits attention patterns: those are
    a backbone's ``capabilities``, and the objective chooses one per batch."""

    ENCODER = "encoder"
    DECODER = "decoder"
    ENCODER_DECODER = "encoder-decoder"

    @property
    def rows(self) -> Family:
        """The family whose row format and tokenizer this one uses (encoder-decoder: the decoder's)."""
        return Family.DECODER if self is Family.ENCODER_DECODER else self

    @property
    def default_attention(self) -> str:
        """The pattern rows keep when an objective does not choose one (and fine-tuning's default)."""
        return "causal" if self is Family.DECODER else "bidirectional"

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:  # messages show the family as the plain string it equals
        return repr(self.value)

    @classmethod
    def of(cls, value: str) -> Family:
        """``value`` as a Family; a ``ValueError`` naming the accepted values otherwise."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown backbone family {value!r}; expected 'encoder', 'decoder' or "
                             "'encoder-decoder'") from None
