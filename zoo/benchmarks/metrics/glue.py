"""GLUE metrics as a local ``evaluate`` module: ``evaluate.load(<path to this file>, "<task>")``.

The same definitions as the hub's ``glue`` metric (which ``evaluate.load("glue", ...)`` would have
to download), computed with scikit-learn and SciPy:

    cola                       matthews_correlation
    mrpc, qqp                  accuracy, f1 (binary, positive class = label id 1)
    stsb                       pearson, spearmanr
    sst2, mnli, qnli, rte,     accuracy
    wnli

``accuracy``, ``f1``, ``matthews_correlation``, ``pearson``, ``spearmanr``, ``accuracy_f1`` and
``pearson_spearmanr`` name metrics directly (for third-party tasks).

Degenerate inputs have defined values instead of NaN: Matthews correlation is 0.0 when a
confusion-matrix margin is empty (scikit-learn's definition; e.g. a constant prediction); Pearson
and Spearman correlations are 0.0 when either side is constant or there are fewer than two
examples; F1 is 0.0 when there is no positive prediction or no positive reference (precision or
recall undefined). All values are fractions (accuracy 0.5, not 50).
"""

import datasets
import evaluate
import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

_CITATION = """\
@inproceedings{wang2019glue,
  title={{GLUE}: A Multi-Task Benchmark and Analysis Platform for Natural Language Understanding},
  author={Wang, Alex and Singh, Amanpreet and Michael, Julian and Hill, Felix and Levy, Omer and Bowman, Samuel R.},
  booktitle={International Conference on Learning Representations},
  year={2019}
}
"""

_DESCRIPTION = "GLUE task metrics (Matthews correlation, accuracy, F1, Pearson and Spearman correlation)."

_INPUTS = """
predictions: class ids (classification) or floats (stsb, pearson_spearmanr).
references: gold class ids or floats, in the same order.
"""

CONFIGS = {
    "cola": ("matthews_correlation",),
    "sst2": ("accuracy",),
    "mrpc": ("accuracy", "f1"),
    "stsb": ("pearson", "spearmanr"),
    "qqp": ("accuracy", "f1"),
    "mnli": ("accuracy",),
    "qnli": ("accuracy",),
    "rte": ("accuracy",),
    "wnli": ("accuracy",),
    "accuracy": ("accuracy",),
    "accuracy_f1": ("accuracy", "f1"),
    "matthews_correlation": ("matthews_correlation",),
    "pearson_spearmanr": ("pearson", "spearmanr"),
    "f1": ("f1",),
    "pearson": ("pearson",),
    "spearmanr": ("spearmanr",),
}
REGRESSION = ("pearson", "spearmanr")


def accuracy(predictions, references):
    return float((np.asarray(predictions) == np.asarray(references)).mean())


def f1(predictions, references):
    return float(f1_score(references, predictions, pos_label=1, average="binary", zero_division=0.0))


def matthews_correlation(predictions, references):
    return float(matthews_corrcoef(references, predictions))


def _constant(x):
    return len(x) < 2 or bool(np.all(x == x[0]))


def pearson(predictions, references):
    p, r = np.asarray(predictions, dtype=np.float64), np.asarray(references, dtype=np.float64)
    return 0.0 if _constant(p) or _constant(r) else float(pearsonr(p, r)[0])


def spearman(predictions, references):
    p, r = np.asarray(predictions, dtype=np.float64), np.asarray(references, dtype=np.float64)
    return 0.0 if _constant(p) or _constant(r) else float(spearmanr(p, r)[0])


FUNCTIONS = {
    "accuracy": accuracy,
    "f1": f1,
    "matthews_correlation": matthews_correlation,
    "pearson": pearson,
    "spearmanr": spearman,
}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class Glue(evaluate.Metric):
    def _info(self):
        if self.config_name not in CONFIGS:
            raise KeyError(f"unknown GLUE metric configuration {self.config_name!r}; expected one of {sorted(CONFIGS)}")
        regression = CONFIGS[self.config_name][0] in REGRESSION
        dtype = "float64" if regression else "int64"
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({"predictions": datasets.Value(dtype), "references": datasets.Value(dtype)}),
        )

    def _compute(self, predictions, references):
        return {name: FUNCTIONS[name](predictions, references) for name in CONFIGS[self.config_name]}
