"""Corpus readers: local text / JSON lines files and directories, Hugging Face datasets, and the
embedded default (the standard library's pydoc topics). All of them yield clean documents.

Cleaning, the same for every source: a UTF-8 BOM is stripped, CRLF and lone CR become LF, the
document is stripped of surrounding whitespace, and empty documents are dropped (counted).
A NUL byte is treated as corrupt input, like invalid UTF-8. ``on_decode_error`` decides:
``"auto"`` (default) decodes invalid UTF-8 as U+FFFD, counted and summarised in one warning per
corpus, and refuses a NUL byte (binary data or UTF-16 without a byte-order mark) like ``"error"``,
which names the file, byte offset and line; ``"skip"`` drops each line holding bad bytes (a JSON
line is one record) and counts them; ``"replace"`` decodes bad bytes as U+FFFD and removes NULs,
counting both.
"""

from __future__ import annotations

import codecs
import fnmatch
import json
import logging
import os
import re
import stat
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from zoo.data.config import DataConfig
from zoo.data.encodings import decompress, from_unicode_bom, plain_name
from zoo.errors import DataError

log = logging.getLogger(__name__)

JSON_SUFFIXES = (".jsonl", ".json")
# In a directory read with doc_boundary = "auto", a text file with no blank line and at least this
# many lines is in the one-document-per-line layout (e.g. zhwiki dumps), not one long document.
LINE_LAYOUT_MIN_LINES = 1000

_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")
_BLANK_LINE_BYTES = re.compile(rb"\n[ \t\r\f\v]*\n")


@dataclass
class Corpus:
    documents: list[str]
    description: str
    stats: Counter = field(default_factory=Counter)  # files, skipped and empty counts


