"""Token stores: a corpus tokenised once into memory-mapped arrays, cached by content.

A store is a directory::

    meta.json            format version, dtype, counts, tokenizer hash, content hash
    tokens.bin           all token ids, documents one after another (uint16, or uint32 when the
                         vocabulary has more than 65,536 entries)
    word_starts.bin      uint8, 1 where a token is the first sub-token of a word (from word_ids)
    doc_offsets.npy      int64 (D+1,): token offset of each document
    sent_offsets.npy     int64 (S+1,): token offset of each sentence
    doc_sentences.npy    int64 (D+1,): index of each document's first sentence

Documents are split into sentences (``zoo.data.sentences``); runs of sentences of about
``CHUNK_CHARS`` characters are encoded with the fast tokenizer's batch encoder (all cores; no
special tokens; special-token text inside the corpus is encoded as plain text), and sentence
boundaries are mapped to token positions through the encodings' character offsets. A store is built in a temporary directory and renamed into
place, so a reader never sees half a store. Its cache key hashes the document texts, the
tokenizer, the format version and the ``tokenizers`` version: a changed corpus or tokenizer is
never served stale.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
import shutil
import time
import uuid
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tokenizers
from tokenizers import Tokenizer

from zoo import diskspace, fileio
from zoo.data.segment import Segmenter, token_word_starts
from zoo.data.sentences import MAX_SENTENCE_CHARS, SPLITTER_VERSION, sentence_boundaries
from zoo.data.tokenizer import tokenizer_hash
from zoo.errors import DataError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
BATCH_SENTENCES = 4096  # sentences per encode_batch call: large enough to keep all cores busy
# Sentences are encoded in chunks of about this many characters (of one document): one encoding
# per sentence costs ~30% more tokenizer time than one per chunk.
CHUNK_CHARS = 4000


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits, else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def content_hash(documents: Sequence[str]) -> str:
    """sha256 over the documents (length-prefixed UTF-8), order included."""
    h = hashlib.sha256()
    for doc in documents:
        b = doc.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def cache_root(cache_dir: str | None = None) -> Path:
    """``cache_dir``, else ``$ZOO_CACHE_DIR``, else ``~/.cache/objective-zoo``."""
    root = cache_dir or os.environ.get("ZOO_CACHE_DIR") or Path.home() / ".cache" / "objective-zoo"
    return Path(root).expanduser()


class TokenStore:
    """Random access to a tokenised corpus (implements ``zoo.batch.DocumentSource``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.meta: dict[str, Any] = json.loads((self.path / "meta.json").read_text(encoding="utf-8"))
            if self.meta.get("format") != FORMAT_VERSION:
                raise DataError(f"token store {self.path} has format {self.meta.get('format')}, "
                                f"expected {FORMAT_VERSION}")
            self.dtype = np.dtype(self.meta["dtype"])
            n = int(self.meta["num_tokens"])
            self.tokens = self._map("tokens.bin", self.dtype, n)
            self.word_starts = self._map("word_starts.bin", np.dtype(np.uint8), n)
            self.doc_offsets = np.load(self.path / "doc_offsets.npy", allow_pickle=False)
            self.sent_offsets = np.load(self.path / "sent_offsets.npy", allow_pickle=False)
            self.doc_sentences = np.load(self.path / "doc_sentences.npy", allow_pickle=False)
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"token store {self.path} is missing or damaged: {exc}") from exc
        ok = (len(self.doc_offsets) == self.meta["num_documents"] + 1
              and len(self.sent_offsets) == self.meta["num_sentences"] + 1
              and len(self.doc_sentences) == len(self.doc_offsets)
              and int(self.doc_offsets[-1]) == n and int(self.sent_offsets[-1]) == n)
        if not ok:
            raise DataError(f"token store {self.path} is damaged (offsets do not match its meta.json)")

    def _map(self, name: str, dtype: np.dtype, count: int) -> np.ndarray:
        p = self.path / name
        size = p.stat().st_size
        if size != count * dtype.itemsize:
            raise ValueError(f"{name} has {size} bytes, expected {count * dtype.itemsize}")
        if count == 0:
            return np.zeros(0, dtype)
        return np.memmap(p, dtype=dtype, mode="r", shape=(count,))

    # --- sizes ----------------------------------------------------------------------------------
    @property
    def num_tokens(self) -> int:
        return int(self.meta["num_tokens"])

    @property
    def num_sentences(self) -> int:
        return int(self.meta["num_sentences"])

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def tokenizer_hash(self) -> str:
        return str(self.meta["tokenizer_hash"])

    def num_documents(self) -> int:
        return int(self.meta["num_documents"])

    def doc_lengths(self) -> np.ndarray:
        """(D,) int64 tokens per document."""
        return np.diff(self.doc_offsets)

    # --- access ---------------------------------------------------------------------------------
    def document(self, doc: int) -> np.ndarray:
        """Token ids of document ``doc`` (int64)."""
        return self.tokens[self.doc_offsets[doc]:self.doc_offsets[doc + 1]].astype(np.int64)

    def document_sentences(self, doc: int) -> list[np.ndarray]:
        lo, hi = self.doc_sentences[doc], self.doc_sentences[doc + 1]
        o = self.sent_offsets
        return [self.tokens[o[s]:o[s + 1]].astype(np.int64) for s in range(lo, hi)]

    def document_word_starts(self, doc: int) -> list[np.ndarray]:
        lo, hi = self.doc_sentences[doc], self.doc_sentences[doc + 1]
        o = self.sent_offsets
        return [self.word_starts[o[s]:o[s + 1]].astype(bool) for s in range(lo, hi)]

    def __repr__(self) -> str:
        return (f"TokenStore({str(self.path)!r}, documents={self.num_documents()}, "
                f"sentences={self.num_sentences}, tokens={self.num_tokens}, dtype={self.dtype.name})")


