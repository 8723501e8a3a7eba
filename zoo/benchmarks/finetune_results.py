"""Results of fine-tuning suites (GLUE, CLUE, a plugin's tasks): per task and seed, per model, per suite;
their ``bench.json`` form and Markdown tables."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from zoo import __version__
from zoo.benchmarks.accumulate import recipe_id, recipe_label
from zoo.benchmarks.model_record import ModelRecord
from zoo.benchmarks.scoring import (
    BAG_OF_WORDS,
    suite_average,
    task_score,
)
from zoo.benchmarks.tasks import get_task, task_names
from zoo.benchmarks.text_to_text import method_of

# --- results -------------------------------------------------------------------------------------------

@dataclass
class SeedScores:
    seed: int
    scores: dict[str, float]
    train_examples: int
    eval_examples: dict[str, int]
    seconds: float
    cached: bool = False
    predictions: dict[str, list[float]] = field(default_factory=dict)  # eval split -> per-example prediction


@dataclass
class TaskResult:
    task: str
    metrics: list[str]  # score names (``split/metric`` for MNLI)
    seeds: list[SeedScores]
    recipe: dict[str, Any]
    data_fingerprint: str
    created: float = field(default_factory=time.time)  # when it was benchmarked (bench.json keeps the newest)

    def values(self, metric: str) -> list[float]:
        return [s.scores[metric] for s in self.seeds]

    def summary(self) -> dict[str, dict[str, float]]:
        """metric -> median, min, max, std (population std over seeds; 0 for one seed)."""
        out = {}
        for m in self.metrics:
            v = self.values(m)
            out[m] = {"median": statistics.median(v), "min": min(v), "max": max(v),
                      "std": statistics.pstdev(v) if len(v) > 1 else 0.0}
        return out

    def score(self) -> float:
        """The task's single number: mean over its metrics of their medians over seeds."""
        summary = self.summary()
        return task_score(get_task(self.task), {m: s["median"] for m, s in summary.items()})


@dataclass
class ModelResult(ModelRecord):
    tasks: dict[str, TaskResult] = field(default_factory=dict)

    def average(self) -> float | None:
        return suite_average({t: r.score() for t, r in self.tasks.items()})