def clean(text: str) -> str:
    """Normalise line ends and strip surrounding whitespace (and a stray BOM)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.strip().lstrip("\ufeff").strip()


def parse_hf_spec(spec: str) -> tuple[str, str | None, str]:
    """``hf:NAME[:CONFIG][@split]`` -> (name, config, split); split defaults to ``train``."""
    body = spec[3:] if spec.startswith("hf:") else spec
    body, _, split = body.partition("@")
    name, _, config = body.partition(":")
    if not name:
        raise DataError(f"data source {spec!r}: expected hf:NAME[:CONFIG][@split], e.g. hf:wikitext:wikitext-2-raw-v1@train")
    return name, (config or None), (split or "train")


def read_corpus(cfg: DataConfig) -> Corpus:
    """All documents of ``cfg.source`` (first ``cfg.max_documents`` when set), cleaned."""
    if cfg.source is None:
        corpus = _read_embedded(cfg)
    elif cfg.source.startswith("hf:"):
        corpus = _read_hf(cfg)
    else:
        corpus = _read_local(cfg)
    if not corpus.documents:
        details = ", ".join(f"{k}: {v}" for k, v in sorted(corpus.stats.items()) if v)
        hint = (f"; no record has the field {cfg.text_field!r}: set data.text_field (--text-field)"
                if corpus.stats["skipped_missing_field"] else "")
        raise DataError(f"no documents in {corpus.description}" + (f" ({details})" if details else "")
                        + "; every file or record was empty, whitespace-only or skipped" + hint)
    corpus.stats["documents"] = len(corpus.documents)
    _summarise_repairs(corpus, cfg)
    return corpus


_SUMMARISED: set[tuple[str, str, int, int]] = set()  # corpora whose repairs were reported in this process


def _summarise_repairs(corpus: Corpus, cfg: DataConfig) -> None:
    """One warning per corpus (and process) for the bytes that were replaced, with the option to change it."""
    replaced, nuls, files = (corpus.stats[k] for k in ("replaced_invalid_utf8", "removed_nul_bytes",
                                                        "files_with_decode_errors"))
    key = (corpus.description, cfg.on_decode_error, replaced, nuls)
    if not (replaced or nuls) or key in _SUMMARISED:
        return
    _SUMMARISED.add(key)
    what = f"{replaced} invalid UTF-8 sequence(s) decoded as U+FFFD" + (f", {nuls} NUL byte(s) removed" if nuls else "")
    in_files = f" in {files} file(s)" if files else ""
    log.warning("%s: %s%s (-v names each file); --on-decode-error error refuses such input, skip drops the "
                "lines holding it", corpus.description, what, in_files)


# --- embedded default ---------------------------------------------------------------------------
def _read_embedded(cfg: DataConfig) -> Corpus:
    from pydoc_data.topics import topics

    corpus = Corpus([], "the embedded pydoc topics (Python standard library)")
    for key in sorted(topics):
        text = clean(topics[key])
        if text:
            corpus.documents.append(text)
        else:
            corpus.stats["empty_documents"] += 1
        if cfg.max_documents and len(corpus.documents) >= cfg.max_documents:
            break
    return corpus


# --- Hugging Face datasets ----------------------------------------------------------------------
def _read_hf(cfg: DataConfig) -> Corpus:
    assert cfg.source is not None
    name, config, split = parse_hf_spec(cfg.source)
    desc = f"Hugging Face dataset {name!r}" + (f" config {config!r}" if config else "") + f" split {split!r}"
    import datasets

    try:
        ds = datasets.load_dataset(name, config, split=split, streaming=cfg.streaming)
    except Exception as exc:  # the datasets library raises many types; all mean "cannot load"
        msg = str(exc)
        if isinstance(exc, (ConnectionError, TimeoutError)) or "offline" in msg.lower() or "reach" in msg.lower():
            raise DataError(f"cannot load {desc}: cannot reach the Hugging Face hub and it is not in the local "
                            f"cache ({type(exc).__name__}: {msg}). Download it once with network access, or "
                            "use a local file or directory as data.source") from exc
        raise DataError(f"cannot load {desc}: {type(exc).__name__}: {msg}") from exc
    corpus = Corpus([], desc)
    columns = getattr(ds, "column_names", None)
    if columns is not None and cfg.text_field not in columns:
        raise DataError(f"{desc} has no column {cfg.text_field!r} (columns: {', '.join(columns)}); "
                        "set data.text_field (--text-field)")
    for i, row in enumerate(ds):
        text = _record_text(row, cfg, f"{desc}, row {i}", corpus.stats)
        if text is not None:
            corpus.documents.append(text)
            if cfg.max_documents and len(corpus.documents) >= cfg.max_documents:
                break
    return corpus


# --- local files --------------------------------------------------------------------------------
def _read_local(cfg: DataConfig) -> Corpus:
    assert cfg.source is not None
    root = Path(cfg.source).expanduser()
    if not root.exists():
        raise DataError(f"corpus path not found: {root} (data.source / --data)")
    if not root.is_dir() and not root.is_file():
        raise DataError(f"cannot read {root}: {_not_regular(root)}")
    corpus = Corpus([], str(root))
    if root.is_dir():
        files = _list_files(root, cfg.include, corpus.stats)
        in_dir = True
    else:
        files, in_dir = [root], False
    for path in files:
        corpus.stats["files"] += 1
        before = len(corpus.documents)
        for doc in _read_file(path, cfg, in_dir, corpus.stats):
            corpus.documents.append(doc)
            if cfg.max_documents and len(corpus.documents) >= cfg.max_documents:
                return corpus
        if len(corpus.documents) == before:
            corpus.stats["files_without_documents"] += 1
    return corpus


def _walk(root: Path, stats: Counter) -> list[Path]:
    """Every entry under ``root`` that is not a directory, sorted; linked folders are followed, each
    folder and file read once (a link loop or a second link to the same place is skipped, counted and
    logged with its target); an unreadable folder is an error, never a silent gap."""
    def unreadable(exc: OSError) -> None:
        raise DataError(f"cannot read directory {exc.filename}: {exc.strerror or exc}")

    seen_dirs: set[tuple[int, int]] = set()
    seen_files: dict[tuple[int, int], Path] = {}
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=True):
        here = Path(dirpath)
        st = os.stat(here)
        if (st.st_dev, st.st_ino) in seen_dirs:
            stats["linked_folders_skipped"] += 1
            log.warning("skipping %s: it links to %s, which is already read (a symbolic link loop or a second "
                        "link to the same folder)", here, os.path.realpath(here))
            dirnames[:] = []
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        dirnames.sort()
        for name in filenames:
            path = here / name
            try:
                fst = path.stat()
            except OSError:
                out.append(path)  # a broken link: reported when it matches
                continue
            key = (fst.st_dev, fst.st_ino)
            if stat.S_ISREG(fst.st_mode) and key in seen_files:
                stats["linked_files_skipped"] += 1
                log.warning("skipping %s: it is the same file as %s (read once)", path, seen_files[key])
                continue
            seen_files.setdefault(key, path)
            out.append(path)
    return sorted(out)


def _list_files(root: Path, include: list[str], stats: Counter) -> list[Path]:
    """Files under ``root`` (recursively, sorted) whose name or relative path matches ``include``
    (``a.txt.gz`` matches ``*.txt``: compressed files are read transparently)."""
    matched: list[Path] = []
    others: list[str] = []
    for path in _walk(root, stats):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            if path.is_file():
                stats["hidden_files_ignored"] += 1
            continue
        names = {path.name, plain_name(path.name)}
        rels = {rel.as_posix(), plain_name(rel.as_posix())}
        if any(fnmatch.fnmatch(n, pat) for pat in include for n in names | rels):
            if not path.is_file():  # a broken link, a FIFO (reading would block), a socket, a device
                raise DataError(f"cannot read {path}: {_not_regular(path)}")
            matched.append(path)
        elif path.is_file():
            others.append(rel.as_posix())
    stats["files_not_matching_include"] += len(others)
    if not matched:
        hint = f"; it has {len(others)} other file(s), e.g. {', '.join(others[:3])}" if others else " (it is empty)"
        raise DataError(f"no files matching {', '.join(include)} under {root}{hint}. "
                        "Set data.include to the patterns of your corpus files")
    return matched


def _not_regular(path: Path) -> str:
    """Why ``path`` (which exists as a name) is not a regular file that can be read."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if path.is_symlink():
            return f"broken symbolic link to {os.readlink(path)} ({exc.strerror})"
        return exc.strerror or str(exc)
    kinds = {stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device",
             stat.S_ISBLK: "a block device"}
    return next((f"{name}, not a regular file" for test, name in kinds.items() if test(mode)), "not a regular file")


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except PermissionError as exc:
        raise DataError(f"cannot read {path}: permission denied") from exc
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return decompress(path, data)


