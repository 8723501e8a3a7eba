"""``build_datasets``: corpus -> train/validation split -> tokenizer -> cached token stores."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tokenizers
from tokenizers import Tokenizer

from zoo import fileio
from zoo.batch import SpecialTokens
from zoo.data.config import DataConfig, TokenizerConfig
from zoo.data.corpus import read_corpus
from zoo.data.packing import RowSource, SegmentSource, make_source
from zoo.data.segment import get_segmenter
from zoo.data.sentences import chunk_text
from zoo.data.store import TokenStore, cache_root, cached_store, content_hash
from zoo.data.tokenizer import (
    load_tokenizer,
    resolve_kind,
    save_tokenizer,
    special_tokens,
    tokenizer_hash,
    tokenizer_kind,
    train_tokenizer,
)
from zoo.errors import DataError
from zoo.family import Family

log = logging.getLogger(__name__)

ORIGIN_FILE = "tokenizer-origin.json"  # beside a run's trained tokenizer: what it was trained for
TRAINER_VERSION = 1  # bump when tokenizer training changes, so cached tokenizers are not reused


@dataclass
class DataBundle:
    tokenizer: Tokenizer
    special: SpecialTokens
    train: TokenStore
    valid: TokenStore
    stats: dict[str, Any] = field(default_factory=dict)
    family: Family = Family.ENCODER

    def source(self, unit: str, seq_len: int, split: str = "train", seed: int = 0) -> RowSource | SegmentSource:
        """``make_source`` over the train or validation store."""
        store = {"train": self.train, "valid": self.valid}[split]
        return make_source(unit, store, seq_len, self.special, self.family, seed=seed)


def split_documents(documents: Sequence[str], fraction: float) -> tuple[list[int], list[int]]:
    """(train, validation) document indices, each in corpus order.

    The validation documents are the ``max(1, round(fraction * N))`` documents with the smallest
    sha256 of their text: deterministic, and stable when documents are added or removed elsewhere.
    """
    n = len(documents)
    if fraction <= 0:
        return list(range(n)), []
    k = max(1, round(fraction * n))
    if n - k < 1:
        raise DataError(f"the corpus has {n} document(s): too few to hold out {k} for validation and keep one "
                        "for training; add documents or set data.validation_fraction = 0")
    keys = sorted((hashlib.sha256(d.encode("utf-8")).digest(), i) for i, d in enumerate(documents))
    valid = sorted(i for _, i in keys[:k])
    chosen = set(valid)
    return [i for i in range(n) if i not in chosen], valid


# A corpus of a few long documents (a dozen books) would hold out one whole document for validation,
# and pair objectives draw "random next sentences" from another document of the same split: such a
# corpus is cut into pieces of about PIECE_CHARS characters at paragraph (else line) boundaries.
LONG_DOCUMENT_CHARS = 100_000
PIECE_CHARS = 20_000  # at most; less when needed for 2 validation documents, never under MIN_PIECE_CHARS
MIN_PIECE_CHARS = 1_000


def _pieces(text: str, size: int) -> list[str]:
    units = [u for para in re.split(r"\n\s*\n", text)
             for u in (para.split("\n") if len(para) > 2 * size else [para])]
    out, current, length = [], [], 0
    for unit in units:
        current.append(unit)
        length += len(unit) + 2
        if length >= size:
            out.append("\n\n".join(current))
            current, length = [], 0
    if current:
        out.append("\n\n".join(current))
    return [p for p in (p.strip() for p in out) if p]


def split_long_documents(documents: list[str], fraction: float) -> tuple[list[str], int]:
    """When holding out ``fraction`` of ``documents`` would leave fewer than 2 validation documents and
    some document is longer than ``LONG_DOCUMENT_CHARS``, the long documents are cut into pieces of at
    most ``PIECE_CHARS`` characters, fewer if 2 / ``fraction`` pieces need it. Returns the documents
    and how many were cut."""
    if fraction <= 0 or round(fraction * len(documents)) >= 2 or \
            not any(len(d) > LONG_DOCUMENT_CHARS for d in documents):
        return documents, 0
    size = max(MIN_PIECE_CHARS, min(PIECE_CHARS, sum(map(len, documents)) // math.ceil(2 / fraction)))
    out: list[str] = []
    cut = 0
    for doc in documents:
        pieces = _pieces(doc, size) if len(doc) > size else [doc]
        cut += len(pieces) > 1
        out.extend(pieces)
    log.info("the corpus holds only %d document(s), some over %d characters: cut %d of them at paragraph "
             "boundaries into pieces of about %d characters (%d documents now), so that the validation split "
             "and next-sentence sampling draw on several of them", len(documents), LONG_DOCUMENT_CHARS, cut,
             size, len(out))
    return out, cut


def _training_key(tok_cfg: TokenizerConfig, kind: str, content: str) -> str:
    """What a trained tokenizer depends on: trainer, settings and the training split's content."""
    extra = f"|{json.dumps(tok_cfg.special_tokens)}" if tok_cfg.special_tokens else ""  # older keys unchanged
    return hashlib.sha256(f"{TRAINER_VERSION}|{tokenizers.__version__}|{kind}|{tok_cfg.vocab_size}|"
                          f"{tok_cfg.lowercase}|{tok_cfg.num_sentinels}{extra}|{content}".encode()).hexdigest()[:32]


