"""The constant predictor beside every model: majority class of the training labels, official metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoo.benchmarks.data import Example, Split, TaskData, load_task_data
from zoo.benchmarks.scoring import constant_predictor_scores
from zoo.benchmarks.tasks import get_task
from zoo.errors import DataError


@pytest.mark.parametrize("task,expected", [
    # the published majority baselines of the GLUE dev sets: MRPC all "paraphrase", CoLA MCC 0
    ("mrpc", {"accuracy": 0.684, "f1": 0.812}),
    ("cola", {"matthews_correlation": 0.0}),
    ("sst2", {"accuracy": 0.509}),
])
def test_glue_dev_sets(shared_data: Path, task: str, expected: dict[str, float]) -> None:
    scores = constant_predictor_scores(load_task_data(get_task(task), shared_data / "glue"))
    assert scores == pytest.approx(expected, abs=5e-4)


def _data(task: str, train: list, dev: list) -> TaskData:
    spec = get_task(task)
    split = lambda name, labels: Split(name, [Example("a", "b", y) for y in labels], name)  # noqa: E731
    return TaskData(spec, spec.labels, split("train", train), {s: split(s, dev) for s in spec.eval_splits})


def test_regression_and_several_splits() -> None:
    stsb = constant_predictor_scores(_data("stsb", [1.0, 2.0, 4.5], [0.5, 3.0, 4.0]))
    assert stsb == {"pearson": 0.0, "spearmanr": 0.0}  # a constant correlates with nothing
    mnli = constant_predictor_scores(_data("mnli", [2, 2, 0, 1], [2, 0, 2, 1]))
    assert mnli == pytest.approx({"m/accuracy": 0.5, "mm/accuracy": 0.5})


def test_training_split_without_labels_is_an_error() -> None:
    with pytest.raises(DataError, match="sst2: the training split has no labels"):
        constant_predictor_scores(_data("sst2", [None, None], [0, 1]))


def _texts(task: str, train: list[tuple[str, str | None, float]], dev: list[tuple[str, str | None, float]]) -> TaskData:
    spec = get_task(task)
    split = lambda name, rows: Split(name, [Example(a, b, y) for a, b, y in rows], name)  # noqa: E731
    return TaskData(spec, spec.labels, split("train", train), {s: split(s, dev) for s in spec.eval_splits})


def test_bag_of_words_beside_the_constant_predictor() -> None:
    """A word decides the label: the bag-of-words model gets it, the constant predictor cannot; its
    predictions are sklearn's logistic regression on binary word counts, as stated."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    from zoo.benchmarks.scoring import bag_of_words_scores

    words = ["fine film", "dull plot", "great cast", "awful mess", "a fine cast", "dull and awful"]
    labels = [1, 0, 1, 0, 1, 0]
    train = [(w + f" scene {i}", None, y) for i in range(5) for w, y in zip(words, labels, strict=True)]
    dev = [("fine great", None, 1), ("awful dull", None, 0), ("a dull scene", None, 0), ("great", None, 1)]
    data = _texts("sst2", train, dev)
    bow = bag_of_words_scores(data)
    vec = CountVectorizer(lowercase=True, binary=True, token_pattern=r"(?u)\b\w+\b")
    ref = LogisticRegression(C=1.0, max_iter=2000).fit(vec.fit_transform([t for t, _, _ in train]), [y for *_, y in train])
    expected = (ref.predict(vec.transform([t for t, _, _ in dev])) == [y for *_, y in dev]).mean()
    assert bow == pytest.approx({"accuracy": expected}) and bow["accuracy"] == 1.0
    assert constant_predictor_scores(data)["accuracy"] == 0.5
    # a pair task reads both sentences; a regression task gets ridge regression
    mrpc = bag_of_words_scores(_texts("mrpc", [("a b", "a b", 1), ("a b", "c d", 0)] * 4, [("x a", "x a", 1)]))
    assert set(mrpc) == {"accuracy", "f1"}
    stsb = bag_of_words_scores(_texts("stsb", [("a", "a", 5.0), ("a", "b", 0.0), ("b", "b", 5.0), ("b", "a", 1.0)],
                                      [("a", "a", 4.0), ("a", "b", 1.0), ("b", "b", 4.5)]))
    assert stsb["pearson"] > 0.5


def test_bench_table_has_a_bag_of_words_column() -> None:
    from zoo.benchmarks.finetune_results import BenchResult, bench_result_from_dict

    res = BenchResult("glue", ["sst2"], [0], [], "data", constant={"sst2": {"accuracy": 0.509}},
                      bag_of_words={"sst2": {"accuracy": 0.8}})
    columns, rows = res.table()
    assert columns[-2:] == ["constant", "bag of words"] and rows[0][-2:] == ["50.9", "80.0"]
    assert rows[-1][-2:] == ["50.9", "80.0"]
    assert bench_result_from_dict(res.to_dict()).bag_of_words == res.bag_of_words
