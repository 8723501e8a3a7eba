"""Downstream tasks as data: a ``TaskSpec`` says where a task's files are and what their columns mean.

Specs are registered in the ``zoo.tasks`` entry-point group, built-ins exactly like third-party
tasks::

    [project.entry-points."zoo.tasks"]
    sst2 = "zoo.benchmarks.glue:SST2"

A third-party task is one ``TaskSpec`` instance in an installed package. Readers for the
official layouts (``zoo.benchmarks.data``) and the hub loader interpret the spec; nothing
about a task is hard-coded anywhere else.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from zoo import registry
from zoo.errors import ConfigError, PluginError

log = logging.getLogger(__name__)

Key = int | str  # a TSV column index (negative counts from the end) or a JSON key

METRICS = ("accuracy", "f1", "matthews_correlation", "pearson", "spearmanr")


@dataclass(frozen=True)
class Columns:
    """Where one split's fields live: TSV column indices or JSON keys."""

    text_a: Key
    text_b: Key | None = None
    label: Key | None = None  # None: the split is unlabelled (a test set)
    header: bool = True  # TSV: the first line names the columns (and fixes the field count)
    num_fields: int | None = None  # TSV without header: the exact number of fields per row


@dataclass(frozen=True)
class HubSource:
    """The same task on the Hugging Face hub (``datasets.load_dataset(dataset, config)``)."""

    dataset: str
    config: str
    columns: Columns  # column names of the hub dataset (``header`` is ignored)
    splits: Mapping[str, str]  # our split name ("train", eval splits, "test") -> hub split name


@dataclass(frozen=True)
class TaskSpec:
    """One downstream task: files of the official distribution, columns, labels and metrics.

    ``files`` maps split names to file names inside ``folder``: ``train``, every name in
    ``eval_splits`` (scored on), and optionally ``test`` (unlabelled, never scored).
    ``labels`` is the label list (ids are positions in it) or ``None`` for regression.
    """

    name: str  # CLI name, e.g. "sst2"
    suite: str  # "glue" | "clue" | a third-party suite name
    title: str  # display name, e.g. "SST-2"
    folder: str  # official folder name inside --data-dir, e.g. "SST-2", "tnews_public"
    format: Literal["tsv", "jsonl"]
    files: Mapping[str, str]
    columns: Columns
    labels: tuple[str, ...] | None
    metrics: tuple[str, ...]
    eval_splits: tuple[str, ...] = ("dev",)
    test_columns: Columns | None = None  # columns of the test file (default: ``columns`` without label)
    hub: HubSource | None = None
    labels_file: str | None = None  # JSON lines with a "label" key; overrides ``labels`` when present
    drop_labels: tuple[str, ...] = ()  # label values that mark unlabelled rows: dropped, counted
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # JSON row -> row (jsonl only)
    folder_aliases: tuple[str, ...] = ()
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format not in ("tsv", "jsonl"):
            raise ValueError(f"task {self.name}: format must be 'tsv' or 'jsonl', got {self.format!r}")
        missing = [s for s in ("train", *self.eval_splits) if s not in self.files]
        if missing:
            raise ValueError(f"task {self.name}: no file given for split(s) {missing}")
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"task {self.name}: unknown metric(s) {unknown}; known: {', '.join(METRICS)}")
        if self.columns.label is None:
            raise ValueError(f"task {self.name}: the labelled splits need a label column")
        regression = [m for m in self.metrics if m in ("pearson", "spearmanr")]
        if bool(regression) != (self.labels is None) or (regression and len(regression) != len(self.metrics)):
            raise ValueError(f"task {self.name}: pearson/spearmanr are the metrics of regression tasks "
                             f"(labels=None), the others of classification tasks")
        if "f1" in self.metrics and len(self.labels or ()) != 2:
            raise ValueError(f"task {self.name}: f1 is the binary F1 of label id 1; it needs exactly two labels")

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def is_pair(self) -> bool:
        return self.columns.text_b is not None

    @property
    def num_outputs(self) -> int:
        return 1 if self.labels is None else len(self.labels)

    def split_columns(self, split: str) -> Columns:
        if split != "test":
            return self.columns
        if self.test_columns is not None:
            return self.test_columns
        c = self.columns
        return Columns(c.text_a, c.text_b, None, c.header, c.num_fields)

    def metric_names(self) -> list[str]:
        """Score names: ``metric`` for one eval split, ``split/metric`` for several (MNLI m/mm)."""
        if len(self.eval_splits) == 1:
            return list(self.metrics)
        return [f"{split}/{m}" for split in self.eval_splits for m in self.metrics]