def _check_run_tokenizer(run_tok: Path, origin: dict[str, Any]) -> None:
    """Refuse a run directory whose tokenizer was trained with other settings or on another corpus.

    A run that stopped before its first checkpoint has no saved config to compare against, so what its
    tokenizer was trained for is kept beside it (``tokenizer-origin.json``). Edited files of the same
    corpus are not a difference: a resumed run keeps its tokenizer while its corpus grows.
    """
    path = run_tok.parent / ORIGIN_FILE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable ({exc}); remove it or use a new run directory") from exc
    changed = [f"{'data' if k == 'source' else 'tokenizer'}.{k} {saved.get(k)!r} -> {v!r}"
               for k, v in origin.items() if saved.get(k) != v]
    if changed:
        raise DataError(f"{run_tok} was trained for other settings than this command's ({', '.join(changed)}); "
                        "a run keeps the tokenizer it started with: use a new run directory (--out) to change it")


def _trained_tokenizer(train_docs: list[str], tok_cfg: TokenizerConfig, kind: str, content: str,
                       cache_dir: str | None) -> tuple[Tokenizer, str]:
    """Train on ``train_docs`` or reuse the identical tokenizer trained before (cached by content)."""
    key = _training_key(tok_cfg, kind, content)
    cached = cache_root(cache_dir) / "tokenizers" / key / "tokenizer.json"
    if cached.is_file():
        try:
            return Tokenizer.from_file(str(cached)), "cache"
        except Exception as exc:  # a damaged cache entry is rebuilt
            log.warning("ignoring damaged cached tokenizer %s: %s", cached, exc)
    t0 = time.perf_counter()
    pieces = [p for doc in train_docs for p in chunk_text(doc)]
    tok = train_tokenizer(pieces, kind, vocab_size=tok_cfg.vocab_size, lowercase=tok_cfg.lowercase,
                          num_sentinels=tok_cfg.num_sentinels, length=len(pieces),
                          extra_special_tokens=tok_cfg.special_tokens)
    log.info("trained a %s tokenizer (%d entries) on %d documents in %.1fs", kind, tok.get_vocab_size(),
             len(train_docs), time.perf_counter() - t0)
    try:
        cached.parent.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.parent.with_name(f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        tmp.mkdir()
        try:
            tok.save(str(tmp / "tokenizer.json"))
            fileio.fsync_tree(tmp)
            try:
                fileio.rename(tmp, cached.parent)
            except OSError:
                if not (cached.parent / "tokenizer.json").is_file():  # not another process caching it first
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # nothing partial is left in the cache
    except OSError as exc:
        log.warning("could not cache the tokenizer under %s: %s", cached.parent, exc)
    return tok, "trained"


def check_row_tokens(special: SpecialTokens, family: str) -> None:
    """Fail early when the tokenizer lacks what rows of this backbone family need."""
    family = Family.of(family).rows
    if family == Family.ENCODER and (special.cls is None or special.sep is None):
        raise DataError("an encoder backbone needs a tokenizer with [CLS] and [SEP] tokens; this one has none: use "
                        "tokenizer.kind = 'wordpiece' (or 'auto') or a tokenizer that has them")
    if family == Family.DECODER and special.eos is None and special.sep is None:
        raise DataError("a decoder backbone needs a tokenizer with an end-of-text token (<|endoftext|>, </s>) "
                        "or [SEP]; this one has neither")


def build_datasets(data: DataConfig, tok: TokenizerConfig, family: str, run_dir: Path | str | None,
                   tokenizer: Tokenizer | None = None) -> DataBundle:
    """Read the corpus, split it by document, get the tokenizer, and build or reuse the token stores.

    The tokenizer is ``run_dir/tokenizer.json`` when it exists (a resumed run), else ``tokenizer``
    (a checkpoint's own, used as is), else ``tok.path``, else one trained on the training split; it
    is saved to ``run_dir``.
    ``family`` is the backbone family, 'encoder' or 'decoder'.
    """
    family = Family.of(family)
    segmenter = get_segmenter(data.segmenter)  # before any work: a missing extra fails at once
    t0 = time.perf_counter()
    corpus = read_corpus(data)
    corpus.documents, cut = split_long_documents(corpus.documents, data.validation_fraction)
    if cut:
        corpus.stats["long_documents_cut_into_pieces"] = cut
    t_read = time.perf_counter() - t0
    train_idx, valid_idx = split_documents(corpus.documents, data.validation_fraction)
    train_docs = [corpus.documents[i] for i in train_idx]
    valid_docs = [corpus.documents[i] for i in valid_idx]
    train_content, valid_content = content_hash(train_docs), content_hash(valid_docs)

    t1 = time.perf_counter()
    run_tok = Path(run_dir) / "tokenizer.json" if run_dir is not None else None
    given, given_name = (tokenizer, "the --init checkpoint's tokenizer") if tokenizer is not None else \
        (load_tokenizer(tok.path) if tok.path is not None else None, f"tokenizer.path {tok.path}")
    kind = resolve_kind(tok, family) if given is None else None
    if run_tok is not None and run_tok.is_file():
        tokenizer, tok_source = load_tokenizer(run_tok), "run_dir"
        if given is not None and tokenizer_hash(given) != tokenizer_hash(tokenizer):
            raise DataError(f"{run_tok} differs from {given_name}: a run keeps the tokenizer it "
                            "started with; use a new run directory to change it")
    elif given is not None:
        tokenizer, tok_source = given, "init" if tok.path is None else "path"
    else:
        tokenizer, tok_source = _trained_tokenizer(train_docs, tok, kind, train_content, data.cache_dir)
    origin = None
    if kind is not None:
        origin = {"kind": kind, "vocab_size": tok.vocab_size, "lowercase": tok.lowercase,
                  "num_sentinels": tok.num_sentinels, "source": data.source}
        if tok.special_tokens:  # absent otherwise, as in runs written before the option existed
            origin["special_tokens"] = list(tok.special_tokens)
        if tok_source == "run_dir":
            _check_run_tokenizer(run_tok, origin)
    special = special_tokens(tokenizer)
    check_row_tokens(special, family)
    if run_tok is not None and not run_tok.is_file():
        save_tokenizer(tokenizer, run_tok.parent)
        if origin is not None:
            fileio.write_json(run_tok.parent / ORIGIN_FILE, origin)
    t_tok = time.perf_counter() - t1

    t2 = time.perf_counter()
    train, train_hit = cached_store(train_docs, tokenizer, data.cache_dir, train_content, segmenter)
    valid, valid_hit = cached_store(valid_docs, tokenizer, data.cache_dir, valid_content, segmenter)
    t_store = time.perf_counter() - t2

    stats: dict[str, Any] = {
        "source": corpus.description,
        "documents": len(corpus.documents),
        "train_documents": train.num_documents(), "valid_documents": valid.num_documents(),
        "train_tokens": train.num_tokens, "valid_tokens": valid.num_tokens,
        "train_sentences": train.num_sentences, "valid_sentences": valid.num_sentences,
        "tokenizer_source": tok_source, "tokenizer_kind": tokenizer_kind(tokenizer),
        "tokenizer_hash": tokenizer_hash(tokenizer), "vocab_size": special.vocab_size,
        "token_dtype": train.dtype.name, "segmenter": train.meta.get("segmenter"),
        "cache_hit": train_hit and valid_hit, "train_cache_hit": train_hit, "valid_cache_hit": valid_hit,
        "train_store": str(train.path), "valid_store": str(valid.path),
        "documents_without_tokens": int(train.meta.get("documents_without_tokens", 0))
        + int(valid.meta.get("documents_without_tokens", 0)),
        "seconds": {"read": round(t_read, 3), "tokenizer": round(t_tok, 3), "stores": round(t_store, 3),
                    "total": round(time.perf_counter() - t0, 3)},
        **{k: int(v) for k, v in sorted(corpus.stats.items()) if k != "documents"},
    }
    skipped = {k: v for k, v in stats.items() if (k.startswith(("skipped", "replaced", "removed", "empty"))
                                                    or k == "documents_without_tokens") and v}
    log.info("data: %d documents (%d train / %d validation), %d + %d tokens, tokenizer %s (%s), stores %s%s",
             stats["documents"], stats["train_documents"], stats["valid_documents"], stats["train_tokens"],
             stats["valid_tokens"], stats["tokenizer_kind"], tok_source, "cached" if stats["cache_hit"] else "built",
             f"; {skipped}" if skipped else "")
    return DataBundle(tokenizer=tokenizer, special=special, train=train, valid=valid, stats=stats, family=family)
