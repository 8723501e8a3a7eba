"""Every registered zero-shot suite and scorer passes ``check_suite`` / ``check_scorer``, parametrized
from the registry like the objectives, so a new one is checked the moment it registers; and the checks
fail a plugin that breaks the contract."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tests.unit.test_minimal_pairs_data import write_climp
from zoo import registry
from zoo.benchmarks.minimal_pairs import BLIMP, MinimalPair, Paradigm
from zoo.errors import DataError
from zoo.testing import ConformanceError, check_scorer, check_suite


def _data_dir(suite: str, tmp_path: Path, shared: Path) -> Path | None:
    """Where a suite's files are in this checkout: BLiMP in ../shared/data, CLiMP written here (its archive
    is not in the shared data); a third-party suite reads what it bundles (None)."""
    if suite == "blimp":
        if not (shared / "blimp").is_dir():
            pytest.skip(f"BLiMP files not found at {shared / 'blimp'}")
        return shared / "blimp"
    if suite == "climp":
        write_climp(tmp_path / "anaphor_agreement_gender_1000.csv")
        return tmp_path
    return None


@pytest.mark.parametrize("suite", registry.names("suite"))
def test_registered_suite_conforms(suite: str, tmp_path: Path) -> None:
    from tests.conftest import SHARED_DATA

    paradigms = check_suite(suite, _data_dir(suite, tmp_path, SHARED_DATA))
    assert paradigms and all(p.pairs for p in paradigms)


def _one_file_suite(tmp_path: Path, reader) -> tuple[object, Path]:
    (tmp_path / "p.txt").write_text("x\n")
    return dataclasses.replace(BLIMP, name="toy", pattern="*.txt", read_file=reader, default=None), tmp_path


def test_check_suite_fails_a_reader_that_raises_a_bare_error(tmp_path: Path) -> None:
    def reader(path: Path) -> Paradigm:
        text = path.read_text(encoding="utf-8")  # a malformed file: UnicodeDecodeError, not a DataError
        return Paradigm("p", "ph", str(path), [MinimalPair(text.strip() + " a", text.strip() + " b", "0")])

    suite, folder = _one_file_suite(tmp_path, reader)
    with pytest.raises(ConformanceError, match="malformed file raised UnicodeDecodeError"):
        check_suite(suite, folder)


def test_check_suite_fails_empty_sentences_and_unnamed_errors(tmp_path: Path) -> None:
    def empty(path: Path) -> Paradigm:
        if "broken" in path.name:
            raise DataError(f"{path}:1: broken")
        return Paradigm("p", "ph", str(path), [MinimalPair("A cat.", " ", "0")])

    suite, folder = _one_file_suite(tmp_path, empty)
    with pytest.raises(ConformanceError, match="pair 0 needs two non-empty sentences"):
        check_suite(suite, folder)

    def unnamed(path: Path) -> Paradigm:
        if "broken" in path.name:
            raise DataError("bad line")  # does not say which file
        return Paradigm("p", "ph", str(path), [MinimalPair("A cat.", "A cats.", "0")])

    suite, folder = _one_file_suite(tmp_path, unnamed)
    with pytest.raises(ConformanceError, match="must name it"):
        check_suite(suite, folder)


def test_a_suite_registered_under_another_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "load", lambda kind, name: BLIMP)
    with pytest.raises(ConformanceError, match="registered as 'blimp2' but named 'blimp'"):
        check_suite("blimp2")


@pytest.mark.parametrize("scorer", registry.names("scorer"))
def test_registered_scorer_conforms(scorer: str) -> None:
    (scores,) = check_scorer(scorer).values()
    assert scores.shape == (6,)


def test_check_scorer_fails_a_reading_that_depends_on_its_batch() -> None:
    from zoo.benchmarks.lm_scoring import CAUSAL

    def batch_mean(x):  # every sentence gets the batch's mean length: depends on its companions
        lengths = np.asarray([len(i) for i in x.enc.ids], dtype=float)
        return np.full(len(lengths), lengths.mean()), np.zeros(len(lengths), dtype=int)

    with pytest.raises(ConformanceError, match="depends on the sentences batched with it"):
        check_scorer(dataclasses.replace(CAUSAL, name="toy", compute=batch_mean))
    with pytest.raises(ConformanceError, match="token counts must lie in 0..tokens"):
        check_scorer(dataclasses.replace(CAUSAL, name="toy", compute=lambda x: (np.zeros(len(x.enc.ids)),
                                                                              np.full(len(x.enc.ids), 99))))
