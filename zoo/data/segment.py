"""Word segmentation for whole-word masking in text written without spaces (Chinese).

BERT's WordPiece splits Chinese into single characters, each its own "word", so whole-word
masking of Chinese is character masking. With ``data.segmenter = "jieba"`` the token store marks
word starts from a word segmenter as well, as Chinese BERT-wwm does with its segmenter (Cui et al.,
2019/2021): a token starts a word only where the tokenizer starts one *and* the segmenter starts
one, so a segmenter word of several characters is masked whole, and a WordPiece continuation
(``##ing``) never starts a word. Boundaries are computed once, when the token store is built, and
the segmenter and its version are part of the store's cache key.

jieba is an optional dependency: ``pip install 'objective-zoo[zh]'``.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np
from tokenizers import Encoding

from zoo.errors import DataError

SEGMENTERS = ("none", "jieba")


class Segmenter(Protocol):
    name: str

    def key(self) -> str:
        """Name and version: a store built with another segmenter (or version) is another store."""
        ...

    def starts(self, text: str) -> np.ndarray:
        """(len(text),) bool: True at the first character of every word."""
        ...


class JiebaSegmenter:
    """jieba's default (accurate mode, HMM for unknown words) segmentation; deterministic."""

    name = "jieba"

    def __init__(self) -> None:
        try:
            import jieba
        except ImportError as exc:
            raise DataError("data.segmenter = 'jieba' needs the jieba package, which is not installed: "
                            "pip install 'objective-zoo[zh]' (or pip install jieba)") from exc
        jieba.setLogLevel(logging.WARNING)
        self._jieba = jieba.Tokenizer()
        self.version = str(getattr(jieba, "__version__", "unknown"))

    def key(self) -> str:
        return f"jieba-{self.version}"

    def words(self, text: str) -> list[str]:
        return list(self._jieba.cut(text, HMM=True))

    def starts(self, text: str) -> np.ndarray:
        out = np.zeros(len(text), dtype=bool)
        pos = 0
        for word in self.words(text):
            at = text.find(word, pos)  # the pieces cover the text in order
            if at < 0:
                continue
            out[at] = True
            pos = at + len(word)
        return out


def get_segmenter(name: str | None) -> Segmenter | None:
    """The segmenter called ``name`` (None for "none"); a clear error when it is unknown or not installed."""
    if name in (None, "", "none"):
        return None
    if name == "jieba":
        return JiebaSegmenter()
    raise DataError(f"data.segmenter = {name!r} is not a word segmenter; expected one of {', '.join(SEGMENTERS)}")


def token_word_starts(segmenter: Segmenter, encoding: Encoding, text: str) -> np.ndarray:
    """(len(encoding),) bool: whether the segmenter starts a word at each token's first character."""
    if len(encoding) == 0 or not text:
        return np.ones(len(encoding), dtype=bool)
    chars = segmenter.starts(text)
    first = np.fromiter((o[0] for o in encoding.offsets), dtype=np.int64, count=len(encoding))
    return chars[np.clip(first, 0, len(text) - 1)]
