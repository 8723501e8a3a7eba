"""Readers for the official GLUE / CLUE layouts: every task on small fixtures written the way the
official distributions lay them out, the real files under ../shared/data, and the error paths."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from zoo.benchmarks.data import load_task_data, task_folder
from zoo.benchmarks.tasks import get_task
from zoo.errors import DataError

BOM = "\ufeff"


def _tsv(path: Path, rows: list[list[str]], bom: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((BOM if bom else "") + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")


def _jsonl(path: Path, rows: list[dict | str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


MNLI_TRAIN_HEAD = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
                   "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"]
MNLI_DEV_HEAD = MNLI_TRAIN_HEAD[:-1] + ["label2", "label3", "label4", "label5", "gold_label"]
STSB_HEAD = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2",
             "score"]


def _mnli_row(i: int, a: str, b: str, label: str, dev: bool) -> list[str]:
    votes = [label] * (5 if dev else 1)
    return [str(i), "1", f"{i}e", "fiction", "( x )", "( y )", "(ROOT x)", "(ROOT y)", a, b, *votes, label]


def write_glue(root: Path) -> Path:
    """A miniature GLUE in download_glue_data.py's layout, with the quirks of the real files."""
    _tsv(root / "CoLA" / "train.tsv", [["gj04", "1", "", "The cat sat."], ["gj04", "0", "*", "Cat the sat."],
                                       ["gj04", "1", "", "He left."]])
    _tsv(root / "CoLA" / "dev.tsv", [["gj04", "1", "", "She ran."], ["gj04", "0", "*", "Ran she the."]])
    _tsv(root / "CoLA" / "test.tsv", [["index", "sentence"], ["0", "Dogs bark."]])
    _tsv(root / "SST-2" / "train.tsv", [["sentence", "label"], ["a charming journey ", "1"], ["bleak ", "0"]])
    _tsv(root / "SST-2" / "dev.tsv", [["sentence", "label"], ["lovely", "1"], ["dull", "0"]])
    _tsv(root / "SST-2" / "test.tsv", [["index", "sentence"], ["0", "uneasy mishmash"]])
    mrpc_head = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    _tsv(root / "MRPC" / "train.tsv", [mrpc_head, ["1", "1", "2", 'He said "yes', "He agreed."],
                                       ["0", "3", "4", "It rained.", 'The "sun shone']], bom=True)
    _tsv(root / "MRPC" / "dev.tsv", [mrpc_head, ["1", "5", "6", "A b.", "A c."], ["0", "7", "8", "X.", "Y."]], bom=True)
    _tsv(root / "MRPC" / "test.tsv", [["index", *mrpc_head[1:]], ["0", "9", "10", "P.", "Q."]], bom=True)
    stsb = [["0", "main-captions", "MSRvid", "2012test", "0001", "none", "none", "A plane.", "An air plane.", "5.000"],
            ["1", "main-captions", "MSRvid", "2012test", "0004", "none", "none", "A man.", "A dog.", "0.500"]]
    _tsv(root / "STS-B" / "train.tsv", [STSB_HEAD, *stsb])
    _tsv(root / "STS-B" / "dev.tsv", [STSB_HEAD, *stsb])
    qqp_head = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
    _tsv(root / "QQP" / "train.tsv", [qqp_head, ["0", "1", "2", "How?", "How so?", "1"],
                                      ["1", "3", "4", "Why?", "When?", "0"]])
    _tsv(root / "QQP" / "dev.tsv", [qqp_head, ["2", "5", "6", "Who?", "Who is?", "1"],
                                    ["3", "7", "8", "What?", "Where?", "0"]])
    _tsv(root / "MNLI" / "train.tsv", [MNLI_TRAIN_HEAD, _mnli_row(0, "P one.", "H one.", "neutral", False),
                                       _mnli_row(1, "P two.", "H two.", "entailment", False),
                                       _mnli_row(2, "P three.", "H three.", "contradiction", False)])
    _tsv(root / "MNLI" / "dev_matched.tsv", [MNLI_DEV_HEAD, _mnli_row(3, "M a.", "M b.", "entailment", True),
                                            _mnli_row(4, "M c.", "M d.", "neutral", True)])
    _tsv(root / "MNLI" / "dev_mismatched.tsv", [MNLI_DEV_HEAD, _mnli_row(5, "X a.", "X b.", "contradiction", True)])
    for task, labels in (("QNLI", ("entailment", "not_entailment")), ("RTE", ("entailment", "not_entailment")),
                         ("WNLI", ("1", "0"))):
        head = ["index", "question" if task == "QNLI" else "sentence1", "sentence" if task == "QNLI" else "sentence2",
                "label"]
        for split in ("train", "dev"):
            _tsv(root / task / f"{split}.tsv", [head, ["0", f"{task} a?", f"{task} b.", labels[0]],
                                                ["1", f"{task} c?", f"{task} d.", labels[1]]])
    return root


