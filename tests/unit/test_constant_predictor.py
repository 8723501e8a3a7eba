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
