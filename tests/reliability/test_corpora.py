"""Corpora that are not plain UTF-8 files: compressed files are read transparently, UTF-16/32 files with
a byte-order mark are decoded, and a directory walk follows linked folders, reads each file once and
names what it skipped."""

from __future__ import annotations

import bz2
import gzip
import importlib.util
import lzma
import os
from pathlib import Path

import pytest

from zoo.data import DataConfig
from zoo.data.corpus import read_corpus
from zoo.errors import DataError

from .conftest import assert_user_error, invoke, train_args

TEXT = "The first document.\nIt has two lines.\n\nThe second document, café and 東京.\n"
DOCS = ["The first document.\nIt has two lines.", "The second document, café and 東京."]
JSONL = '{"text": "one record"}\n{"text": "two records, ü"}\n'
HAS_ZSTD = any(importlib.util.find_spec(m) is not None for m in ("zstandard", "compression"))


def _read(path: Path, **kw: object) -> list[str]:
    return read_corpus(DataConfig(source=str(path), **kw)).documents


@pytest.mark.parametrize(("suffix", "compress"), [(".gz", gzip.compress), (".bz2", bz2.compress),
                                                  (".xz", lzma.compress)])
def test_compressed_files_are_read_transparently(tmp_path: Path, suffix: str, compress) -> None:
    (tmp_path / f"docs.txt{suffix}").write_bytes(compress(TEXT.encode()))
    assert _read(tmp_path / f"docs.txt{suffix}") == DOCS
    (tmp_path / f"recs.jsonl{suffix}").write_bytes(compress(JSONL.encode()))
    assert _read(tmp_path / f"recs.jsonl{suffix}") == ["one record", "two records, ü"]
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / f"a.txt{suffix}").write_bytes(compress(b"alpha\n"))
    (folder / "b.txt").write_text("beta\n")
    assert _read(folder) == ["alpha", "beta"]  # *.txt matches a.txt.gz


def test_damaged_archive_and_zstandard(tmp_path: Path) -> None:
    bad = tmp_path / "cut.txt.gz"
    bad.write_bytes(gzip.compress(TEXT.encode() * 50)[:40])
    with pytest.raises(DataError, match=rf"{bad}: damaged gzip file"):
        _read(bad)
    zst = tmp_path / "docs.txt.zst"
    frame = b"\x28\xb5\x2f\xfd\x20\x05\x29\x00\x00alpha"  # a one-block raw zstd frame holding "alpha"
    zst.write_bytes(frame)
    if HAS_ZSTD:
        assert _read(zst) == ["alpha"]
    else:
        with pytest.raises(DataError, match=rf"{zst} is zstandard-compressed, and no zstandard decompressor is "
                                            r"installed: pip install zstandard"):
            _read(zst)


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_with_a_byte_order_mark_are_decoded(tmp_path: Path, encoding: str) -> None:
    p = tmp_path / "docs.txt"
    p.write_bytes(("\ufeff" + TEXT).encode(encoding))
    corpus = read_corpus(DataConfig(source=str(p)))
    assert corpus.documents == DOCS
    assert corpus.stats[f"files_{encoding.replace('-', '_')}"] == 1
    p.write_bytes(("\ufeff" + TEXT).encode(encoding)[:-1])  # a byte short
    with pytest.raises(DataError, match=rf"{p}: starts with a UTF-\d\d byte-order mark but is not valid "
                                        rf"{encoding.upper()} .*convert it to UTF-8"):
        _read(p)


def test_linked_folders_are_followed_loops_and_duplicates_skipped_and_named(tmp_path: Path,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    books, elsewhere = tmp_path / "books", tmp_path / "elsewhere"
    (books / "own").mkdir(parents=True)
    elsewhere.mkdir()
    (books / "own" / "a.txt").write_text("alpha\n")
    (elsewhere / "b.txt").write_text("beta\n")
    os.symlink(elsewhere, books / "linked")  # a linked folder: read (it used to be dropped silently)
    os.symlink(books, books / "own" / "loop")  # a loop back to the top
    os.symlink(books / "own" / "a.txt", books / "again.txt")  # the same file twice
    corpus = read_corpus(DataConfig(source=str(books)))
    assert corpus.documents == ["alpha", "beta"]
    assert corpus.stats["linked_folders_skipped"] == 1 and corpus.stats["linked_files_skipped"] == 1
    text = " ".join(caplog.text.split())
    assert f"skipping {books / 'own' / 'loop'}: it links to {books}, which is already read" in text
    assert "(read once)" in text


def test_a_gzip_utf16_corpus_trains_through_the_cli(tmp_path: Path, corpus: Path) -> None:
    data = tmp_path / "docs.txt.gz"
    data.write_bytes(gzip.compress(corpus.read_text().encode("utf-16")))
    out = tmp_path / "run"
    code, text = invoke(train_args(out, data, "mlm", "bert", 1, 1))
    assert code == 0, text
    import json
    stats = json.loads((out / "run.json").read_text())["data"]
    assert stats["files_utf_16_le"] == 1 and stats["documents"] > 30
    bad = tmp_path / "odd.txt"
    bad.write_bytes("abc".encode("utf-16")[:-1])
    code, text = invoke(train_args(tmp_path / "run2", bad))
    assert_user_error(code, text, f"{bad}: starts with a UTF-16 byte-order mark but is not valid UTF-16-LE")


def test_a_few_long_books_are_cut_into_pieces_for_pair_objectives(tmp_path: Path, cache_dir: Path) -> None:
    """mlm+nsp on a folder of a few books: one held-out book could not give "random next sentences"."""
    import json
    import random

    rnd = random.Random(0)
    words = [f"w{i}" for i in range(300)]
    books = tmp_path / "books"
    books.mkdir()
    for b in range(3):
        paragraphs = [" ".join(" ".join(rnd.choices(words, k=9)).capitalize() + "." for _ in range(5))
                      for _ in range(600)]
        (books / f"book{b}.txt").write_text("\n\n".join(paragraphs))  # ~150,000 characters each
    out = tmp_path / "run"
    code, text = invoke(train_args(out, books, "mlm+nsp", "bert", 1, 1, "--set", "train.eval_batches=4"))
    assert code == 0, text
    # 3 books of ~386,000 characters: 100 pieces give 2 validation documents at the default 2%
    assert "cut 3 of them at paragraph boundaries into pieces of about 3859 characters (99 documents now)" in \
        " ".join(text.split())
    stats = json.loads((out / "run.json").read_text())["data"]
    assert stats["long_documents_cut_into_pieces"] == 3 and stats["valid_documents"] >= 2
    assert stats["documents"] == stats["train_documents"] + stats["valid_documents"] > 15
