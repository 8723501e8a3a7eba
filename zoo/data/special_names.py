"""The names of special tokens objective-zoo recognises, and the check of a run's extra ones: plain strings in a
module of their own, so the config types (``zoo.data.config``) check them without importing the tokenizer code
(``zoo.data.tokenizer``), which imports those types."""

from __future__ import annotations

import re
from collections.abc import Iterable

WORDPIECE_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
EOT, BPE_PAD, BPE_MASK = "<|endoftext|>", "<|pad|>", "<|mask|>"
BPE_SPECIALS = (EOT, BPE_PAD, BPE_MASK)
_SENTINEL = re.compile(r"^<extra_id_(\d+)>$")

# Names recognised by ``special_tokens``, in order of preference (covers BERT, GPT-2, T5, RoBERTa).
_NAMES: dict[str, tuple[str, ...]] = {
    "pad": ("[PAD]", "<pad>", BPE_PAD, "<|padding|>"),
    "unk": ("[UNK]", "<unk>", "<|unk|>"),
    "cls": ("[CLS]", "<cls>"),
    "sep": ("[SEP]", "<sep>"),
    "mask": ("[MASK]", "<mask>", BPE_MASK),
    "bos": ("[BOS]", "<bos>", "<s>", "<|startoftext|>", "<|begin_of_text|>"),
    "eos": ("[EOS]", "<eos>", "</s>", EOT, "<|end_of_text|>"),
}


def sentinel(i: int) -> str:
    return f"<extra_id_{i}>"


def check_extra_special_tokens(extra: Iterable[str]) -> tuple[str, ...]:
    """Validated extra special tokens, in order, each once; ``ValueError`` naming a bad one."""
    out: list[str] = []
    standard = {*WORDPIECE_SPECIALS, *BPE_SPECIALS, *(n for names in _NAMES.values() for n in names)}
    for token in extra:
        if not isinstance(token, str) or not token.strip() or token != token.strip():
            raise ValueError(f"extra special token {token!r} must be a non-empty string without surrounding spaces")
        if token in standard or _SENTINEL.match(token):
            raise ValueError(f"extra special token {token!r} is already one of the standard special tokens")
        if token not in out:
            out.append(token)
    return tuple(out)
