"""Our GLUE/CLUE metric modules against scikit-learn and SciPy, their edge cases, and the suite average."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from zoo.benchmarks.scoring import METRICS_DIR, compute_metrics, load_metric, suite_average, task_score
from zoo.benchmarks.tasks import Columns, TaskSpec, get_task

rng = np.random.default_rng(0)
Y2 = rng.integers(0, 2, 200)
P2 = np.where(rng.random(200) < 0.7, Y2, 1 - Y2)  # a 70%-correct classifier
Y3, P3 = rng.integers(0, 3, 150), rng.integers(0, 3, 150)
YR = rng.uniform(0, 5, 120)
PR = YR + rng.normal(0, 1.5, 120)


def test_classification_metrics_match_sklearn() -> None:
    assert compute_metrics(get_task("cola"), P2, Y2) == {"matthews_correlation": pytest.approx(matthews_corrcoef(Y2, P2))}
    mrpc = compute_metrics(get_task("mrpc"), P2, Y2)
    assert mrpc == {"accuracy": pytest.approx(accuracy_score(Y2, P2)), "f1": pytest.approx(f1_score(Y2, P2))}
    assert compute_metrics(get_task("qqp"), P2, Y2) == mrpc
    for task in ("sst2", "qnli", "rte", "wnli"):
        assert compute_metrics(get_task(task), P2, Y2) == {"accuracy": pytest.approx(accuracy_score(Y2, P2))}
    assert compute_metrics(get_task("mnli"), P3, Y3) == {"accuracy": pytest.approx(accuracy_score(Y3, P3))}
    for task in ("afqmc", "tnews", "iflytek", "cmnli", "ocnli", "cluewsc", "csl"):
        assert compute_metrics(get_task(task), P3, Y3) == {"accuracy": pytest.approx(accuracy_score(Y3, P3))}


def test_regression_metrics_match_scipy() -> None:
    got = compute_metrics(get_task("stsb"), PR, YR)
    assert got["pearson"] == pytest.approx(pearsonr(PR, YR)[0], abs=1e-12)
    assert got["spearmanr"] == pytest.approx(spearmanr(PR, YR)[0], abs=1e-12)
    assert 0.5 < got["pearson"] < 0.9  # a real correlation, not a placeholder


def test_known_values() -> None:
    # 2x2 confusion: tp=3 fp=1 fn=1 tn=3 -> MCC = (9 - 1) / sqrt(4*4*4*4) = 0.5, F1 = 0.75
    y = [1, 1, 1, 1, 0, 0, 0, 0]
    p = [1, 1, 1, 0, 1, 0, 0, 0]
    assert compute_metrics(get_task("cola"), p, y)["matthews_correlation"] == pytest.approx(0.5)
    assert compute_metrics(get_task("mrpc"), p, y) == {"accuracy": 0.75, "f1": pytest.approx(0.75)}
    assert compute_metrics(get_task("stsb"), [1.0, 2.0, 3.0], [2.0, 4.0, 6.5]) == {
        "pearson": pytest.approx(pearsonr([1, 2, 3], [2, 4, 6.5])[0]), "spearmanr": pytest.approx(1.0)}


def test_degenerate_inputs_have_defined_values() -> None:
    y = [0, 1, 0, 1, 1]
    assert compute_metrics(get_task("cola"), [1] * 5, y)["matthews_correlation"] == 0.0
    assert matthews_corrcoef(y, [1] * 5) == 0.0  # the same definition as scikit-learn
    mrpc = compute_metrics(get_task("mrpc"), [0] * 5, y)
    assert mrpc == {"accuracy": 0.4, "f1": 0.0}  # no positive prediction: F1 0, not NaN
    stsb = compute_metrics(get_task("stsb"), [2.5] * 5, [0.0, 1.0, 2.0, 3.0, 4.0])
    assert stsb == {"pearson": 0.0, "spearmanr": 0.0}  # constant prediction: scipy says NaN, we say 0
    assert compute_metrics(get_task("stsb"), [1.0, 2.0], [3.0, 3.0]) == {"pearson": 0.0, "spearmanr": 0.0}
    assert compute_metrics(get_task("stsb"), [1.0], [3.0]) == {"pearson": 0.0, "spearmanr": 0.0}
    with pytest.raises(ValueError, match="0 predictions for 0 references"):
        compute_metrics(get_task("sst2"), [], [])


def test_metric_modules_load_offline_by_path() -> None:
    assert (METRICS_DIR / "glue.py").is_file() and (METRICS_DIR / "clue.py").is_file()
    m = load_metric("glue", "stsb")
    assert m.compute(predictions=[0.0, 1.0, 2.0], references=[0.0, 1.0, 2.5])["pearson"] > 0.99
    with pytest.raises(KeyError, match="unknown GLUE metric configuration 'nope'"):
        load_metric("glue", "nope")


def test_third_party_task_metrics_use_the_generic_configurations() -> None:
    spec = TaskSpec(name="mine", suite="other", title="Mine", folder="mine", format="jsonl",
                    files={"train": "t.json", "dev": "d.json"}, columns=Columns("text", label="label"),
                    labels=("a", "b"), metrics=("f1", "matthews_correlation"))
    assert spec.suite == "other"
    got = compute_metrics(spec, P2, Y2)
    assert got == {"f1": pytest.approx(f1_score(Y2, P2)), "matthews_correlation": pytest.approx(matthews_corrcoef(Y2, P2))}


def test_glue_average_reproduces_a_leaderboard_row() -> None:
    """BERT-Large on the GLUE test leaderboard (Devlin et al., 2019): score 80.5."""
    row = {
        "cola": {"matthews_correlation": 60.5}, "sst2": {"accuracy": 94.9},
        "mrpc": {"f1": 89.3, "accuracy": 85.4}, "stsb": {"pearson": 87.6, "spearmanr": 86.5},
        "qqp": {"f1": 72.1, "accuracy": 89.3}, "mnli": {"m/accuracy": 86.7, "mm/accuracy": 85.9},
        "qnli": {"accuracy": 92.7}, "rte": {"accuracy": 70.1}, "wnli": {"accuracy": 65.1},
    }
    scores = {t: task_score(get_task(t), s) for t, s in row.items()}
    assert scores["mnli"] == pytest.approx(86.3) and scores["mrpc"] == pytest.approx(87.35)
    assert round(suite_average(scores), 1) == 80.5  # type: ignore[arg-type]
    assert suite_average({}) is None
