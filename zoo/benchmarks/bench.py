"""``zoo bench``: fine-tune every model on every task for N seeds, cache, aggregate, report.

Results are cached per (checkpoint id, tokenizer, task, seed, recipe hash, data fingerprint) in
``<run>/bench-cache/`` (zero-shot suites per scorer and paradigm, see ``zeroshot.py``), so a rerun only
computes what is missing. Each model directory gets
``bench.json`` (per suite: per-task per-seed scores, medians, spreads, the suite average) and
``bench.md`` (the same as Markdown tables).
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from zoo import __version__, fileio
from zoo.benchmarks.accumulate import merge_suite, recipe_id, recipe_label
from zoo.benchmarks.data import TaskData, load_task_data
from zoo.benchmarks.finetune import Prepared, Verbalized, finetune, prepare
from zoo.benchmarks.recipe import Progress, Recipe, recipes_for, resolve_device
from zoo.benchmarks.scoring import (
    BAG_OF_WORDS,
    bag_of_words_scores,
    constant_predictor_scores,
    suite_average,
    task_score,
)
from zoo.benchmarks.source import ModelSource, open_source
from zoo.benchmarks.tasks import TaskSpec, get_task, resolve_tasks
from zoo.benchmarks.text_to_text import method_of
from zoo.errors import ConfigError, ZooError
from zoo.train.lock import BenchLock

log = logging.getLogger(__name__)

CACHE_DIR = "bench-cache"
CACHE_VERSION = 1


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
class ModelResult:
    name: str
    path: str | None
    backbone: str
    objective: str | None
    checkpoint_id: str
    from_scratch: bool
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
            models.append({"name": m.name, "path": m.path, "backbone": m.backbone, "objective": m.objective,
                           "checkpoint_id": m.checkpoint_id, "from_scratch": m.from_scratch,
                           "average": m.average(), "tasks": tasks})
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
        full = self.suite == "glue" and n == len(_suite_tasks(self.suite))
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


def _suite_tasks(suite: str) -> list[str]:
    from zoo.benchmarks.tasks import task_names

    return task_names(suite)


# --- cache -----------------------------------------------------------------------------------------------

def cache_key(source: ModelSource, task: str, seed: int, recipe: Recipe, fingerprint: str, device: str) -> str:
    """What a result depends on; the device type too (CUDA fine-tunes under bf16 autocast, CPU in fp32)."""
    return hash_key({"v": CACHE_VERSION, "checkpoint": source.checkpoint_id, "tokenizer": source.tokenizer_hash,
                     "task": task, "seed": seed, "recipe": recipe.hash(), "data": fingerprint,
                     "device": resolve_device(device).type})


def hash_key(parts: dict[str, Any]) -> str:
    """sha256 of what a cached result depends on (JSON, sorted keys)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _cache_path(source: ModelSource, task: str, seed: int, key: str) -> Path | None:
    if source.path is None:
        return None
    kind = "scratch-" if source.from_scratch else ""
    return source.path / CACHE_DIR / f"{task}-{kind}seed{seed}-{key[:16]}.json"


def _read_cache(path: Path | None, key: str) -> SeedScores | None:
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key") != key:
            return None
        return SeedScores(seed=data["seed"], scores={k: float(v) for k, v in data["scores"].items()},
                          train_examples=data["train_examples"], eval_examples=data["eval_examples"],
                          seconds=data["seconds"], cached=True,
                          predictions={k: list(v) for k, v in data.get("predictions", {}).items()})
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        log.warning("ignoring unreadable cached result %s (%s); recomputing", path, exc)
        return None