def write_clue(root: Path) -> Path:
    """A miniature CLUE in the *_public layout of the CLUE release (JSON lines, string labels)."""
    for split in ("train", "dev"):
        _jsonl(root / "afqmc_public" / f"{split}.json", [{"sentence1": "花呗怎么还", "sentence2": "花呗如何还款", "label": "1"},
                                                         {"sentence1": "借呗额度", "sentence2": "今天天气", "label": "0"}])
        _jsonl(root / "iflytek_public" / f"{split}.json", [{"label": "0", "label_des": "打车", "sentence": "打车软件"},
                                                           {"label": "118", "label_des": "其他", "sentence": "别的"}])
        _jsonl(root / "cmnli_public" / f"{split}.json", [{"sentence1": "他来了", "sentence2": "他到了", "label": "entailment"},
                                                         {"sentence1": "他走了", "sentence2": "他在", "label": "contradiction"},
                                                         {"sentence1": "下雨", "sentence2": "天晴", "label": "-"}])
        _jsonl(root / "cluewsc2020_public" / f"{split}.json", [
            {"target": {"span2_index": 7, "span1_index": 0, "span1_text": "小明", "span2_text": "他"},
             "idx": 0, "label": "true", "text": "小明说今天早上他迟到了"},
            {"target": {"span2_index": 0, "span1_index": 4, "span1_text": "老师", "span2_text": "她"},
             "idx": 1, "label": "false", "text": "她批评了老师"}])
        _jsonl(root / "csl_public" / f"{split}.json", [
            {"id": 1, "abst": "本文研究了深度学习", "keyword": ["深度学习", "神经网络"], "label": "1"},
            {"id": 2, "abst": "本文讨论了经济", "keyword": ["天文"], "label": "0"}])
    _jsonl(root / "tnews_public" / "train.json", [{"label": "100", "label_desc": "news_story", "sentence": "故事", "keywords": ""},
                                                  {"label": "116", "label_desc": "news_game", "sentence": "游戏", "keywords": "x"}])
    _jsonl(root / "tnews_public" / "dev.json", [{"label": "116", "label_desc": "news_game", "sentence": "电竞"}])
    _jsonl(root / "tnews_public" / "test.json", [{"id": 0, "sentence": "没有标签", "keywords": ""}])
    _jsonl(root / "tnews_public" / "labels.json", [{"label": str(i), "label_desc": f"d{i}"} for i in range(100, 117)
                                                   if i not in (105, 111)])
    # OCNLI's training file is train.50k.json; "-" marks pairs without a majority label
    ocnli = [{"level": "easy", "sentence1": "一个人", "sentence2": "有人", "label": "entailment", "genre": "news", "id": 0},
             {"level": "hard", "sentence1": "两人", "sentence2": "三人", "label": "-", "genre": "gov", "id": 1},
             {"level": "easy", "sentence1": "猫", "sentence2": "狗", "label": "neutral", "genre": "tv", "id": 2}]
    _jsonl(root / "ocnli_public" / "train.50k.json", ocnli)
    _jsonl(root / "ocnli_public" / "dev.json", ocnli)
    return root


