"""``zoo bench``: fine-tune every model on every task for N seeds, cache, aggregate, report.

Results are cached per (checkpoint id, tokenizer, task, seed, recipe hash, data fingerprint) in
``<run>/bench-cache/`` (zero-shot suites per scorer and paradigm, see ``zeroshot.py``), so a rerun only
computes what is missing. Each model directory gets
``bench.json`` (per suite: per-task per-seed scores, medians, spreads, the suite average) and
``bench.md`` (the same as Markdown tables).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from zoo.benchmarks.bench_file import (
    CACHE_DIR,
    CACHE_VERSION,
    hash_key,
    merge_suite_report,
    write_result_json,
)
from zoo.benchmarks.data import TaskData, load_task_data
from zoo.benchmarks.finetune import Prepared, Verbalized, finetune, prepare
from zoo.benchmarks.finetune_results import BenchResult, ModelResult, SeedScores, TaskResult
from zoo.benchmarks.recipe import Progress, Recipe, recipes_for, resolve_device
from zoo.benchmarks.scoring import (
    bag_of_words_scores,
    constant_predictor_scores,
)
from zoo.benchmarks.source import ModelSource, open_source
from zoo.benchmarks.tasks import TaskSpec, resolve_tasks
from zoo.errors import ConfigError, ZooError

log = logging.getLogger(__name__)

# --- cache -----------------------------------------------------------------------------------------------

def cache_key(source: ModelSource, task: str, seed: int, recipe: Recipe, fingerprint: str, device: str) -> str:
    """What a result depends on; the device type too (CUDA fine-tunes under bf16 autocast, CPU in fp32)."""
    return hash_key({"v": CACHE_VERSION, "checkpoint": source.checkpoint_id, "tokenizer": source.tokenizer_hash,
                     "task": task, "seed": seed, "recipe": recipe.hash(), "data": fingerprint,
                     "device": resolve_device(device).type})


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
                write_result_json(path, {"key": key, **asdict(scores), "task": spec.name, "checkpoint_id": src.checkpoint_id,
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