def _location(data: bytes, offset: int) -> str:
    line = data.count(b"\n", 0, offset) + 1
    return f"byte offset {offset} (line {line})"


def _read_file(path: Path, cfg: DataConfig, in_dir: bool, stats: Counter) -> Iterator[str]:
    data = _read_bytes(path)
    data = from_unicode_bom(path, data, stats)
    if not data.strip():
        stats["empty_files"] += 1
        log.warning("%s is empty or whitespace-only; no documents from it", path)
        return
    if Path(plain_name(path.name)).suffix.lower() in JSON_SUFFIXES:
        yield from _read_json(path, data, cfg, stats)
        return
    mode = cfg.doc_boundary
    if mode == "auto":
        blank = _BLANK_LINE_BYTES.search(data) is not None
        if not in_dir:
            mode = "blank-line" if blank else "line"
        elif not blank and data.count(b"\n") + 1 >= LINE_LAYOUT_MIN_LINES:
            mode = "line"
            stats["files_read_as_lines"] += 1
            log.info("%s has no blank line and %d lines: reading one document per line "
                     "(set data.doc_boundary to override)", path, data.count(b"\n") + 1)
        else:
            mode = "file"
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    yield from _units(_decode_text(path, data, bom, cfg.on_decode_error, stats), mode, stats)


def _decode_text(path: Path, data: bytes, bom: int, policy: str, stats: Counter) -> str:
    """The text of a whole file; invalid UTF-8 / NUL bytes raise, skip their line, or are replaced."""
    raw = data[bom:]
    problem = _first_problem(raw, 0)
    if problem is None:
        text = raw.decode("utf-8")
    else:
        offset, reason = problem
        where = f"{reason} at {_location(data, bom + offset)}"
        if policy == "auto" and b"\0" in raw:  # binary data or UTF-16 without a byte-order mark: not a stray byte
            nul = raw.find(b"\0")
            where, policy = f"NUL byte (binary data or a UTF-16 file?) at {_location(data, bom + nul)}", "error"
        if policy == "error":
            raise DataError(f"{path}: {where}. Fix the file, or set data.on_decode_error (--on-decode-error) "
                            "to 'skip' (drop the bad lines) or 'replace' (U+FFFD for bad bytes, drop NULs)")
        if policy in ("replace", "auto"):
            text = raw.decode("utf-8", errors="replace")
            replaced = text.count("\ufffd") - raw.count("\ufffd".encode())
            nuls = text.count("\0")
            text = text.replace("\0", "")
            stats["replaced_invalid_utf8"] += replaced
            stats["removed_nul_bytes"] += nuls
            stats["files_with_decode_errors"] += 1
            log.debug("%s: replaced %d invalid UTF-8 sequence(s) and removed %d NUL byte(s) (first: %s)",
                      path, replaced, nuls, where)
        else:
            lines = raw.split(b"\n")
            good = [line for line in lines if _first_problem(line, 0) is None]
            stats["skipped_lines_decode_error"] += len(lines) - len(good)
            log.warning("%s: skipped %d line(s) with invalid UTF-8 or NUL bytes (first: %s)",
                        path, len(lines) - len(good), where)
            text = b"\n".join(good).decode("utf-8")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _first_problem(data: bytes, start: int) -> tuple[int, str] | None:
    """(byte offset, reason) of the first invalid UTF-8 sequence or NUL byte, or None."""
    nul = data.find(b"\0", start)
    try:
        data[start:nul if nul >= 0 else None].decode("utf-8")
    except UnicodeDecodeError as exc:
        return start + exc.start, f"invalid UTF-8 ({exc.reason})"
    if nul >= 0:
        return nul, "NUL byte (binary data or a UTF-16 file?)"
    return None


