"""GLUE tasks (Wang et al., 2018) as ``TaskSpec`` data.

Folder and file names are those of GLUE's ``download_glue_data.py``; column positions follow the
reference processors (``transformers.data.processors.glue``). Files with a header are checked
against its field count, headerless CoLA against its four columns. Hub copies: ``nyu-mll/glue``.
"""

from __future__ import annotations

from zoo.benchmarks.tasks import Columns, HubSource, TaskSpec

HUB = "nyu-mll/glue"
_SPLITS = {"train": "train", "dev": "validation", "test": "test"}
_BINARY = ("0", "1")
_NLI2 = ("entailment", "not_entailment")
_FILES = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}


def _hub(config: str, a: str, b: str | None = None, splits: dict[str, str] | None = None) -> HubSource:
    return HubSource(HUB, config, Columns(a, b, "label"), splits or _SPLITS)


COLA = TaskSpec(
    name="cola", suite="glue", title="CoLA", folder="CoLA", format="tsv", files=_FILES,
    # source, label, original label (blank), sentence; no header (the test file has one)
    columns=Columns(text_a=3, label=1, header=False, num_fields=4),
    test_columns=Columns(text_a=1),  # index, sentence
    labels=_BINARY, metrics=("matthews_correlation",), hub=_hub("cola", "sentence"),
    description="Corpus of Linguistic Acceptability: is the sentence grammatical?",
)

SST2 = TaskSpec(
    name="sst2", suite="glue", title="SST-2", folder="SST-2", format="tsv", files=_FILES,
    columns=Columns(text_a=0, label=1),  # sentence, label
    test_columns=Columns(text_a=1),  # index, sentence
    labels=_BINARY, metrics=("accuracy",), hub=_hub("sst2", "sentence"), folder_aliases=("SST2",),
    description="Stanford Sentiment Treebank: binary sentiment of movie-review sentences.",
)

MRPC = TaskSpec(
    name="mrpc", suite="glue", title="MRPC", folder="MRPC", format="tsv", files=_FILES,
    columns=Columns(text_a=3, text_b=4, label=0),  # Quality, #1 ID, #2 ID, #1 String, #2 String
    test_columns=Columns(text_a=3, text_b=4),  # index, #1 ID, #2 ID, #1 String, #2 String
    labels=_BINARY, metrics=("accuracy", "f1"), hub=_hub("mrpc", "sentence1", "sentence2"),
    description="Microsoft Research Paraphrase Corpus: are the two sentences paraphrases?",
)

STSB = TaskSpec(
    name="stsb", suite="glue", title="STS-B", folder="STS-B", format="tsv", files=_FILES,
    # index, genre, filename, year, old_index, source1, source2, sentence1, sentence2, score
    columns=Columns(text_a=7, text_b=8, label=-1),
    test_columns=Columns(text_a=7, text_b=8),
    labels=None, metrics=("pearson", "spearmanr"), hub=_hub("stsb", "sentence1", "sentence2"),
    folder_aliases=("STSB",),
    description="Semantic Textual Similarity Benchmark: similarity score 0-5 (regression).",
)

QQP = TaskSpec(
    name="qqp", suite="glue", title="QQP", folder="QQP", format="tsv", files=_FILES,
    columns=Columns(text_a=3, text_b=4, label=5),  # id, qid1, qid2, question1, question2, is_duplicate
    test_columns=Columns(text_a=1, text_b=2),  # id, question1, question2
    labels=_BINARY, metrics=("accuracy", "f1"), hub=_hub("qqp", "question1", "question2"),
    description="Quora Question Pairs: are the two questions duplicates?",
)

MNLI = TaskSpec(
    name="mnli", suite="glue", title="MNLI", folder="MNLI", format="tsv",
    files={"train": "train.tsv", "m": "dev_matched.tsv", "mm": "dev_mismatched.tsv",
           "test": "test_matched.tsv"},
    # index, promptID, pairID, genre, 4 parses, sentence1, sentence2, [label1..label5,] gold_label
    columns=Columns(text_a=8, text_b=9, label=-1),
    test_columns=Columns(text_a=8, text_b=9),
    labels=("contradiction", "entailment", "neutral"), metrics=("accuracy",), eval_splits=("m", "mm"),
    hub=_hub("mnli", "premise", "hypothesis", {"train": "train", "m": "validation_matched",
                                               "mm": "validation_mismatched", "test": "test_matched"}),
    description="Multi-Genre NLI; scored on the matched (m) and mismatched (mm) dev sets.",
)

QNLI = TaskSpec(
    name="qnli", suite="glue", title="QNLI", folder="QNLI", format="tsv", files=_FILES,
    columns=Columns(text_a=1, text_b=2, label=-1),  # index, question, sentence, label
    labels=_NLI2, metrics=("accuracy",), hub=_hub("qnli", "question", "sentence"),
    description="Question NLI (from SQuAD): does the sentence answer the question?",
)

RTE = TaskSpec(
    name="rte", suite="glue", title="RTE", folder="RTE", format="tsv", files=_FILES,
    columns=Columns(text_a=1, text_b=2, label=-1),  # index, sentence1, sentence2, label
    labels=_NLI2, metrics=("accuracy",), hub=_hub("rte", "sentence1", "sentence2"),
    description="Recognizing Textual Entailment (RTE1-3, RTE5).",
)

WNLI = TaskSpec(
    name="wnli", suite="glue", title="WNLI", folder="WNLI", format="tsv", files=_FILES,
    columns=Columns(text_a=1, text_b=2, label=-1),  # index, sentence1, sentence2, label
    labels=_BINARY, metrics=("accuracy",), hub=_hub("wnli", "sentence1", "sentence2"),
    description="Winograd NLI: does the sentence with the pronoun replaced follow?",
)