EXPECTED_GLUE = {  # task: (train rows, eval rows per split, first train example)
    "cola": (3, {"dev": 2}, ("The cat sat.", None, 1)),
    "sst2": (2, {"dev": 2}, ("a charming journey ", None, 1)),
    "mrpc": (2, {"dev": 2}, ('He said "yes', "He agreed.", 1)),
    "stsb": (2, {"dev": 2}, ("A plane.", "An air plane.", 5.0)),
    "qqp": (2, {"dev": 2}, ("How?", "How so?", 1)),
    "mnli": (3, {"m": 2, "mm": 1}, ("P one.", "H one.", 2)),
    "qnli": (2, {"dev": 2}, ("QNLI a?", "QNLI b.", 0)),
    "rte": (2, {"dev": 2}, ("RTE a?", "RTE b.", 0)),
    "wnli": (2, {"dev": 2}, ("WNLI a?", "WNLI b.", 1)),
}


@pytest.mark.parametrize("task", sorted(EXPECTED_GLUE))
def test_glue_official_layouts(tmp_path: Path, task: str) -> None:
    root = write_glue(tmp_path)
    data = load_task_data(get_task(task), root)
    n_train, n_eval, (a, b, y) = EXPECTED_GLUE[task]
    assert len(data.train) == n_train and {k: len(v) for k, v in data.evals.items()} == n_eval
    first = data.train.examples[0]
    assert (first.text_a, first.text_b, first.label) == (a, b, y)
    assert data.train.malformed == 0 and data.train.dropped == 0


def test_glue_test_splits_are_read_without_labels(tmp_path: Path) -> None:
    root = write_glue(tmp_path)
    for task, text in (("cola", "Dogs bark."), ("sst2", "uneasy mishmash"), ("mrpc", "P.")):
        data = load_task_data(get_task(task), root, include_test=True)
        assert data.test is not None and [e.text_a for e in data.test.examples] == [text]
        assert all(e.label is None for e in data.test.examples)
    assert load_task_data(get_task("qqp"), root, include_test=True).test is None  # no test.tsv: fine


EXPECTED_CLUE = {
    "afqmc": (2, ("花呗怎么还", "花呗如何还款", 1)),
    "iflytek": (2, ("打车软件", None, 0)),
    "cmnli": (2, ("他来了", "他到了", 1)),
    "cluewsc": (2, ("_小明_说今天早上[他]迟到了", None, 0)),
    "csl": (2, ("深度学习 神经网络", "本文研究了深度学习", 1)),
    "tnews": (2, ("故事", None, 0)),
    "ocnli": (2, ("一个人", "有人", 1)),
}


@pytest.mark.parametrize("task", sorted(EXPECTED_CLUE))
def test_clue_official_layouts(tmp_path: Path, task: str) -> None:
    data = load_task_data(get_task(task), write_clue(tmp_path))
    n, (a, b, y) = EXPECTED_CLUE[task]
    assert len(data.train) == n
    first = data.train.examples[0]
    assert (first.text_a, first.text_b, first.label) == (a, b, y)


def test_clue_wsc_markers_follow_the_baseline_when_the_pronoun_comes_first(tmp_path: Path) -> None:
    data = load_task_data(get_task("cluewsc"), write_clue(tmp_path))
    assert data.train.examples[1].text_a == "[她]批评了_老师_"
    assert data.train.examples[1].label == 1  # "false" is the second label


def test_nli_dash_labels_are_dropped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = write_clue(tmp_path)
    with caplog.at_level(logging.INFO, logger="zoo.benchmarks"):
        data = load_task_data(get_task("cmnli"), root)
    assert data.train.dropped == 1 and data.evals["dev"].dropped == 1 and data.train.malformed == 0
    assert "dropped 1 row(s) without a gold label (-)" in caplog.text
    assert load_task_data(get_task("ocnli"), root).train.dropped == 1