@dataclass
class BenchResult:
    """What ``run_bench`` returns: per model, per task, per-seed scores and their aggregates."""

    suite: str
    tasks: list[str]
    seeds: list[int]
    models: list[ModelResult]
    data: str  # --data-dir or "hub"
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    references: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # task -> eval split -> labels
    constant: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> metric -> constant predictor
    failed: dict[str, str] = field(default_factory=dict)  # model name -> why it could not be benchmarked
    written: list[str] = field(default_factory=list)  # the report files written (bench.json, bench.md per model)
    bag_of_words: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> metric -> bag-of-words model

    def to_dict(self) -> dict[str, Any]:
        models = []
        for m in self.models:
            tasks = {}
            for name, r in m.tasks.items():
                tasks[name] = {"task": name, "metrics": r.metrics, "summary": r.summary(), "score": r.score(),
                               "seeds": [{k: v for k, v in asdict(s).items() if k != "predictions"} for s in r.seeds], "recipe": r.recipe,
                               "recipe_id": recipe_id(r.recipe), "method": method_of(r.recipe),
                               "data_fingerprint": r.data_fingerprint,
                               "data": self.data, "max_train_examples": self.max_train_examples,
                               "max_eval_examples": self.max_eval_examples, "created": r.created}
            models.append({**m.record(), "average": m.average(), "tasks": tasks})
        return {"suite": self.suite, "tasks": self.tasks, "seeds": self.seeds, "data": self.data,
                "max_train_examples": self.max_train_examples, "max_eval_examples": self.max_eval_examples,
                "zoo_version": __version__, "average_definition": average_definition(self.suite),
                "models": models,
                "constant": self.constant, "bag_of_words": self.bag_of_words}

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Columns and rows of the side-by-side table: one row per task metric, one column per model;
        cells are ``median`` (x100) with ``[min-max]`` over seeds when there are several. The last
        column is the constant predictor (majority class of the training labels) when known."""
        const, bow = bool(self.constant), bool(self.bag_of_words)
        columns = ["task", "metric", *(f"{m.name} [failed]" if m.name in self.failed else m.name for m in self.models),
                   *([CONSTANT_COLUMN] if const else []), *([BOW_COLUMN] if bow else [])]
        rows = []
        for task in self.tasks:
            spec = get_task(task)
            for metric in spec.metric_names():
                row = [spec.title, metric]
                for m in self.models:
                    r = m.tasks.get(task)
                    row.append(_cell(r.summary()[metric]) if r else "-")
                for on, table in ((const, self.constant), (bow, self.bag_of_words)):
                    if on:
                        value = table.get(task, {}).get(metric)
                        row.append(f"{100 * value:.1f}" if value is not None else "-")
                rows.append(row)
        n = len(self.tasks)
        # GLUE's score is the mean over its nine tasks; CLUE's official score also counts reading
        # comprehension tasks that are not here, so it is only ever an average of the tasks run.
        full = self.suite == "glue" and n == len(task_names(self.suite))
        label = "GLUE score" if full else f"average ({n} task{'s' if n > 1 else ''})"
        rows.append([label, "", *(f"{100 * a:.1f}" if (a := m.average()) is not None else "-" for m in self.models),
                     *([self._baseline_average(self.constant)] if const else []),
                     *([self._baseline_average(self.bag_of_words)] if bow else [])])
        return columns, rows

    def _baseline_average(self, table: dict[str, dict[str, float]]) -> str:
        if any(t not in table for t in self.tasks):
            return "-"
        avg = suite_average({t: task_score(get_task(t), table[t]) for t in self.tasks})
        return f"{100 * avg:.1f}" if avg is not None else "-"

    def markdown(self) -> str:
        columns, rows = self.table()
        lines = [f"## {self.suite.upper()} ({', '.join(self.tasks)})", "",
                 f"Median over seeds {', '.join(map(str, self.seeds))}, x100; [min-max] over seeds. "
                 f"Data: {self.data}." + (" Constant: the constant predictor, the majority class of the training "
                                          "labels (regression: their mean), official metrics." if self.constant else "")
                 + (f" Bag of words: {BAG_OF_WORDS}, trained on the same training examples." if self.bag_of_words
                    else ""),
                 "",
                 "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines += ["", "Fine-tuning recipe of each result:", ""]
        for m in self.models:
            lines += [f"- {m.name}, {get_task(t).title}: {recipe_label(r.recipe)}" for t, r in m.tasks.items()]
        return "\n".join(lines) + "\n"


CONSTANT_COLUMN = "constant"
BOW_COLUMN = "bag of words"
AVERAGE_DEFINITIONS = {
    "glue": ("GLUE leaderboard: each task contributes the mean of its metrics (MRPC/QQP accuracy and F1, STS-B "
             "Pearson and Spearman, MNLI matched and mismatched accuracy); the average is the unweighted mean over "
             "the tasks run"),
    "clue": ("CLUE classification tasks: each task contributes its accuracy; the average is the unweighted mean "
             "over the tasks run (the CLUE leaderboard score also counts reading-comprehension tasks that are not "
             "run here, so this is never a CLUE score)"),
}


def average_definition(suite: str) -> str:
    """How the ``average`` of a suite's results is computed, for ``bench.json``."""
    return AVERAGE_DEFINITIONS.get(suite, "each task contributes the mean of its metrics; the average is the "
                                          "unweighted mean over the tasks run")


def _cell(s: dict[str, float]) -> str:
    if s["min"] == s["max"]:
        return f"{100 * s['median']:.1f}"
    return f"{100 * s['median']:.1f} [{100 * s['min']:.1f}-{100 * s['max']:.1f}]"


def bench_result_from_dict(d: dict[str, Any]) -> BenchResult:
    """The inverse of ``BenchResult.to_dict`` (e.g. to read a ``bench.json`` suite entry back)."""
    models = []
    for m in d["models"]:
        tasks = {name: TaskResult(name, t["metrics"], [SeedScores(**s) for s in t["seeds"]], t["recipe"],
                                  t["data_fingerprint"], t.get("created", 0.0)) for name, t in m["tasks"].items()}
        models.append(ModelResult(*ModelRecord.read(m), tasks))
    return BenchResult(d["suite"], d["tasks"], d["seeds"], models, d["data"], d.get("max_train_examples"),
                       d.get("max_eval_examples"), constant=d.get("constant", {}),
                       bag_of_words=d.get("bag_of_words", {}))
