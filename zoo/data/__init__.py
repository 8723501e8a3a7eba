"""The data pipeline: corpus readers, tokenizer training, token stores, packing and sampling.

    corpus (file / directory / JSON lines / hf:NAME / embedded pydoc topics)
      -> documents -> train/validation split by document
      -> tokenizer (trained on the training split, or loaded)
      -> token stores (memory-mapped, cached by content + tokenizer hash)
      -> RowSource (packed rows) / SegmentSource (sentence chunks) -> Sampler (seeded, resumable)

Everything is objective-agnostic: objectives ask for a unit ('rows' or 'segments') and get
``zoo.batch.Batch`` / ``zoo.batch.Segments``.
"""

from zoo.data.config import DataConfig, TokenizerConfig
from zoo.data.corpus import Corpus, parse_hf_spec, read_corpus
from zoo.data.packing import RowSource, SegmentSource, make_source
from zoo.data.pipeline import DataBundle, build_datasets, split_documents
from zoo.data.sampler import Sampler
from zoo.data.sentences import split_sentences
from zoo.data.store import TokenStore, build_store, cached_store
from zoo.data.tokenizer import (
    load_tokenizer,
    save_tokenizer,
    special_tokens,
    tokenizer_hash,
    train_tokenizer,
)

__all__ = [
    "Corpus", "DataBundle", "DataConfig", "RowSource", "Sampler", "SegmentSource", "TokenStore", "TokenizerConfig",
    "build_datasets", "build_store", "cached_store", "load_tokenizer", "make_source", "parse_hf_spec", "read_corpus",
    "save_tokenizer", "special_tokens", "split_documents", "split_sentences", "tokenizer_hash", "train_tokenizer",
]