def test_tnews_label_ids_with_gaps_come_from_labels_json(tmp_path: Path) -> None:
    root = write_clue(tmp_path)
    data = load_task_data(get_task("tnews"), root)
    assert data.labels is not None and len(data.labels) == 15
    assert "105" not in data.labels and "111" not in data.labels
    assert data.evals["dev"].examples[0].label == data.labels.index("116") == 14
    # labels.json is the source of truth: a release with another label set is read as such
    _jsonl(root / "tnews_public" / "labels.json", [{"label": "116"}, {"label": "100"}])
    data = load_task_data(get_task("tnews"), root)
    assert data.labels == ("116", "100") and data.train.examples[0].label == 1


def test_tnews_without_labels_json_uses_the_spec(tmp_path: Path) -> None:
    root = write_clue(tmp_path)
    (root / "tnews_public" / "labels.json").unlink()
    data = load_task_data(get_task("tnews"), root)
    assert data.labels == get_task("tnews").labels


def test_malformed_rows_are_reported_with_file_and_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = write_glue(tmp_path)
    qqp = root / "QQP" / "train.tsv"
    lines = qqp.read_text().splitlines()
    bad = [*lines, "9\t1\t2\tonly four", "10\t1\t2\tq1\tq2\tmaybe", *(f"{i}\t1\t2\tq\tq" for i in range(11, 19)),
           "30\t1\t2\tfine?\tfine!\t1"]
    qqp.write_text("\n".join(bad) + "\n")
    with caplog.at_level(logging.WARNING, logger="zoo.benchmarks"):
        data = load_task_data(get_task("qqp"), root)
    assert len(data.train) == 3 and data.train.malformed == 10
    assert f"{qqp}:4: 4 tab-separated fields, expected 6" in caplog.text
    assert f"{qqp}:5: unknown label 'maybe'" in caplog.text
    assert "skipped 10 malformed row(s)" in caplog.text and "(and 5 more)" in caplog.text
    assert len(data.train.issues) == 5


def test_malformed_json_rows_are_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = write_clue(tmp_path)
    path = root / "afqmc_public" / "train.json"
    _jsonl(path, [{"sentence1": "a", "sentence2": "b", "label": "1"}, "{not json", '["a list"]',
                  {"sentence1": "a", "label": "0"}, {"sentence1": "a", "sentence2": "b", "label": "7"}])
    with caplog.at_level(logging.WARNING, logger="zoo.benchmarks"):
        data = load_task_data(get_task("afqmc"), root)
    assert len(data.train) == 1 and data.train.malformed == 4
    for line, reason in ((2, "invalid JSON"), (3, "expected a JSON object"), (4, "missing key 'sentence2'"),
                         (5, "unknown label '7'")):
        assert f"{path}:{line}: {reason}" in caplog.text


def test_wsc_span_that_does_not_match_the_text_is_malformed(tmp_path: Path) -> None:
    root = write_clue(tmp_path)
    path = root / "cluewsc2020_public" / "train.json"
    row = {"target": {"span2_index": 1, "span1_index": 0, "span1_text": "小明", "span2_text": "他"},
           "label": "true", "text": "小明说他来了"}
    _jsonl(path, [row, {**row, "target": {**row["target"], "span2_index": 3}}])
    data = load_task_data(get_task("cluewsc"), root)
    assert len(data.train) == 1 and data.train.malformed == 1
    assert "span2_text '他' is not at span2_index 1" in data.train.issues[0]


def test_regression_labels_must_be_numbers(tmp_path: Path) -> None:
    root = write_glue(tmp_path)
    path = root / "STS-B" / "train.tsv"
    row = ["2", "g", "f", "y", "o", "s", "s", "A.", "B.", "high"]
    path.write_text(path.read_text() + "\t".join(row) + "\n" + "\t".join([*row[:-1], "nan"]) + "\n")
    data = load_task_data(get_task("stsb"), root)
    assert data.train.malformed == 2 and "could not convert string to float: 'high'" in data.train.issues[0]
    assert "not a finite number" in data.train.issues[1]


def test_a_split_without_usable_rows_fails_clearly(tmp_path: Path) -> None:
    root = write_glue(tmp_path)
    _tsv(root / "SST-2" / "dev.tsv", [["sentence", "label"], ["ok", "positive"]])
    with pytest.raises(DataError, match=r"SST-2: no usable rows in .*dev.tsv \(1 malformed.*unknown label 'positive'"):
        load_task_data(get_task("sst2"), root)


