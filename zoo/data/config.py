"""Configuration of the data pipeline: TOML sections ``[data]`` and ``[tokenizer]``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class DataConfig:
    """Where the corpus comes from and how it is cut into documents (``[data]``)."""

    source: str | None = None  # file / directory / hf:NAME[:CONFIG][@split]; None = embedded pydoc topics
    text_field: str = "text"  # JSON lines / Hugging Face column holding the text
    include: list[str] = field(default_factory=lambda: ["*.txt", "*.jsonl", "*.json"])  # directory globs
    doc_boundary: Literal["auto", "file", "blank-line", "line"] = "auto"
    # auto: invalid UTF-8 replaced (U+FFFD; one summary warning per corpus), a NUL byte refused
    on_decode_error: Literal["auto", "error", "skip", "replace"] = "auto"  # bad UTF-8 / NUL bytes
    streaming: bool = False  # Hugging Face datasets: stream instead of downloading the whole split
    max_documents: int = 0  # 0 = all; else the first N documents in reading order
    validation_fraction: float = 0.02  # share of documents held out (at least one when > 0)
    cache_dir: str | None = None  # shard cache root; else $ZOO_CACHE_DIR, else ~/.cache/objective-zoo
    segmenter: Literal["none", "jieba"] = "none"  # word starts for whole-word masking of Chinese (zoo.data.segment)
    # decoder rows: a start token (beginning-of-text, else end-of-text as GPT-2) leads every document piece,
    # so the first token is predicted in training (zoo.data.packing); scored with the causal-start scorer
    doc_start: bool = False

    def __post_init__(self) -> None:
        if self.max_documents < 0:
            raise ValueError(f"data.max_documents must be >= 0, got {self.max_documents}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"data.validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if not self.include:
            raise ValueError("data.include must name at least one file pattern")


@dataclass
class TokenizerConfig:
    """Which tokenizer to use or how to train one (``[tokenizer]``)."""

    path: str | None = None  # tokenizer.json, or a directory holding one; None = train on the corpus
    kind: Literal["auto", "wordpiece", "bpe"] = "auto"  # auto: wordpiece for encoders, bpe for decoders
    vocab_size: int = 8000
    lowercase: bool = True  # WordPiece only (BERT uncased); byte-level BPE is always exact and cased
    num_sentinels: int = 100  # <extra_id_0> .. <extra_id_{n-1}> for span corruption
    # Further special tokens to reserve; a run adds those its objective declares (UL2's "[R]", ...).
    special_tokens: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.vocab_size < 32:
            raise ValueError(f"tokenizer.vocab_size must be >= 32, got {self.vocab_size}")
        if self.num_sentinels < 0:
            raise ValueError(f"tokenizer.num_sentinels must be >= 0, got {self.num_sentinels}")
        if self.special_tokens:
            from zoo.data.special_names import check_extra_special_tokens

            try:
                self.special_tokens = list(check_extra_special_tokens(self.special_tokens))
            except ValueError as exc:
                raise ValueError(f"tokenizer.special_tokens: {exc}") from None