def _write_json(path: Path, data: Any) -> None:
    """Write atomically: a temporary file renamed over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fileio.write_json(path, data, indent=2, ensure_ascii=False)


# --- the benchmark --------------------------------------------------------------------------------------

def run_bench(
    models: Sequence[str | Path | ModelSource | Any],
    suite: str | None = "glue",
    tasks: str | Sequence[str] | None = None,
    data_dir: str | Path | None = None,
    seeds: int = 1,
    recipe: Recipe | None = None,
    overrides: Sequence[str] = (),
    max_train_examples: int | None = None,
    max_eval_examples: int | None = None,
    device: str = "auto",
    from_scratch: bool = False,
    use_cache: bool = True,
    write_reports: bool = True,
    progress: Progress | None = None,
) -> BenchResult:
    """Benchmark each model (a run or Hugging Face directory, a ``zoo.runs.Run``, or a
    ``ModelSource``) on ``tasks`` of ``suite``: ``seeds`` fine-tunes each (seeds 0..N-1), scored on
    the dev sets.

    ``recipe`` is the global recipe, ``overrides`` are ``key=value`` / ``task.key=value`` changes
    to it. With ``from_scratch`` every model is followed by a randomly initialised copy of its
    architecture (same tokenizer and recipe). Reports are written into each model's directory.
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    if not models:
        raise ConfigError("no model to benchmark: pass a run directory")
    suite, specs = resolve_tasks(suite, tasks)
    recipes = recipes_for([s.name for s in specs], recipe, overrides)
    sources: list[ModelSource] = []
    for m in models:
        if isinstance(m, ModelSource):
            sources.append(m)
        else:  # a path, or an object with one (a ``zoo.runs.Run``)
            sources.append(open_source(m if isinstance(m, (str, Path)) else m.path))
    names = [s.name for s in sources]
    for src in sources:  # runs/a/final and runs/b/final: tell the columns apart by their paths
        if names.count(src.name) > 1 and src.path is not None:
            src.name = str(src.path)
    if from_scratch:
        sources = [s for src in sources for s in (src, src.scratch())]
    task_data = {s.name: _task_data(s, data_dir, max_train_examples, max_eval_examples) for s in specs}
    result = BenchResult(suite=suite, tasks=[s.name for s in specs], seeds=list(range(seeds)), models=[],
                         data=str(Path(data_dir).resolve()) if data_dir is not None else "hub",
                         max_train_examples=max_train_examples, max_eval_examples=max_eval_examples,
                         references={t: {k: [ex.label for ex in split.examples] for k, split in d.evals.items()}
                                     for t, d in task_data.items()},
                         constant={t: constant_predictor_scores(d) for t, d in task_data.items()},
                         bag_of_words={t: bag_of_words_scores(d) for t, d in task_data.items()})
    for src in sources:
        mres = ModelResult(name=src.name, path=str(src.path) if src.path else None, backbone=src.backbone_name,
                           objective=src.objective, checkpoint_id=src.checkpoint_id, from_scratch=src.from_scratch)
        try:
            for spec in specs:
                mres.tasks[spec.name] = _bench_task(src, spec, task_data[spec.name], recipes[spec.name], seeds,
                                                    device, use_cache, progress)
        except ZooError as exc:  # one model's failure keeps the others' results; its column says so
            log.error("%s: not benchmarked: %s", src.name, exc)
            result.failed[src.name] = str(exc)
            mres.tasks = {}
        result.models.append(mres)
    if write_reports:
        result.written = [str(p) for p in write_model_reports(result)]
    return result


def _task_data(spec: TaskSpec, data_dir: str | Path | None, max_train: int | None,
               max_eval: int | None) -> TaskData:
    data = load_task_data(spec, data_dir)
    if max_train is not None or max_eval is not None:
        data = data.limited(max_train, max_eval)
        log.info("%s: using %d training and %s evaluation examples", spec.name, len(data.train),
                 "/".join(str(len(s)) for s in data.evals.values()))
    return data


def _bench_task(src: ModelSource, spec: TaskSpec, data: TaskData, recipe: Recipe, seeds: int, device: str,
                use_cache: bool, progress: Progress | None) -> TaskResult:
    fingerprint = data.fingerprint()
    recipe = resolve_recipe_method(recipe, src.backbone_name)
    prepared: Prepared | Verbalized | None = None
    out = []
    for seed in range(seeds):
        key = cache_key(src, spec.name, seed, recipe, fingerprint, device)
        path = _cache_path(src, spec.name, seed, key)
        hit = _read_cache(path, key) if use_cache else None
        if hit is not None:
            log.info("%s %s seed %d: cached (%s)", src.name, spec.name, seed, path)
            out.append(hit)
            continue
        backbone = src.backbone(seed)
        if prepared is None:
            prepared = prepare(data, src.tokenizer, src.special, backbone, recipe)
        t0 = time.perf_counter()
        tuned = replace(recipe, attention=src.attention(recipe.attention, backbone.family))
        r = finetune(backbone, src.tokenizer, src.special, data, tuned, seed, device, progress, prepared,
                     label=f"{src.name}: {spec.name} seed {seed}")
        scores = SeedScores(seed, r.scores, r.train_examples, r.eval_examples, time.perf_counter() - t0,
                            predictions=r.predictions)
        log.info("%s %s seed %d: %s (%.1f s)", src.name, spec.name, seed,
                 ", ".join(f"{k} {100 * v:.1f}" for k, v in r.scores.items()), scores.seconds)
        out.append(scores)
        if path is not None:
            try:
                _write_json(path, {"key": key, **asdict(scores), "task": spec.name, "checkpoint_id": src.checkpoint_id,
                                   "recipe": recipe.to_dict(), "data_fingerprint": fingerprint,
                                   "train_loss": r.train_loss, "steps": r.steps, "created": time.time()})
            except OSError as exc:
                log.warning("cannot write the result cache %s (%s); results are not cached", path, exc)
    return TaskResult(spec.name, spec.metric_names(), out, recipe.to_dict(), fingerprint)