def _units(text: str, mode: str, stats: Counter) -> Iterator[str]:
    if mode == "file":
        pieces: list[str] = [text]
    elif mode == "line":
        pieces = text.split("\n")
    else:
        pieces = _BLANK_LINE.split(text)
    for piece in pieces:
        piece = clean(piece)
        if piece:
            yield piece


def _read_json(path: Path, data: bytes, cfg: DataConfig, stats: Counter) -> Iterator[str]:
    bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    if Path(plain_name(path.name)).suffix.lower() == ".json" and data[bom:].lstrip()[:1] == b"[":  # one JSON array of records
        if cfg.on_decode_error == "skip" and _first_problem(data, bom) is not None:
            cfg = replace(cfg, on_decode_error="error")  # a JSON array has no lines to skip
        try:
            records = json.loads(_decode_text(path, data, bom, cfg.on_decode_error, stats))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: invalid JSON at column {exc.colno}: {exc.msg}") from exc
        if not isinstance(records, list):
            raise DataError(f"{path}: expected a JSON array of records or JSON lines")
        for i, rec in enumerate(records):
            text = _record_text(rec, cfg, f"{path}: record {i}", stats)
            if text is not None:
                yield text
        return
    offset = bom
    for lineno, line in enumerate(data[bom:].split(b"\n"), 1):
        start, offset = offset, offset + len(line) + 1
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        problem = _first_problem(line, 0)
        if problem is not None:
            if cfg.on_decode_error == "error" or (cfg.on_decode_error == "auto" and b"\0" in line):
                raise DataError(f"{where}: {problem[1]} at byte offset {start + problem[0]}; set "
                                "data.on_decode_error (--on-decode-error) to 'skip' or 'replace'")
            if cfg.on_decode_error == "skip":
                stats["skipped_lines_decode_error"] += 1
                continue
            stats["replaced_invalid_utf8"] += 1
            line = line.decode("utf-8", errors="replace").replace("\0", "").encode("utf-8")
        try:
            rec = json.loads(line.decode("utf-8"))
        except json.JSONDecodeError as exc:
            if cfg.on_decode_error != "skip":
                raise DataError(f"{where}: invalid JSON at column {exc.colno}: {exc.msg}; each line must be one "
                                "JSON object (or set data.on_decode_error = 'skip')") from exc
            stats["skipped_invalid_json"] += 1
            continue
        text = _record_text(rec, cfg, where, stats)
        if text is not None:
            yield text


def _record_text(rec: Any, cfg: DataConfig, where: str, stats: Counter) -> str | None:
    """The cleaned text of one JSON / dataset record, None when empty or skipped (counted)."""
    skip = cfg.on_decode_error == "skip"  # "replace" repairs bytes, not records: bad records still raise
    if isinstance(rec, str):
        value: Any = rec
    elif isinstance(rec, dict):
        if cfg.text_field not in rec:
            fields = ", ".join(map(str, rec)) or "none"
            if not skip:
                raise DataError(f"{where}: no field {cfg.text_field!r} (fields: {fields}); set data.text_field "
                                "(--text-field) to the field holding the text")
            stats["skipped_missing_field"] += 1
            return None
        value = rec[cfg.text_field]
    else:
        if not skip:
            raise DataError(f"{where}: expected a JSON object with a {cfg.text_field!r} field, got {type(rec).__name__}")
        stats["skipped_not_an_object"] += 1
        return None
    if not isinstance(value, str):
        if not skip:
            raise DataError(f"{where}: field {cfg.text_field!r} is {type(value).__name__} "
                            f"({json.dumps(value)[:40]}), expected a string")
        stats["skipped_non_string"] += 1
        return None
    if "\0" in value:
        if cfg.on_decode_error in ("error", "auto"):
            raise DataError(f"{where}: NUL character in field {cfg.text_field!r}; set data.on_decode_error "
                            "(--on-decode-error) to 'skip' or 'replace'")
        if skip:
            stats["skipped_records_decode_error"] += 1
            return None
        stats["removed_nul_bytes"] += value.count("\0")
        value = value.replace("\0", "")
    text = clean(value)
    if not text:
        stats["empty_documents"] += 1
        return None
    stats["documents_from_records"] += 1
    return text
