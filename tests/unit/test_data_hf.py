"""Hugging Face datasets as a corpus source (the hub itself is never contacted)."""

from __future__ import annotations

import itertools
from typing import Any

import datasets
import pytest

from zoo.data import DataConfig, parse_hf_spec, read_corpus
from zoo.errors import DataError


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("hf:wikitext", ("wikitext", None, "train")),
        ("hf:wikitext:wikitext-2-raw-v1", ("wikitext", "wikitext-2-raw-v1", "train")),
        ("hf:wikitext:wikitext-2-raw-v1@validation", ("wikitext", "wikitext-2-raw-v1", "validation")),
        ("hf:Salesforce/wikitext@test", ("Salesforce/wikitext", None, "test")),
        ("hf:allenai/c4:en@train[:1%]", ("allenai/c4", "en", "train[:1%]")),
    ],
)
def test_parse_hf_spec(spec: str, expected: tuple[str, str | None, str]) -> None:
    assert parse_hf_spec(spec) == expected


def test_bad_spec() -> None:
    with pytest.raises(DataError, match="expected hf:NAME"):
        parse_hf_spec("hf:")


def test_reaches_load_dataset_with_the_right_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []

    def fake_load_dataset(name: str, config: str | None = None, **kw: Any) -> datasets.Dataset:
        calls.append((name, config, kw))
        return datasets.Dataset.from_dict({"body": ["First doc.", "", "  Second doc.\r\n"], "label": [0, 1, 2]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    c = read_corpus(DataConfig(source="hf:org/name:cfg@validation", text_field="body"))
    assert calls == [("org/name", "cfg", {"split": "validation", "streaming": False})]
    assert c.documents == ["First doc.", "Second doc."] and c.stats["empty_documents"] == 1
    with pytest.raises(DataError, match=r"has no column 'text' \(columns: body, label\).*--text-field"):
        read_corpus(DataConfig(source="hf:org/name"))


def test_streaming_stops_at_max_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    def endless(name: str, config: str | None = None, **kw: Any) -> Any:
        assert kw["streaming"] is True
        return ({"text": f"document {i}"} for i in itertools.count())  # no column_names, never ends

    monkeypatch.setattr(datasets, "load_dataset", endless)
    c = read_corpus(DataConfig(source="hf:big", streaming=True, max_documents=3))
    assert c.documents == ["document 0", "document 1", "document 2"]


def test_offline_hub_gives_a_clear_error() -> None:
    # HF_DATASETS_OFFLINE=1 (tests/conftest.py): the real load_dataset refuses to reach the hub
    with pytest.raises(DataError, match=r"cannot load Hugging Face dataset 'zoo-no-such-dataset-xyz'.*cannot reach "
                                        r"the Hugging Face hub and it is not in the local cache"):
        read_corpus(DataConfig(source="hf:zoo-no-such-dataset-xyz:cfg@train"))


def test_other_load_errors_keep_their_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*a: Any, **kw: Any) -> Any:
        raise ValueError("BuilderConfig 'nope' not found. Available: ['a', 'b']")

    monkeypatch.setattr(datasets, "load_dataset", broken)
    with pytest.raises(DataError, match=r"cannot load .*ValueError: BuilderConfig 'nope' not found"):
        read_corpus(DataConfig(source="hf:x:nope"))
