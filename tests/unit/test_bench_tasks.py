"""Tasks as data: the built-in GLUE/CLUE specs, suite/task selection, and a third-party task plugin."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from sklearn.metrics import accuracy_score, matthews_corrcoef

from zoo import registry
from zoo.benchmarks.data import load_task_data
from zoo.benchmarks.scoring import compute_metrics
from zoo.benchmarks.tasks import Columns, TaskSpec, get_task, known_suites, resolve_tasks, task_names
from zoo.errors import ConfigError

GLUE = ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"]
CLUE = ["afqmc", "tnews", "iflytek", "cmnli", "ocnli", "cluewsc", "csl"]


def test_builtin_tasks_are_registered_as_entry_points() -> None:
    found = registry.find("task")
    assert set(GLUE + CLUE) <= set(found)
    assert found["sst2"].value == "zoo.benchmarks.glue:SST2" and found["sst2"].builtin
    assert task_names("glue") == GLUE and task_names("clue") == CLUE
    for name in GLUE + CLUE:
        spec = get_task(name)
        assert isinstance(spec, TaskSpec) and spec.name == name
        assert spec.hub is not None and set(spec.hub.splits) >= {"train", *spec.eval_splits}


def test_specs_follow_the_official_definitions() -> None:
    assert get_task("cola").metrics == ("matthews_correlation",)
    assert get_task("mrpc").metrics == get_task("qqp").metrics == ("accuracy", "f1")
    assert get_task("stsb").is_regression and get_task("stsb").metrics == ("pearson", "spearmanr")
    mnli = get_task("mnli")
    assert mnli.eval_splits == ("m", "mm") and mnli.files["m"] == "dev_matched.tsv"
    assert mnli.metric_names() == ["m/accuracy", "mm/accuracy"]
    assert get_task("cola").columns.header is False and get_task("cola").columns.num_fields == 4
    assert get_task("tnews").labels is not None and len(get_task("tnews").labels) == 15  # type: ignore[arg-type]
    assert get_task("iflytek").num_outputs == 119
    assert get_task("ocnli").files["train"] == "train.50k.json"
    assert get_task("cmnli").drop_labels == ("-",) == get_task("ocnli").drop_labels
    assert {get_task(t).folder for t in CLUE} == {"afqmc_public", "tnews_public", "iflytek_public", "cmnli_public",
                                                  "ocnli_public", "cluewsc2020_public", "csl_public"}
    assert all(get_task(t).metrics == ("accuracy",) for t in CLUE)


def test_resolve_tasks() -> None:
    suite, specs = resolve_tasks("glue", "all")
    assert suite == "glue" and [s.name for s in specs] == GLUE
    suite, specs = resolve_tasks(None, "csl, tnews")
    assert suite == "clue" and [s.name for s in specs] == ["csl", "tnews"]
    assert resolve_tasks(None, None)[0] == "glue"


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="no file given for split"):
        TaskSpec(name="x", suite="s", title="X", folder="x", format="tsv", files={"train": "t"},
                 columns=Columns(0, label=1), labels=("0",), metrics=("accuracy",))
    with pytest.raises(ValueError, match="unknown metric"):
        TaskSpec(name="x", suite="s", title="X", folder="x", format="tsv", files={"train": "t", "dev": "d"},
                 columns=Columns(0, label=1), labels=("0",), metrics=("bleu",))
    with pytest.raises(ValueError, match="f1 is the binary F1"):
        TaskSpec(name="x", suite="s", title="X", folder="x", format="tsv", files={"train": "t", "dev": "d"},
                 columns=Columns(0, label=1), labels=("0", "1", "2"), metrics=("f1",))
    with pytest.raises(ValueError, match="metrics of regression tasks"):
        TaskSpec(name="x", suite="s", title="X", folder="x", format="tsv", files={"train": "t", "dev": "d"},
                 columns=Columns(0, label=1), labels=("0", "1"), metrics=("pearson",))


PLUGIN = '''
from zoo.benchmarks.tasks import Columns, TaskSpec

REVIEWS = TaskSpec(
    name="reviews", suite="shop", title="Reviews", folder="reviews", format="jsonl",
    files={"train": "train.jsonl", "dev": "dev.jsonl"},
    columns=Columns(text_a="review", label="stars"), labels=("1", "2", "3"), metrics=("accuracy", "matthews_correlation"),
)
'''


@pytest.fixture
def task_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "shoptasks.py").write_text(PLUGIN)
    info = tmp_path / "shoptasks-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shoptasks\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [zoo.tasks]
        reviews = shoptasks:REVIEWS
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(registry.DISABLE_ENV, raising=False)
    registry.clear_cache()
    yield tmp_path
    registry.clear_cache()
    sys.modules.pop("shoptasks", None)


def test_a_third_party_task_is_found_read_and_scored(task_plugin: Path) -> None:
    assert registry.find("task")["reviews"].origin == "shoptasks 0.3"
    suite, specs = resolve_tasks(None, "reviews")
    assert suite == "shop" and task_names("shop") == ["reviews"]
    assert known_suites()["shop"] == "fine-tuning: reviews"  # zoo list's Suites table, the --suite error
    with pytest.raises(ConfigError, match=r"known suites: clue, glue, shop, blimp, climp.*Did you mean 'shop'"):
        resolve_tasks("shops", None)
    folder = task_plugin / "data" / "reviews"
    folder.mkdir(parents=True)
    for split in ("train", "dev"):
        rows = [{"review": "fine", "stars": 2}, {"review": "great", "stars": "3"}]
        (folder / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    data = load_task_data(specs[0], task_plugin / "data")
    assert [e.label for e in data.train.examples] == [1, 2]  # integer labels in JSON are read as strings
    y, p = [0, 1, 2, 2, 1, 0], [0, 2, 2, 2, 1, 1]
    assert compute_metrics(specs[0], p, y) == {"accuracy": pytest.approx(accuracy_score(y, p)),
                                                "matthews_correlation": pytest.approx(matthews_corrcoef(y, p))}
