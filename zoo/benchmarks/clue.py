"""CLUE classification tasks (Xu et al., 2020) as ``TaskSpec`` data.

Folders are the ``*_public`` directories of the CLUE release (JSON lines, string labels); fields
follow the CLUE baselines' processors (``baselines/models_pytorch/classifier_pytorch``). Rows
labelled ``-`` (no annotator majority) in CMNLI/OCNLI are dropped and counted. Hub copies:
``clue/clue``.
"""

from __future__ import annotations

from typing import Any

from zoo.benchmarks.tasks import Columns, HubSource, TaskSpec

HUB = "clue/clue"
_FILES = {"train": "train.json", "dev": "dev.json", "test": "test.json"}
_SPLITS = {"train": "train", "dev": "validation", "test": "test"}
_NLI3 = ("contradiction", "entailment", "neutral")


def _hub(config: str, columns: Columns) -> HubSource:
    return HubSource(HUB, config, columns, _SPLITS)


def mark_wsc_spans(row: dict[str, Any]) -> dict[str, Any]:
    """CLUEWSC2020: mark the noun ``_like this_`` and the pronoun ``[like this]`` inside the text.

    The markers are those of the CLUE baseline, so one sentence carries the whole question.
    """
    text, target = row["text"], row["target"]
    spans = []
    for key, left, right in (("span1", "_", "_"), ("span2", "[", "]")):
        span, start = target[f"{key}_text"], int(target[f"{key}_index"])
        if text[start:start + len(span)] != span:
            raise ValueError(f"target.{key}_text {span!r} is not at {key}_index {start}")
        spans.append((start, len(span), left, right))
    for start, n, left, right in sorted(spans, reverse=True):  # right-most first keeps indices valid
        text = text[:start] + left + text[start:start + n] + right + text[start + n:]
    return {**row, "text": text}


AFQMC = TaskSpec(
    name="afqmc", suite="clue", title="AFQMC", folder="afqmc_public", format="jsonl", files=_FILES,
    columns=Columns(text_a="sentence1", text_b="sentence2", label="label"),
    labels=("0", "1"), metrics=("accuracy",),
    hub=_hub("afqmc", Columns("sentence1", "sentence2", "label")),
    description="Ant Financial Question Matching: do the two questions mean the same?",
)

TNEWS = TaskSpec(
    name="tnews", suite="clue", title="TNEWS", folder="tnews_public", format="jsonl", files=_FILES,
    columns=Columns(text_a="sentence", label="label"),
    # 15 categories with ids 100-116, skipping 105 and 111
    labels=tuple(str(i) for i in range(100, 117) if i not in (105, 111)), metrics=("accuracy",),
    labels_file="labels.json", hub=_hub("tnews", Columns("sentence", None, "label")),
    description="Toutiao news titles: 15 categories.",
)

IFLYTEK = TaskSpec(
    name="iflytek", suite="clue", title="IFLYTEK", folder="iflytek_public", format="jsonl", files=_FILES,
    columns=Columns(text_a="sentence", label="label"),
    labels=tuple(str(i) for i in range(119)), metrics=("accuracy",),
    labels_file="labels.json", hub=_hub("iflytek", Columns("sentence", None, "label")),
    description="App descriptions: 119 categories.",
)

CMNLI = TaskSpec(
    name="cmnli", suite="clue", title="CMNLI", folder="cmnli_public", format="jsonl", files=_FILES,
    columns=Columns(text_a="sentence1", text_b="sentence2", label="label"),
    labels=_NLI3, metrics=("accuracy",), drop_labels=("-",),
    hub=_hub("cmnli", Columns("sentence1", "sentence2", "label")),
    description="Chinese Multi-Genre NLI (XNLI zh + translated MNLI).",
)

OCNLI = TaskSpec(
    name="ocnli", suite="clue", title="OCNLI", folder="ocnli_public", format="jsonl",
    files={"train": "train.50k.json", "dev": "dev.json", "test": "test.json"},
    columns=Columns(text_a="sentence1", text_b="sentence2", label="label"),
    labels=_NLI3, metrics=("accuracy",), drop_labels=("-",),
    hub=_hub("ocnli", Columns("sentence1", "sentence2", "label")),
    description="Original Chinese NLI (50k training pairs).",
)

CLUEWSC = TaskSpec(
    name="cluewsc", suite="clue", title="CLUEWSC2020", folder="cluewsc2020_public", format="jsonl",
    files=_FILES, columns=Columns(text_a="text", label="label"),
    labels=("true", "false"), metrics=("accuracy",), transform=mark_wsc_spans,
    hub=_hub("cluewsc2020", Columns("text", None, "label")),
    description="Chinese Winograd Schema Challenge: does the pronoun refer to the noun?",
)

CSL = TaskSpec(
    name="csl", suite="clue", title="CSL", folder="csl_public", format="jsonl", files=_FILES,
    # keywords (a list, joined by spaces) paired with the abstract, as in the CLUE baseline
    columns=Columns(text_a="keyword", text_b="abst", label="label"),
    labels=("0", "1"), metrics=("accuracy",),
    hub=_hub("csl", Columns("keyword", "abst", "label")),
    description="Chinese Scientific Literature: are all keywords real keywords of the abstract?",
)