def test_missing_folder_file_and_bad_encoding(tmp_path: Path) -> None:
    root = write_glue(tmp_path)
    with pytest.raises(DataError, match=r"STS-B: no folder .*CoLA/STS-B"):
        load_task_data(get_task("stsb"), tmp_path / "CoLA")
    (root / "RTE" / "dev.tsv").unlink()
    with pytest.raises(DataError, match=r"RTE: missing .*RTE/dev.tsv"):
        load_task_data(get_task("rte"), root)
    (root / "WNLI" / "train.tsv").write_bytes(b"index\tsentence1\tsentence2\tlabel\n0\t\xff\tb\t1\n")
    with pytest.raises(DataError, match=r"WNLI/train.tsv: not UTF-8 text \(byte offset 34"):
        load_task_data(get_task("wnli"), root)
    with pytest.raises(DataError, match="not a directory"):
        load_task_data(get_task("sst2"), tmp_path / "nowhere")


def test_folder_aliases_and_the_task_folder_itself(tmp_path: Path) -> None:
    root = write_clue(tmp_path)
    (root / "tnews_public").rename(root / "tnews")  # as in ../shared/data/clue
    assert task_folder(get_task("tnews"), root) == root / "tnews"
    assert task_folder(get_task("tnews"), root / "tnews") == root / "tnews"
    glue = write_glue(tmp_path / "g")
    (glue / "SST-2").rename(glue / "sst-2")
    assert task_folder(get_task("sst2"), glue) == glue / "sst-2"


def test_limited_subsets_are_fixed_and_in_file_order(tmp_path: Path) -> None:
    root = write_glue(tmp_path)
    rows = [["sentence", "label"], *([f"s{i}", str(i % 2)] for i in range(50))]
    _tsv(root / "SST-2" / "train.tsv", rows)
    data = load_task_data(get_task("sst2"), root)
    a, b = data.limited(10, 1), data.limited(10, 1)
    assert [e.text_a for e in a.train.examples] == [e.text_a for e in b.train.examples]
    idx = [int(e.text_a[1:]) for e in a.train.examples]
    assert len(idx) == 10 and idx == sorted(idx) and idx != list(range(10))
    assert len(a.evals["dev"]) == 1 and a.fingerprint() != data.fingerprint()
    assert data.limited(None, None).fingerprint() == data.fingerprint()


def test_hub_without_network_is_a_clear_error() -> None:
    with pytest.raises(DataError, match=r"cannot load nyu-mll/glue \(sst2\).*use --data-dir"):
        load_task_data(get_task("sst2"))
    with pytest.raises(DataError, match=r"clue/clue \(tnews\)"):
        load_task_data(get_task("tnews"))


# --- the real files ------------------------------------------------------------------------------------

def test_shared_glue_files(shared_data: Path) -> None:
    glue = shared_data / "glue"
    counts = {"sst2": (67349, 872), "cola": (8551, 1043), "mrpc": (3668, 408)}
    for task, (n_train, n_dev) in counts.items():
        data = load_task_data(get_task(task), glue, include_test=True)
        assert (len(data.train), len(data.evals["dev"])) == (n_train, n_dev), task
        assert data.train.malformed == 0 and data.evals["dev"].malformed == 0
    mrpc = load_task_data(get_task("mrpc"), glue, include_test=True)
    assert mrpc.test is not None and len(mrpc.test) == 1725 and mrpc.test.examples[0].label is None
    # the second dev row holds an unbalanced quote that a csv reader would swallow
    assert mrpc.evals["dev"].examples[0].text_b == '"The foodservice pie business does not fit our long-term growth strategy.'
    assert sum(e.label for e in mrpc.train.examples) == 2474  # MRPC train: 67.4% paraphrases


def test_shared_tnews_files(shared_data: Path) -> None:
    data = load_task_data(get_task("tnews"), shared_data / "clue")
    assert (len(data.train), len(data.evals["dev"])) == (53360, 10000)
    assert data.labels is not None and len(data.labels) == 15 and data.train.malformed == 0
    assert {e.label for e in data.evals["dev"].examples} == set(range(15))


