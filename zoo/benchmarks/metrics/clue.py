"""CLUE classification metrics as a local ``evaluate`` module: ``evaluate.load(<path>, "<task>")``.

Every CLUE classification task (AFQMC, TNEWS, IFLYTEK, CMNLI, OCNLI, CLUEWSC2020, CSL) is scored
by accuracy, as on the CLUE leaderboard. Values are fractions (0.5, not 50).
"""

import datasets
import evaluate
import numpy as np

_CITATION = """\
@inproceedings{xu2020clue,
  title={{CLUE}: A {C}hinese Language Understanding Evaluation Benchmark},
  author={Xu, Liang and Hu, Hai and Zhang, Xuanwei and others},
  booktitle={Proceedings of the 28th International Conference on Computational Linguistics},
  year={2020}
}
"""

_DESCRIPTION = "CLUE classification metric (accuracy)."

_INPUTS = """
predictions: predicted class ids.
references: gold class ids, in the same order.
"""

CONFIGS = ("afqmc", "tnews", "iflytek", "cmnli", "ocnli", "cluewsc", "cluewsc2020", "csl", "accuracy")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _INPUTS)
class Clue(evaluate.Metric):
    def _info(self):
        if self.config_name not in CONFIGS:
            raise KeyError(f"unknown CLUE metric configuration {self.config_name!r}; expected one of {CONFIGS}")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        return {"accuracy": float((np.asarray(predictions) == np.asarray(references)).mean())}
