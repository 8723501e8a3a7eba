"""Official metrics and suite averages.

Metrics come from the ``evaluate`` modules shipped in ``zoo/benchmarks/metrics/`` (loaded by path,
so nothing is fetched from the hub). The suite average follows the GLUE leaderboard: a task with
two metrics (MRPC, QQP: accuracy and F1; STS-B: Pearson and Spearman) contributes their mean, MNLI
contributes the mean of its matched and mismatched accuracy, and the average is the unweighted mean
over tasks. See docs/benchmarks.md for the check against a published leaderboard row.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.benchmarks.tasks import TaskSpec
from zoo.errors import DataError

log = logging.getLogger(__name__)

METRICS_DIR = Path(__file__).resolve().with_name("metrics")
SUITE_TASK_CONFIGS = {
    "glue": {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"},
    "clue": {"afqmc", "tnews", "iflytek", "cmnli", "ocnli", "cluewsc", "csl"},
}
_GENERIC = {
    ("accuracy",): "accuracy",
    ("accuracy", "f1"): "accuracy_f1",
    ("matthews_correlation",): "matthews_correlation",
    ("pearson", "spearmanr"): "pearson_spearmanr",
}


@functools.lru_cache(maxsize=64)
def load_metric(module: str, config: str) -> Any:
    """``evaluate.load`` of one of our metric modules (``glue`` / ``clue``) by file path."""
    import evaluate

    path = METRICS_DIR / f"{module}.py"
    if not path.is_file():
        raise DataError(f"metric module {path} is missing from the installation")
    return evaluate.load(str(path), config_name=config, keep_in_memory=True)


def _metric_modules(spec: TaskSpec) -> list[tuple[str, str]]:
    """(module, config) pairs that together compute ``spec.metrics``."""
    if spec.name in SUITE_TASK_CONFIGS.get(spec.suite, ()):
        return [(spec.suite, spec.name)]
    generic = _GENERIC.get(tuple(spec.metrics))
    if generic is not None:
        return [("glue", generic)]
    return [("glue", m) for m in spec.metrics]  # every metric also has a configuration of its own


def compute_metrics(spec: TaskSpec, predictions: Sequence[Any] | np.ndarray,
                    references: Sequence[Any] | np.ndarray) -> dict[str, float]:
    """``spec.metrics`` of one evaluation split (class ids, or floats for regression)."""
    if len(predictions) != len(references) or len(references) == 0:
        raise ValueError(f"{spec.name}: {len(predictions)} predictions for {len(references)} references")
    out: dict[str, float] = {}
    for module, config in _metric_modules(spec):
        result = load_metric(module, config).compute(predictions=list(predictions), references=list(references))
        out.update({k: float(v) for k, v in result.items()})
    return {m: out[m] for m in spec.metrics}


def task_score(spec: TaskSpec, scores: Mapping[str, float]) -> float:
    """One number per task: the mean of its metrics over its evaluation splits (GLUE's definition)."""
    return float(np.mean([scores[name] for name in spec.metric_names()]))


def suite_average(task_scores: Mapping[str, float]) -> float | None:
    """Unweighted mean over tasks of their task scores; None without tasks."""
    return float(np.mean(list(task_scores.values()))) if task_scores else None


def constant_predictor_scores(data: Any) -> dict[str, float]:
    """The official metrics of the trivial baseline on ``data.evals`` (``TaskData``): the majority class of
    the training labels (ties: the lowest class id), or for regression the training mean. Metric names
    as fine-tuning reports them (``split/metric`` for tasks with several evaluation splits). A
    correlation of a constant is undefined and scored 0, as Matthews' coefficient of a constant is."""
    spec = data.spec
    labels = [ex.label for ex in data.train.examples if ex.label is not None]
    if not labels:
        raise DataError(f"{spec.name}: the training split has no labels for the constant predictor")
    if spec.is_regression:
        constant: float | int = float(np.mean(labels))
    else:
        values, counts = np.unique(np.asarray(labels, dtype=np.int64), return_counts=True)
        constant = int(values[np.argmax(counts)])
    return _eval_scores(data, lambda examples: [constant] * len(examples))


def _eval_scores(data: Any, predict: Callable[[Sequence[Any]], Sequence[Any]]) -> dict[str, float]:
    """The official metrics of ``predict`` (examples -> predictions) on each split of ``data.evals`` with labels,
    named ``split/metric`` for tasks with several evaluation splits; an undefined metric (a correlation of a
    constant) scores 0."""
    spec = data.spec
    out: dict[str, float] = {}
    for split, examples in data.evals.items():
        refs = [ex.label for ex in examples.examples]
        if not refs:
            continue
        pred = predict(examples.examples)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's ConstantInputWarning for correlations of a constant
            metrics = compute_metrics(spec, pred, refs)
        prefix = f"{split}/" if len(spec.eval_splits) > 1 else ""
        out.update({prefix + k: (0.0 if not np.isfinite(v) else v) for k, v in metrics.items()})
    return out


BAG_OF_WORDS = ("bag of words: a binary word-presence vector per sentence (sklearn CountVectorizer, lowercased, every "
                "word of one or more characters; characters for CLUE's Chinese; a pair task's two sentences side by "
                "side), logistic regression (lbfgs, C = 1) on the training split, ridge regression (alpha = 1) for a "
                "regression task")


def bag_of_words_scores(data: Any) -> dict[str, float]:
    """The official metrics on ``data.evals`` of a bag-of-words model trained on ``data.train`` (``TaskData``):
    ``BAG_OF_WORDS``. Metric names as ``constant_predictor_scores`` gives them."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge

    spec = data.spec
    train = [ex for ex in data.train.examples if ex.label is not None]
    if not train:
        raise DataError(f"{spec.name}: the training split has no labels for the bag-of-words baseline")
    pair = any(ex.text_b is not None for ex in train)
    def vectorizer() -> CountVectorizer:
        if spec.suite == "clue":  # no spaces between Chinese words: characters
            return CountVectorizer(lowercase=True, binary=True, analyzer="char")
        return CountVectorizer(lowercase=True, binary=True, token_pattern=r"(?u)\b\w+\b")

    vec_a = vectorizer()
    vec_b = vectorizer() if pair else None

    def features(examples: Sequence[Any], fit: bool = False) -> Any:
        a = [ex.text_a for ex in examples]
        xa = vec_a.fit_transform(a) if fit else vec_a.transform(a)
        if vec_b is None:
            return xa
        b = [ex.text_b or "" for ex in examples]
        return hstack([xa, vec_b.fit_transform(b) if fit else vec_b.transform(b)]).tocsr()

    x = features(train, fit=True)
    y = [ex.label for ex in train]
    if spec.is_regression:
        model: Any = Ridge(alpha=1.0).fit(x, np.asarray(y, dtype=np.float64))
    elif len(set(y)) < 2:
        return constant_predictor_scores(data)  # one class: nothing to learn beyond the constant
    else:
        model = LogisticRegression(C=1.0, max_iter=2000).fit(x, np.asarray(y, dtype=np.int64))
    cast = float if spec.is_regression else int
    return _eval_scores(data, lambda examples: [cast(p) for p in model.predict(features(examples))])