def build_store(documents: Sequence[str], tokenizer: Tokenizer, directory: str | Path,
                content: str | None = None, segmenter: Segmenter | None = None) -> TokenStore:
    """Tokenise ``documents`` into a new store at ``directory`` (which must not exist yet). With a
    ``segmenter``, a token starts a word only where the segmenter starts one too (``zoo.data.segment``)."""
    out = Path(directory)
    out.mkdir(parents=True)
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    dtype = token_dtype(vocab_size)
    doc_offsets, sent_offsets, doc_sentences = array("q", [0]), array("q", [0]), array("q", [0])
    stats = {"documents_without_tokens": 0, "sentences_without_tokens": 0}
    total = 0
    t0 = time.perf_counter()
    # Special-token text inside the corpus ("[MASK]", "<|endoftext|>") must stay plain text.
    previous = tokenizer.encode_special_tokens
    tokenizer.encode_special_tokens = True
    try:
        with open(out / "tokens.bin", "wb") as ftok, open(out / "word_starts.bin", "wb") as fws:
            pending: list[str] = []  # chunks (runs of sentences of one document) waiting to be encoded
            pending_starts: list[list[int]] = []  # sentence starts inside each chunk (characters)
            pending_docs: list[int] = []  # sentences per pending document

            def flush() -> None:
                nonlocal total
                encs = tokenizer.encode_batch(pending, add_special_tokens=False)
                lengths = np.array([n for e, st, text in zip(encs, pending_starts, pending, strict=True)
                                    for n in _sentence_lengths(e, st, len(text))], dtype=np.int64)
                ids = np.fromiter(itertools.chain.from_iterable(e.ids for e in encs), dtype=np.int64,
                                  count=int(lengths.sum()))
                try:
                    wids = np.fromiter(itertools.chain.from_iterable(e.word_ids for e in encs), dtype=np.int64,
                                       count=len(ids))
                except TypeError:  # None word ids (added tokens of some tokenizers): each its own word
                    wids = np.fromiter((-1 if w is None else w for w in
                                        itertools.chain.from_iterable(e.word_ids for e in encs)),
                                       dtype=np.int64, count=len(ids))
                starts = np.ones(len(ids), dtype=bool)
                if len(ids):
                    starts[1:] = (wids[1:] != wids[:-1]) | (wids[1:] < 0)
                    if segmenter is not None:
                        starts &= np.concatenate([token_word_starts(segmenter, e, text)
                                                  for e, text in zip(encs, pending, strict=True)])
                    first = np.cumsum(lengths) - lengths  # the first token of every sentence
                    starts[first[lengths > 0]] = True
                if ids.size and int(ids.max()) >= vocab_size:
                    raise DataError(f"tokenizer produced id {int(ids.max())} >= its vocabulary size {vocab_size}")
                ids.astype(dtype).tofile(ftok)
                starts.astype(np.uint8).tofile(fws)
                # offsets: sentences with no tokens vanish, so do documents without sentences
                i = 0
                for n_sent in pending_docs:
                    kept = 0
                    for length in lengths[i:i + n_sent].tolist():
                        if length:
                            total += length
                            sent_offsets.append(total)
                            kept += 1
                        else:
                            stats["sentences_without_tokens"] += 1
                    i += n_sent
                    if kept:
                        doc_offsets.append(total)
                        doc_sentences.append(len(sent_offsets) - 1)
                    else:
                        stats["documents_without_tokens"] += 1
                pending.clear()
                pending_starts.clear()
                pending_docs.clear()

            queued = 0
            for doc in documents:
                b = sentence_boundaries(doc)
                for lo, hi in _chunks(b, len(doc)):
                    pending.append(doc[b[lo]:b[hi] if hi < len(b) else len(doc)])
                    pending_starts.append([x - b[lo] for x in b[lo:hi]])
                    queued += hi - lo
                pending_docs.append(len(b))
                if queued >= BATCH_SENTENCES:
                    flush()
                    queued = 0
            flush()
    finally:
        tokenizer.encode_special_tokens = previous
    np.save(out / "doc_offsets.npy", np.frombuffer(doc_offsets, dtype=np.int64))
    np.save(out / "sent_offsets.npy", np.frombuffer(sent_offsets, dtype=np.int64))
    np.save(out / "doc_sentences.npy", np.frombuffer(doc_sentences, dtype=np.int64))
    seconds = time.perf_counter() - t0
    meta = {
        "format": FORMAT_VERSION, "dtype": dtype.name, "vocab_size": vocab_size,
        "num_tokens": total, "num_documents": len(doc_offsets) - 1, "num_sentences": len(sent_offsets) - 1,
        "tokenizer_hash": tokenizer_hash(tokenizer), "content_hash": content or content_hash(documents),
        "tokenizers_version": tokenizers.__version__, "max_sentence_chars": MAX_SENTENCE_CHARS,
        "segmenter": segmenter.key() if segmenter is not None else None,
        "build_seconds": round(seconds, 3), **stats,
    }
    fileio.write_json(out / "meta.json", meta, indent=2)
    fileio.fsync_tree(out)  # complete on disk before the directory is renamed into place
    log.debug("tokenised %d documents, %d tokens in %.2fs", meta["num_documents"], total, seconds)
    return TokenStore(out)


