"""Readers of the official BLiMP (jsonl) and CLiMP (CSV) layouts, and their one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zoo.benchmarks.minimal_pairs import load_suite, phenomena, read_blimp_file, read_climp_file
from zoo.errors import DataError

CLIMP_ROWS = [
    ("anaphor_agreement", "anaphor_agreement_gender", "王强批评了他自己。", "1"),
    ("anaphor_agreement", "anaphor_agreement_gender", "王强批评了她自己。", "0"),
    ("anaphor_agreement", "anaphor_agreement_gender", "李红喜欢她自己。", "0"),  # bad row first
    ("anaphor_agreement", "anaphor_agreement_gender", "李红喜欢她。", "1"),
]


def write_climp(path: Path, rows: list[tuple[str, ...]] = CLIMP_ROWS, bom: bool = False,
                final_newline: bool = False) -> Path:
    """The official layout: header ',0,1,2,3', then index, phenomenon, paradigm, sentence, label."""
    lines = [",0,1,2,3"] + [f"{i},{','.join(r)}" for i, r in enumerate(rows)]
    text = "\n".join(lines) + ("\n" if final_newline else "")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def write_blimp(path: Path, uid: str, pairs: list[tuple[str, str]], term: str = "island_effects") -> Path:
    rows = [{"sentence_good": g, "sentence_bad": b, "field": "syntax", "linguistics_term": term, "UID": uid,
             "simple_LM_method": True, "pairID": str(i)} for i, (g, b) in enumerate(pairs)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("bom", [False, True])
def test_climp_official_layout_with_and_without_bom(tmp_path: Path, bom: bool) -> None:
    p = read_climp_file(write_climp(tmp_path / "anaphor_agreement_gender_1000.csv", bom=bom))
    assert p.name == "anaphor_agreement_gender" and p.phenomenon == "anaphor_agreement"
    assert [(x.good, x.bad) for x in p.pairs] == [("王强批评了他自己。", "王强批评了她自己。"),
                                                 ("李红喜欢她。", "李红喜欢她自己。")]
    assert [x.pair_id for x in p.pairs] == ["0", "1"]


def write_climp_bare(path: Path, pairs: list[tuple[str, str]], bom: bool = False) -> Path:
    """The archive's headerless layout: bare sentences, two lines a pair, the acceptable one first."""
    text = "".join(f"{g}\n{b}\n" for g, b in pairs)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


BARE = [("他把书放在桌子上了。", "他把书放在了。"), ("我把饭吃完了。", "我把吃完了饭。")]


@pytest.mark.parametrize("bom", [False, True])
def test_climp_headerless_layout_is_sniffed(tmp_path: Path, bom: bool) -> None:
    p = read_climp_file(write_climp_bare(tmp_path / "ba_construction_1000.csv", BARE, bom=bom))
    assert p.name == "ba_construction" and p.phenomenon == "ba_construction"
    assert [(x.good, x.bad) for x in p.pairs] == BARE and [x.pair_id for x in p.pairs] == ["0", "1"]
    # the layout comes from the content, not the name; the phenomenon from the name's CLiMP prefix
    q = read_climp_file(write_climp_bare(tmp_path / "verb_complement_direction_1000.csv", BARE))
    assert q.name == "verb_complement_direction" and q.phenomenon == "verb_complement"
    write_climp(tmp_path / "ba_construction_1000.csv")  # the same name in the headed layout reads as that
    assert read_climp_file(tmp_path / "ba_construction_1000.csv").name == "anaphor_agreement_gender"


def test_climp_directory_with_both_layouts(tmp_path: Path) -> None:
    write_climp(tmp_path / "anaphor_agreement_gender_1000.csv", bom=True)
    write_climp_bare(tmp_path / "ba_construction_1000.csv", BARE)
    paradigms = load_suite("climp", tmp_path)
    assert [p.name for p in paradigms] == ["anaphor_agreement_gender", "ba_construction"]
    assert phenomena(paradigms) == {"anaphor_agreement": ["anaphor_agreement_gender"],
                                    "ba_construction": ["ba_construction"]}