def resolve_recipe_method(recipe: Recipe, backbone_name: str) -> Recipe:
    """``method = "auto"`` made explicit for an encoder-decoder (text-to-text, as T5 fine-tuned), so its
    results record the method and never share a cache entry with encoder-head results."""
    if recipe.method != "auto":
        return recipe
    from zoo import registry
    from zoo.family import Family

    if registry.load("backbone", backbone_name).family == Family.ENCODER_DECODER:
        return replace(recipe, method="text-to-text")
    return recipe


def write_model_reports(result: BenchResult) -> list[Path]:
    """``bench.json`` and ``bench.md`` in each model's directory (a scratch baseline goes beside its
    model). Other suites already in ``bench.json`` are kept; this suite's results are merged into its
    entry (``accumulate.merge_suite``: newest per task and recipe)."""
    written = []
    by_path: dict[str, list[ModelResult]] = {}
    for m in result.models:
        if m.path is not None and m.name not in result.failed:
            by_path.setdefault(m.path, []).append(m)
    for path, models in by_path.items():
        own = BenchResult(result.suite, result.tasks, result.seeds, models, result.data,
                          result.max_train_examples, result.max_eval_examples, constant=result.constant,
                          bag_of_words=result.bag_of_words)
        written += merge_suite_report(Path(path), result.suite, own.to_dict())
    return written


def merge_suite_report(directory: Path, suite: str, entry: dict[str, Any]) -> list[Path]:
    """Merge ``entry`` into ``directory/bench.json`` under ``suite`` (other suites kept; fine-tuning results
    accumulate per task and recipe, see ``accumulate.merge_suite``) and rewrite
    ``bench.md`` from all of them. Returns the files written (none when the directory is read-only)."""
    with BenchLock(directory):  # two benchmarks of one model merge one after the other
        return _merge_suite_report(directory, suite, entry)


def _merge_suite_report(directory: Path, suite: str, entry: dict[str, Any]) -> list[Path]:
    target = directory / "bench.json"
    suites: dict[str, Any] = {}
    if target.is_file():
        try:
            suites = json.loads(target.read_text(encoding="utf-8")).get("suites", {})
        except (OSError, json.JSONDecodeError, AttributeError):
            log.warning("%s is unreadable; rewriting it", target)
    previous = suites.get(suite)
    if entry.get("kind") == "minimal-pairs":
        suites[suite] = entry  # zero-shot suites have no recipes: the newest scoring replaces the last
    else:
        suites[suite] = merge_suite(previous if isinstance(previous, dict) else {}, entry, _suite_tasks(suite))
    try:
        _write_json(target, {"suites": suites})
        md = directory / "bench.md"
        fileio.write_text(md, "# Benchmark results\n\n" + "\n".join(_markdown_of(d) for d in suites.values()))
    except OSError as exc:
        log.warning("cannot write results into %s (%s)", directory, exc)
        return []
    return [target, md]


def _markdown_of(suite_dict: dict[str, Any]) -> str:
    try:
        if suite_dict.get("kind") == "minimal-pairs":
            from zoo.benchmarks.zeroshot import pairs_result_from_dict

            return pairs_result_from_dict(suite_dict).markdown()
        text = bench_result_from_dict(suite_dict).markdown()
        others = [(m["name"], t) for m in suite_dict["models"] for t in m.get("other_recipes", [])]
        if others:
            text += "\nEarlier results with other recipes (kept, not in the table):\n\n" + "".join(
                f"- {name}, {get_task(t['task']).title}: {100 * t['score']:.1f} with {recipe_label(t['recipe'])}\n"
                for name, t in others)
        return text
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("bench.json: skipping an unreadable suite entry in bench.md (%s)", exc)
        return ""


def bench_result_from_dict(d: dict[str, Any]) -> BenchResult:
    """The inverse of ``BenchResult.to_dict`` (e.g. to read a ``bench.json`` suite entry back)."""
    models = []
    for m in d["models"]:
        tasks = {name: TaskResult(name, t["metrics"], [SeedScores(**s) for s in t["seeds"]], t["recipe"],
                                  t["data_fingerprint"], t.get("created", 0.0)) for name, t in m["tasks"].items()}
        models.append(ModelResult(m["name"], m["path"], m["backbone"], m["objective"], m["checkpoint_id"],
                                  m["from_scratch"], tasks))
    return BenchResult(d["suite"], d["tasks"], d["seeds"], models, d["data"], d.get("max_train_examples"),
                       d.get("max_eval_examples"), constant=d.get("constant", {}),
                       bag_of_words=d.get("bag_of_words", {}))