# --- the registry of tasks ------------------------------------------------------------------------

def get_task(name: str) -> TaskSpec:
    """The registered task ``name`` (a ``PluginError`` naming the known tasks otherwise)."""
    return registry.load("task", name)


def task_names(suite: str | None = None) -> list[str]:
    """Registered task names, in their suite's canonical order when known.

    Filtering by suite loads the specs (a spec's suite is data inside it).
    """
    names = registry.names("task")
    if suite is None:
        return names
    order = {n: i for i, n in enumerate(SUITE_ORDER.get(suite, ()))}
    found = []
    for n in names:
        try:
            spec = get_task(n)
        except PluginError as exc:
            if n in order:  # a built-in of this suite failed to load: say so
                raise
            log.warning("task %r left out of suite %r: %s", n, suite, exc)
            continue
        if spec.suite == suite:
            found.append(n)
    return sorted(found, key=lambda n: (order.get(n, len(order)), n))


SUITE_ORDER: dict[str, tuple[str, ...]] = {
    "glue": ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"),
    "clue": ("afqmc", "tnews", "iflytek", "cmnli", "ocnli", "cluewsc", "csl"),
}


def known_suites() -> dict[str, str]:
    """Every suite ``--suite`` accepts -> what it is: fine-tuning suites of the registered tasks (built-in
    and plugins') with their tasks, then the zero-shot minimal-pair suites."""
    from zoo.benchmarks.minimal_pairs import pair_suites

    by_suite: dict[str, list[str]] = {}
    for name in registry.names("task"):
        try:
            by_suite.setdefault(get_task(name).suite, []).append(name)
        except PluginError:
            continue
    out = {s: f"fine-tuning: {', '.join(task_names(s))}" for s in sorted(by_suite)}
    out.update({s: "zero-shot minimal pairs" for s in pair_suites()})
    return out


def resolve_tasks(suite: str | None, tasks: str | Sequence[str] | None) -> tuple[str, list[TaskSpec]]:
    """Parse ``--suite`` / ``--tasks`` (comma-separated names or ``all``) into (suite, specs).

    Without a suite it is taken from the named tasks; without tasks every task of the suite runs.
    """
    if isinstance(tasks, str):
        tasks = [t.strip().lower() for t in tasks.split(",") if t.strip()]
    tasks = list(tasks or [])
    if not tasks or tasks == ["all"]:
        suite = suite or "glue"
        names = task_names(suite)
        if not names:
            known = known_suites()
            close = difflib.get_close_matches(suite, list(known), n=1)
            raise ConfigError(f"--suite {suite!r}: no such suite; known suites: {', '.join(known)}"
                              + (f". Did you mean {close[0]!r}?" if close else ""))
        return suite, [get_task(n) for n in names]
    if "all" in tasks:
        raise ConfigError("--tasks: 'all' cannot be combined with task names")
    specs = []
    known = registry.names("task")
    for name in tasks:
        if name not in known:
            msg = f"--tasks: unknown task {name!r}; known: {', '.join(known)}"
            close = difflib.get_close_matches(name, known, n=1)
            raise ConfigError(msg + (f". Did you mean {close[0]!r}?" if close else ""))
        specs.append(get_task(name))
    suites = {s.suite for s in specs}
    if suite is None:
        if len(suites) > 1:
            raise ConfigError(f"--tasks mixes suites ({', '.join(sorted(suites))}); run one suite at a time")
        suite = suites.pop()
    else:
        wrong = [s.name for s in specs if s.suite != suite]
        if wrong:
            raise ConfigError(f"--tasks: {', '.join(wrong)} not in suite {suite!r}")
    if len({s.name for s in specs}) != len(specs):
        raise ConfigError("--tasks: a task is named twice")
    return suite, specs
