"""Rule-based sentence splitter."""

from __future__ import annotations

import pytest

from zoo.data.sentences import chunk_text, sentence_boundaries, split_sentences


def strip(sents: list[str]) -> list[str]:
    return [s.strip() for s in sents]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mr. Smith went to Washington. He said hi.", ["Mr. Smith went to Washington.", "He said hi."]),
        ("It costs 3.14 dollars. That is cheap.", ["It costs 3.14 dollars.", "That is cheap."]),
        ("Bring fruit, e.g. apples. Or pears, i.e. Williams ones.",
         ["Bring fruit, e.g. apples.", "Or pears, i.e. Williams ones."]),
        ("Dr. Watson and Prof. Moriarty met. Then J. R. R. Tolkien wrote.",
         ["Dr. Watson and Prof. Moriarty met.", "Then J. R. R. Tolkien wrote."]),
        ("The U.S. Army is big. Really?! Yes... Then it ended.",
         ["The U.S. Army is big.", "Really?!", "Yes...", "Then it ended."]),
        ('He said "Stop." She left. (It was late.) Next.', ['He said "Stop."', "She left.", "(It was late.)", "Next."]),
        ("lower case. continues here", ["lower case. continues here"]),
        ("one per line .\nsecond line , lower case .\nthird", ["one per line .", "second line , lower case .", "third"]),
        ("CHAPTER I\n\nIt was a dark night.", ["CHAPTER I", "It was a dark night."]),
        ("wrapped line\ncontinues here. Next one.", ["wrapped line\ncontinues here.", "Next one."]),
    ],
)
def test_english(text: str, expected: list[str]) -> None:
    assert strip(split_sentences(text)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("你好。我很好！真的吗？然后呢", ["你好。", "我很好！", "真的吗？", "然后呢"]),
        ("他说：“好的。”然后走了。", ["他说：“好的。”", "然后走了。"]),
        ("（完。）下一句！？再见", ["（完。）", "下一句！？", "再见"]),
        ("他说「走吧。」我们走了", ["他说「走吧。」", "我们走了"]),
        ("Wait!你好", ["Wait!", "你好"]),
        ("版本3.14发布了。", ["版本3.14发布了。"]),
    ],
)
def test_chinese(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_partition_and_whitespace_goes_to_next_sentence() -> None:
    text = "First one.  Second one!\n\n  Third?   Fourth.\n"
    sents = split_sentences(text)
    assert "".join(sents) == text
    assert sents[1].startswith("  Second")
    assert all(not s.isspace() for s in sents)
    assert sentence_boundaries("") == [] and split_sentences("") == []


def test_long_sentences_are_capped_at_whitespace_or_hard() -> None:
    words = "word " * 3000  # 15000 chars, no full stop
    sents = split_sentences(words, max_chars=1000)
    assert "".join(sents) == words
    assert all(len(s) <= 1000 for s in sents) and len(sents) >= 15
    assert all(s.startswith(" ") or s == sents[0] for s in sents)  # cut before a space
    blob = "x" * 2500
    assert [len(s) for s in split_sentences(blob, max_chars=1000)] == [1000, 1000, 500]
    assert "".join(chunk_text(words, 1000)) == words and all(len(c) <= 1000 for c in chunk_text(words, 1000))