def _chunks(bounds: list[int], length: int) -> list[tuple[int, int]]:
    """Runs [lo, hi) of sentence indices whose text spans about ``CHUNK_CHARS`` characters."""
    out, lo = [], 0
    for j in range(1, len(bounds)):
        if bounds[j] - bounds[lo] >= CHUNK_CHARS:
            out.append((lo, j))
            lo = j
    if bounds:
        out.append((lo, len(bounds)))
    return out


def _sentence_lengths(enc: tokenizers.Encoding, starts: list[int], text_len: int) -> list[int]:
    """Tokens per sentence of one encoded chunk, from the encoding's character offsets.

    Sentence ``j`` starts at the first token whose first character is at or after ``starts[j]``
    (a token straddling a boundary, which pre-tokenisation makes rare, stays where it starts)."""
    k, n = len(starts), len(enc)
    bounds = [0] * (k + 1)
    bounds[k] = n
    for j in range(k - 1, 0, -1):
        lo, hi = starts[j], starts[j + 1] if j + 1 < k else text_len
        t = None
        for c in range(lo, hi):  # whitespace has no token in WordPiece: look for the first that has one
            t = enc.char_to_token(c)
            if t is not None:
                break
        if t is None:
            bounds[j] = bounds[j + 1]  # a sentence without tokens
            continue
        if enc.token_to_chars(t)[0] < lo:
            t += 1
        bounds[j] = min(t, bounds[j + 1])
    return [bounds[j + 1] - bounds[j] for j in range(k)]


