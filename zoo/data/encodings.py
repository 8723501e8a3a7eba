"""Corpus files that are not plain UTF-8 text: compressed files (gzip, bzip2, xz, zstandard, as
``datasets`` reads them) are decompressed, recognised by their magic bytes; UTF-16 and UTF-32 files
with a byte-order mark are decoded (and counted in the corpus statistics)."""

from __future__ import annotations

import bz2
import codecs
import gzip
import importlib
import logging
import lzma
import zlib
from collections import Counter
from pathlib import Path

from zoo.errors import DataError

log = logging.getLogger(__name__)

COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")
_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstandard"}
# Longest marks first: the UTF-32 LE mark begins with the UTF-16 LE one.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def plain_name(name: str) -> str:
    """``a.txt.gz`` -> ``a.txt``: the name a compressed file's content would have."""
    lower = name.lower()
    return next((name[: -len(s)] for s in COMPRESSED_SUFFIXES if lower.endswith(s)), name)


def _zstd_decompress(path: Path, data: bytes) -> bytes:
    for module in ("compression.zstd", "zstandard"):  # the standard library from Python 3.14, or the package
        try:
            zstd = importlib.import_module(module)
        except ImportError:
            continue
        if module == "zstandard":
            return zstd.ZstdDecompressor().stream_reader(data).read()
        return zstd.decompress(data)
    raise DataError(f"{path} is zstandard-compressed, and no zstandard decompressor is installed: "
                    "pip install zstandard (or decompress it: zstd -d)")


def decompress(path: Path, data: bytes) -> bytes:
    """``data`` decompressed when its magic bytes say it is compressed; a damaged archive is an error
    naming the file."""
    kind = next((k for magic, k in _MAGIC.items() if data.startswith(magic)), None)
    if kind == "bzip2" and not (data[3:4].isdigit() and data[4:10] in (b"1AY&SY", b"\x17rE8P\x90")):
        kind = None  # text that happens to begin with "BZh"
    if kind is None:
        return data
    try:
        if kind == "gzip":
            out = gzip.decompress(data)
        elif kind == "bzip2":
            out = bz2.decompress(data)
        elif kind == "xz":
            out = lzma.decompress(data)
        else:
            out = _zstd_decompress(path, data)
    except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error) as exc:
        raise DataError(f"{path}: damaged {kind} file ({exc})") from exc
    log.debug("%s: %s-compressed, %d -> %d bytes", path, kind, len(data), len(out))
    return out


def from_unicode_bom(path: Path, data: bytes, stats: Counter) -> bytes:
    """UTF-16 / UTF-32 text with a byte-order mark as UTF-8 bytes (without the mark); other data as is."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data[len(bom):].decode(encoding)
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}: starts with a {encoding.upper()[:6]} byte-order mark but is not valid "
                                f"{encoding.upper()} ({exc.reason} at byte offset {len(bom) + exc.start}); convert "
                                "it to UTF-8") from exc
            stats[f"files_{encoding.replace('-', '_')}"] += 1
            log.info("%s: decoded as %s (byte-order mark)", path, encoding.upper())
            return text.encode("utf-8")
    return data