def test_climp_headerless_bad_files(tmp_path: Path) -> None:
    odd = write_climp_bare(tmp_path / "odd_1000.csv", BARE)
    odd.write_text(odd.read_text(encoding="utf-8") + "多一句。\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"odd_1000\.csv:5: odd number of sentence lines \(5\) in a file without"):
        read_climp_file(odd)
    headless = tmp_path / "headless_1000.csv"  # the headed layout with its header lost is not bare sentences
    headless.write_text("\n".join(f"{i},{','.join(r)}" for i, r in enumerate(CLIMP_ROWS)) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"headless_1000\.csv:1: expected the CLiMP header"):
        read_climp_file(headless)


def test_climp_bad_files_name_file_and_line(tmp_path: Path) -> None:
    odd = write_climp(tmp_path / "odd_1000.csv", CLIMP_ROWS[:3])
    with pytest.raises(DataError, match=r"odd_1000\.csv:4: odd number of sentence rows \(3\)"):
        read_climp_file(odd)
    two_good = write_climp(tmp_path / "two_1000.csv", [CLIMP_ROWS[0], CLIMP_ROWS[3]])
    with pytest.raises(DataError, match=r"two_1000\.csv:2-3: a pair needs one acceptable .* labels 1 and 1"):
        read_climp_file(two_good)
    bad_label = write_climp(tmp_path / "label_1000.csv", [CLIMP_ROWS[0], (*CLIMP_ROWS[1][:3], "yes")])
    with pytest.raises(DataError, match=r"label_1000\.csv:3: label must be 1 .* got 'yes'"):
        read_climp_file(bad_label)
    header = tmp_path / "header_1000.csv"
    header.write_text("a,b,c\n0,x,y,z,1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"header_1000\.csv:1: expected the CLiMP header"):
        read_climp_file(header)


def test_blimp_reader_and_real_files(shared_data: Path) -> None:
    paradigms = load_suite("blimp", shared_data / "blimp", max_pairs=3)
    assert len(paradigms) == 67 and all(len(p.pairs) == 3 for p in paradigms)
    groups = phenomena(paradigms)
    assert len(groups) == 12 and len(groups["argument_structure"]) == 9  # s-selection counted there, as the paper
    adjunct = next(p for p in paradigms if p.name == "adjunct_island")
    assert adjunct.pairs[0].good == "Who should Derek hug after shocking Richard?"
    assert [x.pair_id for x in adjunct.pairs] == ["0", "1", "2"]  # the first N in file order


def test_blimp_bad_files_name_file_and_line(tmp_path: Path) -> None:
    f = write_blimp(tmp_path / "wh_island.jsonl", "wh_island", [("Good one.", "Bad one.")] * 2, term="island_effects")
    lines = f.read_text().splitlines()
    row = json.loads(lines[1])
    del row["sentence_good"]
    f.write_text(lines[0] + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"wh_island\.jsonl:2: missing field\(s\) sentence_good"):
        read_blimp_file(f)
    f.write_text(lines[0] + "\n{not json\n")
    with pytest.raises(DataError, match=r"wh_island\.jsonl:2: not valid JSON"):
        read_blimp_file(f)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty: no BLIMP files \(\*\.jsonl\)"):
        load_suite("blimp", empty)
    with pytest.raises(DataError, match=r"no CLIMP files \(\*\.csv\)"):
        load_suite("climp", empty)


def test_climp_directory_and_no_hub(tmp_path: Path) -> None:
    write_climp(tmp_path / "anaphor_agreement_gender_1000.csv", final_newline=True)
    (p,) = load_suite("climp", tmp_path, max_pairs=1)
    assert len(p.pairs) == 1 and len(p.fingerprint()) == 64
    with pytest.raises(DataError, match="CLIMP: no copy on the Hugging Face hub"):
        load_suite("climp", None)


def test_blimp_from_the_hub_offline_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub path is real; offline without a cached copy it fails naming the dataset and --data-dir."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match=r"cannot load nyu-mll/blimp \(adjunct_island\) .* use --data-dir"):
        load_suite("blimp", None)


def test_the_official_blimp_files_hold_seven_identical_pairs(shared_data: Path) -> None:
    """docs/benchmarks.md and docs/plugins.md: BLiMP's files hold 7 pairs whose two sentences are identical, 2 in
    passive_1 and 5 in principle_A_case_2 (1,000 pairs each), so those paradigms top out at 99.8% and 99.5%."""
    from zoo.benchmarks.minimal_pairs import load_suite

    paradigms = load_suite("blimp", shared_data / "blimp")
    identical = {p.name: sum(pair.good == pair.bad for pair in p.pairs) for p in paradigms}
    assert {name: n for name, n in identical.items() if n} == {"passive_1": 2, "principle_A_case_2": 5}
    sizes = {p.name: len(p.pairs) for p in paradigms if p.name in ("passive_1", "principle_A_case_2")}
    assert sizes == {"passive_1": 1000, "principle_A_case_2": 1000}