def store_key(content: str, tok_hash: str, segmenter: str = "") -> str:
    key = f"{FORMAT_VERSION}|{tokenizers.__version__}|{MAX_SENTENCE_CHARS}|{SPLITTER_VERSION}|{tok_hash}|{content}"
    if segmenter:  # stores without one keep their keys
        key += f"|segmenter={segmenter}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def cached_store(documents: Sequence[str], tokenizer: Tokenizer, cache_dir: str | None = None,
                 content: str | None = None, segmenter: Segmenter | None = None) -> tuple[TokenStore, bool]:
    """The store of ``documents`` under the cache root, built if needed; returns (store, cache hit)."""
    content = content or content_hash(documents)
    root = cache_root(cache_dir) / "shards"
    final = root / store_key(content, tokenizer_hash(tokenizer), segmenter.key() if segmenter is not None else "")
    if final.is_dir():
        try:
            return TokenStore(final), True
        except DataError as exc:
            log.warning("rebuilding damaged cached store: %s", exc)
            _remove(final)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the shard cache {root}: {exc.strerror or exc} "
                        "(set data.cache_dir or $ZOO_CACHE_DIR)") from exc
    clean_stale_temporaries(root)
    tmp = root / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        try:
            build_store(documents, tokenizer, tmp, content, segmenter)
            from zoo.train import faults  # reliability tests: a signal while the store is temporary

            faults.maybe_hold_at_stage("store")
        except OSError as exc:
            if not diskspace.is_full(exc):
                err = fileio.explain(exc, tmp, 0)
                if err is exc:
                    raise
                raise DataError(f"{err}; the partial token store was removed") from exc
            chars = sum(len(d) for d in documents)  # ~1 token per 3 characters: ids and word starts
            needed = chars / 3 * (token_dtype(tokenizer.get_vocab_size(with_added_tokens=True)).itemsize + 1)
            raise DataError(f"{diskspace.no_space(root, needed, f'the token store of {len(documents)} documents')}"
                            f"; the partial store was removed. Free some space or set data.cache_dir "
                            f"($ZOO_CACHE_DIR) to a disk with room") from exc
        try:
            fileio.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # not a concurrent build of the same store
                raise
            log.debug("another process built %s first", final)
    finally:
        if tmp.exists():
            _remove(tmp)
    return TokenStore(final), False


# A temporary store whose process is gone from this machine and whose files have not changed for this
# long was left by a build that was killed (SIGKILL, power loss); the age keeps a cache shared between
# machines safe from removing another machine's build in progress.
STALE_AFTER_S = 600.0
_TEMPORARY = re.compile(r"^\.tmp-.+-(\d+)-[0-9a-f]{8}$")


def clean_stale_temporaries(root: Path, now: float | None = None) -> list[Path]:
    """Remove the temporary stores under ``root`` that killed builds left behind (see ``STALE_AFTER_S``)
    and the ``.trash-*`` directories of removals that were cut short. Returns what was removed."""
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    for path in entries:
        m = _TEMPORARY.match(path.name)
        if m is None and not path.name.startswith(".trash-"):
            continue
        if m is not None and fileio.process_alive(int(m.group(1))):
            continue
        try:
            changed = max([path.stat().st_mtime, *(p.stat().st_mtime for p in path.iterdir())])
        except OSError:
            continue
        if now - changed >= STALE_AFTER_S:
            log.info("removing %s, left by a token store build that did not finish", path)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _remove(path: Path) -> None:
    trash = path.with_name(f".trash-{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, trash)  # vanish atomically first, delete at leisure
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)
