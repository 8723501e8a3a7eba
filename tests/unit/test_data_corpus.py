"""Corpus readers: layouts, document boundaries, and every kind of bad input."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path

import pytest

from zoo.data import DataConfig, read_corpus
from zoo.data import corpus as corpus_mod
from zoo.errors import DataError


def read(source: Path | str | None, **kw: object) -> list[str]:
    return read_corpus(DataConfig(source=None if source is None else str(source), **kw)).documents


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


# --- layouts ----------------------------------------------------------------------------------
def test_embedded_default_is_pydoc_topics() -> None:
    from pydoc_data.topics import topics

    c = read_corpus(DataConfig())
    assert len(c.documents) == len([t for t in topics.values() if t.strip()])
    assert c.documents[0] == topics[sorted(topics)[0]].strip()
    assert read(None, max_documents=5) == c.documents[:5]


def test_single_file_boundaries(tmp_path: Path) -> None:
    paras = write(tmp_path / "p.txt", "First para\nstill first.\n\n\nSecond para.\n  \nThird.\n")
    assert read(paras) == ["First para\nstill first.", "Second para.", "Third."]  # auto: blank lines
    lines = write(tmp_path / "l.txt", "doc one\ndoc two\n\ndoc three")
    assert read(lines, doc_boundary="line") == ["doc one", "doc two", "doc three"]
    assert read(lines, doc_boundary="file") == ["doc one\ndoc two\n\ndoc three"]
    no_blank = write(tmp_path / "n.txt", "一号文档。\n二号文档。\n")
    assert read(no_blank) == ["一号文档。", "二号文档。"]  # auto without blank lines: one per line


def test_directory_recursive_sorted_one_document_per_file(tmp_path: Path) -> None:
    write(tmp_path / "b" / "two.txt", "Second file.\n\nSame document.")
    write(tmp_path / "a.txt", "First file.")
    write(tmp_path / "c" / "d" / "three.jsonl", '{"text": "json one"}\n\n{"text": "json two"}\n')
    write(tmp_path / "notes.md", "not included")
    write(tmp_path / ".hidden" / "x.txt", "hidden")
    c = read_corpus(DataConfig(source=str(tmp_path)))
    assert c.documents == ["First file.", "Second file.\n\nSame document.", "json one", "json two"]
    assert c.stats["files_not_matching_include"] == 1 and c.stats["hidden_files_ignored"] == 1
    assert read(tmp_path, include=["b/*.txt"]) == ["Second file.\n\nSame document."]
    assert read(tmp_path, include=["*.txt"], doc_boundary="blank-line") == ["First file.", "Second file.",
                                                                            "Same document."]


def test_directory_line_layout_files_are_detected(tmp_path: Path) -> None:
    write(tmp_path / "corpus.txt", "".join(f"document {i}\n" for i in range(corpus_mod.LINE_LAYOUT_MIN_LINES)))
    write(tmp_path / "review.txt", "short review\nsecond line of it\n")
    c = read_corpus(DataConfig(source=str(tmp_path)))
    assert len(c.documents) == corpus_mod.LINE_LAYOUT_MIN_LINES + 1
    assert c.documents[-1] == "short review\nsecond line of it"
    assert c.stats["files_read_as_lines"] == 1


def test_json_lines_and_json_arrays(tmp_path: Path) -> None:
    write(tmp_path / "a.jsonl", '{"body": "alpha", "id": 1}\n{"body": "  beta \\r\\n"}\n')
    assert read(tmp_path / "a.jsonl", text_field="body") == ["alpha", "beta"]
    write(tmp_path / "b.json", json.dumps([{"text": "one"}, "two", {"text": ""}]))
    c = read_corpus(DataConfig(source=str(tmp_path / "b.json")))
    assert c.documents == ["one", "two"] and c.stats["empty_documents"] == 1
    write(tmp_path / "tnews.json", '{"sentence": "新闻一", "label": "101"}\n{"sentence": "新闻二", "label": "102"}\n')
    assert read(tmp_path / "tnews.json", text_field="sentence") == ["新闻一", "新闻二"]


def test_bom_and_crlf_are_normalised(tmp_path: Path) -> None:
    p = write(tmp_path / "x.txt", b"\xef\xbb\xbfFirst line\r\nsame doc\r\n\r\nSecond\rdoc\r\n")
    assert read(p) == ["First line\nsame doc", "Second\ndoc"]
    j = write(tmp_path / "x.jsonl", b'\xef\xbb\xbf{"text": "a\\r\\nb"}\r\n{"text": "c"}\r\n')
    assert read(j) == ["a\nb", "c"]


def test_max_documents(tmp_path: Path) -> None:
    p = write(tmp_path / "x.txt", "".join(f"d{i}\n" for i in range(50)))
    assert read(p, max_documents=7) == [f"d{i}" for i in range(7)]


# --- bad input ----------------------------------------------------------------------------------
def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="corpus path not found: .*nope"):
        read(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no files matching \*\.txt, \*\.jsonl, \*\.json under .*empty \(it is empty\)"):
        read(tmp_path / "empty")
    write(tmp_path / "other" / "data.csv", "a,b")
    with pytest.raises(DataError, match=r"1 other file\(s\), e\.g\. data\.csv.*data\.include"):
        read(tmp_path / "other")


def test_empty_and_whitespace_only(tmp_path: Path) -> None:
    write(tmp_path / "d" / "empty.txt", b"")
    write(tmp_path / "d" / "blank.txt", " \n\t\r\n \n")
    with pytest.raises(DataError, match=r"no documents in .*d \(.*empty_files: 2.*files: 2"):
        read(tmp_path / "d")
    write(tmp_path / "d" / "good.txt", "content")
    c = read_corpus(DataConfig(source=str(tmp_path / "d")))
    assert c.documents == ["content"] and c.stats["empty_files"] == 2


def test_invalid_utf8_error_names_file_and_offset(tmp_path: Path) -> None:
    data = b"good line\nbad \xff byte here\nanother good line\n"
    p = write(tmp_path / "bad.txt", data)
    with pytest.raises(DataError, match=r"bad\.txt: invalid UTF-8 .* at byte offset 14 \(line 2\).*on_decode_error"):
        read(p, on_decode_error="error")
    assert read(p) == ["good line", "bad \ufffd byte here", "another good line"]  # the default: replaced, counted
    c = read_corpus(DataConfig(source=str(p), on_decode_error="skip"))
    assert c.documents == ["good line", "another good line"]
    assert c.stats["skipped_lines_decode_error"] == 1
    c = read_corpus(DataConfig(source=str(p), on_decode_error="replace"))
    assert c.documents == ["good line", "bad \ufffd byte here", "another good line"]
    assert c.stats["replaced_invalid_utf8"] == 1
    # with a BOM the offset still counts from the start of the file
    p2 = write(tmp_path / "bom.txt", b"\xef\xbb\xbfab\xc3(")
    with pytest.raises(DataError, match=r"byte offset 5 \(line 1\)"):
        read(p2, on_decode_error="error")


def test_invalid_utf8_in_file_mode_skips_lines_not_the_whole_document(tmp_path: Path) -> None:
    write(tmp_path / "d" / "a.txt", b"keep this\nbut not \xc3\x28 this\nkeep that\n")
    write(tmp_path / "d" / "b.txt", b"fine")
    c = read_corpus(DataConfig(source=str(tmp_path / "d"), on_decode_error="skip"))
    assert c.documents == ["keep this\nkeep that", "fine"] and c.stats["skipped_lines_decode_error"] == 1


def test_nul_bytes_are_corrupt_input(tmp_path: Path) -> None:
    p = write(tmp_path / "nul.txt", b"line one\nline\x00two\n")
    with pytest.raises(DataError, match=r"nul\.txt: NUL byte .* at byte offset 13 \(line 2\)"):
        read(p)
    c = read_corpus(DataConfig(source=str(p), on_decode_error="skip"))
    assert c.documents == ["line one"] and c.stats["skipped_lines_decode_error"] == 1
    c = read_corpus(DataConfig(source=str(p), on_decode_error="replace"))
    assert c.documents == ["line one", "linetwo"] and c.stats["removed_nul_bytes"] == 1
    j = write(tmp_path / "nul.jsonl", b'{"text": "a\\u0000b"}\n')
    with pytest.raises(DataError, match=r"nul\.jsonl:1: NUL character"):
        read(j)


def test_json_lines_errors_name_file_and_line(tmp_path: Path) -> None:
    p = write(tmp_path / "x.jsonl", '{"text": "ok"}\n{"text": "ok2"\n{"text": 3}\n{"other": "x"}\n')
    with pytest.raises(DataError, match=r"x\.jsonl:2: invalid JSON at column 15"):
        read(p)
    write(p, '{"text": "ok"}\n{"text": 3}\n')
    with pytest.raises(DataError, match=r"x\.jsonl:2: field 'text' is int \(3\), expected a string"):
        read(p)
    write(p, '{"text": "ok"}\n{"other": "x"}\n')
    with pytest.raises(DataError, match=r"x\.jsonl:2: no field 'text' \(fields: other\).*--text-field"):
        read(p)
    write(p, '["not", "an object"]\n')
    with pytest.raises(DataError, match=r"x\.jsonl:1: expected a JSON object"):
        read(p)
    write(p, '{"text": "ok"}\n{"text": "ok2"\n{"text": null}\n{"other": "x"}\n{"text": "last"}\n')
    c = read_corpus(DataConfig(source=str(p), on_decode_error="skip"))
    assert c.documents == ["ok", "last"]
    assert (c.stats["skipped_invalid_json"], c.stats["skipped_non_string"], c.stats["skipped_missing_field"]) == (1, 1, 1)
    write(p, b'{"text": "bad \xff"}\n')
    with pytest.raises(DataError, match=r"x\.jsonl:1: invalid UTF-8 .* at byte offset 14"):
        read(p, on_decode_error="error")
    arr = write(tmp_path / "a.json", '[{"text": "x"},\n {"text": ]')
    with pytest.raises(DataError, match=r"a\.json:2: invalid JSON"):
        read(arr)


def test_unknown_text_field(tmp_path: Path) -> None:
    p = write(tmp_path / "x.jsonl", '{"content": "a"}\n{"content": "b"}\n')
    with pytest.raises(DataError, match=r"x\.jsonl:1: no field 'body' \(fields: content\)"):
        read(p, text_field="body")
    with pytest.raises(DataError, match=r"no record has the field 'body'.*--text-field"):
        read(p, text_field="body", on_decode_error="skip")


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write(tmp_path / "secret.txt", "text")
    if os.geteuid() != 0:
        p.chmod(0)
        try:
            with pytest.raises(DataError, match=r"cannot read .*secret\.txt: permission denied"):
                read(p)
        finally:
            p.chmod(0o644)
    # root reads anything: simulate the operating system's refusal at the open() boundary
    real_open = open

    def refusing_open(file: object, *args: object, **kw: object) -> object:
        if str(file) == str(p):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kw)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", refusing_open)
    with pytest.raises(DataError, match=r"cannot read .*secret\.txt: permission denied"):
        read(p)


def test_ten_megabyte_single_line(tmp_path: Path) -> None:
    line = ("lorem ipsum dolor sit amet " * 400_000)[:10_000_000]
    p = write(tmp_path / "big.txt", line + "\n")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    docs = read(p)
    assert len(docs) == 1 and len(docs[0]) == len(line.strip())
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 400, f"reading a 10 MB line grew the process by {grown_mb:.0f} MB"