# --- the hub code path, on in-memory datasets with the hub's features --------------------------------

def _hub(monkeypatch: pytest.MonkeyPatch, splits: dict[str, dict], features: dict) -> list[tuple[str, str]]:
    import datasets

    feats = datasets.Features(features)
    dd = datasets.DatasetDict({k: datasets.Dataset.from_dict(v, features=feats) for k, v in splits.items()})
    calls: list[tuple[str, str]] = []

    def load_dataset(name: str, config: str) -> datasets.DatasetDict:
        calls.append((name, config))
        return dd

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_hub_glue_labels_map_by_id(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    rows = {"sentence": ["good", "bad"], "label": [1, 0], "idx": [0, 1]}
    calls = _hub(monkeypatch, {"train": rows, "validation": rows,
                               "test": {"sentence": ["?"], "label": [-1], "idx": [0]}},
                 {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["negative", "positive"]),
                  "idx": datasets.Value("int32")})
    data = load_task_data(get_task("sst2"), include_test=True)
    assert calls[0] == ("nyu-mll/glue", "sst2")
    assert [(e.text_a, e.label) for e in data.train.examples] == [("good", 1), ("bad", 0)]
    assert data.test is not None and data.test.examples[0].label is None


def test_hub_mnli_labels_map_by_name_and_splits_by_their_hub_names(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    rows = {"premise": ["p", "q", "r"], "hypothesis": ["h", "i", "j"], "label": [0, 1, 2], "idx": [0, 1, 2]}
    _hub(monkeypatch, {"train": rows, "validation_matched": rows, "validation_mismatched": rows},
         {"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
          "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]), "idx": datasets.Value("int32")})
    data = load_task_data(get_task("mnli"))
    spec_labels = get_task("mnli").labels
    assert [spec_labels[e.label] for e in data.evals["mm"].examples] == ["entailment", "neutral", "contradiction"]
    assert data.train.examples[0].text_b == "h"


def test_hub_clue_wsc_and_stsb(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    target = {"span1_text": "小明", "span2_text": "他", "span1_index": 0, "span2_index": 3}
    rows = {"idx": [0, 1], "text": ["小明说他来了", "小明说他来了"], "label": [0, -1], "target": [target, target]}
    _hub(monkeypatch, {"train": rows, "validation": rows, "test": rows},
         {"idx": datasets.Value("int32"), "text": datasets.Value("string"),
          "label": datasets.ClassLabel(names=["true", "false"]),
          "target": {"span1_text": datasets.Value("string"), "span2_text": datasets.Value("string"),
                     "span1_index": datasets.Value("int32"), "span2_index": datasets.Value("int32")}})
    data = load_task_data(get_task("cluewsc"))
    assert [(e.text_a, e.label) for e in data.train.examples] == [("_小明_说[他]来了", 0)]
    assert data.train.dropped == 1  # label -1: no label
    monkeypatch.undo()
    rows = {"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": [4.2, 0.5], "idx": [0, 1]}
    _hub(monkeypatch, {"train": rows, "validation": rows},
         {"sentence1": datasets.Value("string"), "sentence2": datasets.Value("string"),
          "label": datasets.Value("float32"), "idx": datasets.Value("int32")})
    data = load_task_data(get_task("stsb"))
    assert [e.label for e in data.evals["dev"].examples] == [pytest.approx(4.2), 0.5]


def test_hub_labels_that_do_not_fit_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    rows = {"sentence": ["x"], "label": [0]}
    _hub(monkeypatch, {"train": rows, "validation": rows},
         {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["a", "b", "c"])})
    with pytest.raises(DataError, match=r"hub labels \['a', 'b', 'c'\] do not match the task's labels \['0', '1'\]"):
        load_task_data(get_task("sst2"))
    _hub(monkeypatch, {"train": rows}, {"sentence": datasets.Value("string"), "label": datasets.Value("int32")})
    with pytest.raises(DataError, match="has no split 'validation'"):
        load_task_data(get_task("sst2"))
