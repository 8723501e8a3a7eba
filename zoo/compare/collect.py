"""Benchmark a study's runs and collect their results into a ``ComparisonResult``: run records, the
fine-tuning suites (with the from-scratch baselines), the zero-shot suites (with their count models), and
the per-item values the paired statistics need. ``runner``'s two flows end here."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from zoo.compare.prepare import check_minimal_pairs, entered
from zoo.compare.results import ComparisonResult, ItemValues, RunInfo, item_values
from zoo.compare.study import (
    BASELINE,
    BenchOptions,
    StudyFile,
    run_state,
)
from zoo.train.config import RunConfig

log = logging.getLogger(__name__)

BenchFn = Callable[..., Any]  # zoo.benchmarks.bench.run_bench(models, ...)
BenchProgress = Callable[[], contextlib.AbstractContextManager]  # -> context giving a fine-tuning Progress


# --- shared: run records, benchmarking, baselines ------------------------------------------------------------

def run_info(run_dir: Path, name: str, recorded: dict[str, Any]) -> RunInfo:
    from zoo.runs import open_run

    run = open_run(run_dir)
    cfg: RunConfig = run.config
    state = run_state(run_dir)
    info = RunInfo(name=name, backbone=cfg.backbone, objective=cfg.objective.text, seed=cfg.train.seed,
                   path=str(run_dir), budget=cfg.train.budget.to_text(), params=run.info.get("parameters"),
                   wall_s=recorded.get("wall_s"), cpu_s=recorded.get("cpu_s"))
    if state is not None:
        info.steps, info.flops, info.tokens, info.train_time_s = (state.step, state.flops, state.tokens,
                                                                  state.train_time_s)
        info.head_flops = state.head_flops
    info.evals = [r for r in run.records("eval") if r.get("step", 0) <= info.steps]
    info.parent = (run.info.get("branch") or {}).get("parent")  # a cooldown branch's trunk
    return info


def benchmark_and_collect(runs: list[RunInfo], options: BenchOptions, out: Path, bench_fn: BenchFn | None,
                           progress: BenchProgress | None, study: StudyFile | None, *, mode: str, settings: dict[str, Any],
                           notes: list[str], command: str | None, skipped: list[dict[str, str]],
                           tokenizers: dict[str, dict[str, Any]]) -> ComparisonResult:
    """Benchmark every run on each suite of ``options``; the first suite's result carries the others'
    (``ComparisonResult.others``), and ``study.json`` gets every run's and baseline's scores of all suites."""
    results, cpu = [], {}
    for suite in options.suites:
        copies = [replace(r, scores={}, metrics={}, bench_s=0.0) for r in runs] if results else runs
        c0 = time.process_time()
        results.append(_collect_suite(copies, options.for_suite(suite), out, bench_fn, progress, mode=mode,
                                      settings=settings, notes=notes, command=command, skipped=skipped,
                                      tokenizers=tokenizers))
        cpu[results[-1].suite] = time.process_time() - c0
    if study is not None:
        study.data["bench_cpu_s"] = cpu  # this invocation's (cached results cost nothing)
        for res in results:
            for r in res.runs:
                if r.status == "done":
                    study.update(r.name, scores={**(study.run(r.name).get("scores") or {}), **r.scores},
                                 bench_s={**(study.run(r.name).get("bench_s") or {}), res.suite: r.bench_s})
            for b in res.baselines:
                old = study.data.get("baselines", {}).get(b.name, {}).get("scores") or {}
                study.update(b.name, section="baselines", backbone=b.backbone, seed=b.seed,
                             scores={**old, **b.scores})
                study.data["baselines"][b.name].setdefault("path", b.path)
        study.data["suites"] = {res.suite: res.tasks for res in results}
        study.data["scorers"] = {res.suite: res.bench["scorers"] for res in results if res.bench.get("scorers")}
        study.save()
    first, *others = results
    first.others = others
    return first


def _collect_suite(runs: list[RunInfo], options: BenchOptions, out: Path, bench_fn: BenchFn | None,
                   progress: BenchProgress | None, *, mode: str, settings: dict[str, Any], notes: list[str],
                   command: str | None, skipped: list[dict[str, str]],
                   tokenizers: dict[str, dict[str, Any]]) -> ComparisonResult:
    from zoo.benchmarks.minimal_pairs import is_pair_suite
    from zoo.benchmarks.tasks import resolve_tasks

    if is_pair_suite(options.suite):
        return _minimal_pairs_collect(runs, options, out, progress, mode=mode, settings=settings, notes=notes,
                                      command=command, skipped=skipped, tokenizers=tokenizers)
    if bench_fn is None:
        from zoo.benchmarks.bench import run_bench as bench_fn
    suite, specs = resolve_tasks(options.suite, options.tasks)
    tasks = [s.name for s in specs]
    done = [r for r in runs if r.status == "done"]
    common = {"suite": suite, "tasks": tasks, "data_dir": options.data_dir, "seeds": options.seeds,
              "overrides": list(options.overrides), "max_train_examples": options.max_train_examples,
              "max_eval_examples": options.max_eval_examples, "device": options.device, "use_cache": True}
    baselines: list[RunInfo] = []
    items: dict[str, dict[str, ItemValues]] = {}
    constant: dict[str, dict[str, float]] = {}
    bow: dict[str, dict[str, float]] = {}
    with entered(progress) as bar:
        common["progress"] = bar
        if done:
            log.info("benchmarking %d run(s) on %s", len(done), ", ".join(tasks))
            bench = bench_fn([r.path for r in done], **common)
            _fill_scores(done, bench, items)
            constant = dict(getattr(bench, "constant", {}) or {})
            bow = dict(getattr(bench, "bag_of_words", {}) or {})
        if options.baselines and done:
            baselines = _baselines(done, out, bench_fn, common, items)
    return ComparisonResult(
        out=str(out), mode=mode, suite=suite, tasks=tasks, runs=runs, baselines=baselines,
        statistic=options.statistic, settings=settings, skipped=skipped, tokenizers=tokenizers,
        notes=notes, command=command, items=items, **finetune_fields(suite, tasks, specs, options, constant, bow))


def finetune_fields(suite: str, tasks: list[str], specs: list[Any], options: BenchOptions,
                    constant: dict[str, dict[str, float]], bow: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The ``ComparisonResult`` fields of a fine-tuning suite: task titles and metrics, the benchmark's
    settings and the recipes of ``tasks``, and the constant-predictor and bag-of-words rows (``constant``,
    ``bow``: task -> metrics, for the tasks they could be computed on)."""
    from zoo.benchmarks.recipe import recipes_for
    from zoo.benchmarks.scoring import task_score

    meta = {"suite": suite, "data": options.data_dir or "hub", "fine_tune_seeds": options.seeds,
            "max_train_examples": options.max_train_examples, "max_eval_examples": options.max_eval_examples,
            "recipes": {t: r.to_dict() for t, r in recipes_for(tasks, None, options.overrides).items()}}
    return {"task_titles": {s.name: s.title for s in specs}, "task_metrics": {s.name: s.metric_names() for s in specs},
            "bench": meta, "constant_metrics": constant, "bag_of_words_metrics": bow,
            "constant": {s.name: task_score(s, constant[s.name]) for s in specs if s.name in constant},
            "bag_of_words": {s.name: task_score(s, bow[s.name]) for s in specs if s.name in bow}}


def _fill_scores(infos: list[RunInfo], result: Any, items: dict[str, dict[str, ItemValues]] | None = None) -> None:
    """Copy a ``BenchResult``'s per-model task scores (medians over fine-tuning seeds) into ``infos``
    (same order as the models given to ``run_bench``), and per-item values into ``items`` (run name ->
    task -> values) where the result holds predictions and references."""
    from zoo.benchmarks.tasks import get_task

    if len(result.models) != len(infos):
        raise RuntimeError(f"run_bench returned {len(result.models)} models for {len(infos)} inputs")
    references = getattr(result, "references", {}) or {}
    failed = getattr(result, "failed", {}) or {}
    for info, model in zip(infos, result.models, strict=True):
        if model.name in failed:  # one run's failure keeps the others' results; the report marks it
            info.status, info.error = "failed", f"not benchmarked: {failed[model.name]}"
            continue
        for task, tr in model.tasks.items():
            info.scores[task] = float(tr.score())
            info.metrics[task] = {m: float(s["median"]) for m, s in tr.summary().items()}
            info.bench_s += float(sum(s.seconds for s in tr.seeds))
            if items is not None and task in references:
                spec = get_task(task)
                values = item_values(spec.metrics, spec.is_regression, len(spec.eval_splits),
                                     [s.predictions for s in tr.seeds], references[task])
                if values is not None:
                    items.setdefault(info.name, {})[task] = values


def _baselines(done: list[RunInfo], out: Path, bench_fn: BenchFn, common: dict[str, Any],
               items: dict[str, dict[str, ItemValues]] | None = None) -> list[RunInfo]:
    """Per backbone and seed: the run's architecture and tokenizer, randomly initialised with that seed,
    fine-tuned exactly like the pretrained runs (results cached under ``out/baselines/``)."""
    import torch

    from zoo.benchmarks.source import from_backbone
    from zoo.runs import open_run

    templates: dict[str, RunInfo] = {}
    seeds: dict[str, list[int]] = {}
    for r in done:
        templates.setdefault(r.backbone, r)
        if r.seed not in seeds.setdefault(r.backbone, []):
            seeds[r.backbone].append(r.seed)
    infos, sources = [], []
    for backbone, template in templates.items():
        run = open_run(template.path)
        for seed in sorted(seeds[backbone]):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)  # the trainer seeds the same way before building the backbone
                bb = run.build_backbone()
            name = f"{backbone}-scratch-seed{seed}"
            path = out / "baselines" / name
            sources.append(from_backbone(bb, run.tokenizer(), run.special_tokens(), name=name, path=path))
            infos.append(RunInfo(name=name, backbone=backbone, objective=BASELINE, seed=seed, path=str(path),
                                 baseline=True, params=sum(p.numel() for p in bb.parameters())))
    log.info("benchmarking %d from-scratch baseline(s)", len(sources))
    _fill_scores(infos, bench_fn(sources, **common), items)
    return infos


# --- zero-shot minimal pairs ----------------------------------------------------------------------------------

def _minimal_pairs_collect(runs: list[RunInfo], options: BenchOptions, out: Path, progress: BenchProgress | None,
                           *, mode: str, settings: dict[str, Any], notes: list[str], command: str | None,
                           skipped: list[dict[str, str]], tokenizers: dict[str, dict[str, Any]]) -> ComparisonResult:
    """Score every run zero-shot; the comparison's "tasks" are the paradigms (so the average is the macro
    average over paradigms), grouped into phenomena for the report. The baseline of each backbone and
    seed s is a random init with seed s of that seed's first run (heads included), scored with that run's
    scorer. Per-pair correctness of every model becomes the
    item set "all pairs", for the paired bootstrap over pairs."""
    from zoo.benchmarks.zeroshot import run_minimal_pairs

    check_minimal_pairs(options)
    done = [r for r in runs if r.status == "done"]
    items: dict[str, dict[str, ItemValues]] = {}
    result = None
    baselines = []
    with entered(progress) as bar:
        if done:
            result = run_minimal_pairs([r.path for r in done], options.suite, options.data_dir,
                                       options.max_eval_examples, device=options.device, progress=bar)
            scored = _by_path(result)
            for info in done:
                m = scored.get(str(Path(info.path).resolve()))
                if m is None:  # one run's failure keeps the others' results; the report marks it
                    info.status = "failed"
                    info.error = f"not scored: {result.failed.get(Path(info.path).name, 'scoring failed')}"
                    continue
                _pairs_scores(info, m, items)
            done = [r for r in done if r.status == "done"]
        templates: dict[tuple[str, int], RunInfo] = {}
        for r in done:
            templates.setdefault((r.backbone, r.seed), r)
        for seed in sorted({s for _, s in templates}) if options.baselines else []:
            group = [t for (_, s), t in templates.items() if s == seed]
            scratch = run_minimal_pairs([t.path for t in group], options.suite, options.data_dir,
                                        options.max_eval_examples, from_scratch=True, scratch_seed=seed,
                                        device=options.device, write_reports=False, progress=bar,
                                        include_models=False, baselines=False)
            by_path = _by_path(scratch)
            for t in group:
                if (m := by_path.get(str(Path(t.path).resolve()))) is None:
                    continue
                info = RunInfo(name=f"{t.backbone}-scratch-seed{seed}", backbone=t.backbone, objective=BASELINE,
                               seed=seed, path=t.path, baseline=True)
                _pairs_scores(info, m, items)
                baselines.append(info)
    paradigms = result.paradigms if result else []
    bench_meta = {"suite": options.suite, "kind": "minimal-pairs", "data": options.data_dir or "hub",
                  "max_eval_examples": options.max_eval_examples, "groups": result.groups if result else {},
                  "scorers": {m.name: m.scorers[0] for m in result.models} if result else {}}
    if result is not None:
        bench_meta.update(pair_baselines_meta(result, [*done, *baselines], items))
    return ComparisonResult(
        out=str(out), mode=mode, suite=options.suite or "", tasks=paradigms, task_titles={p: p for p in paradigms},
        task_metrics={p: ["accuracy"] for p in paradigms}, runs=runs, baselines=baselines,
        statistic=options.statistic, settings=settings, skipped=skipped, tokenizers=tokenizers, bench=bench_meta,
        notes=notes, command=command, items=items)


def _by_path(result: Any) -> dict[str, Any]:
    """A minimal-pair result's scored models by resolved run path."""
    return {str(Path(m.path).resolve()): m for m in result.models if m.path is not None}


ALL_PAIRS = "all pairs"  # the item set of a zero-shot suite: every pair of every paradigm


def pair_baselines_meta(result: Any, infos: list[RunInfo], items: dict[str, dict[str, ItemValues]]) -> dict[str, Any]:
    """The trivial baselines of a minimal-pair result for the report (``bench`` keys): count models and the
    length heuristic per paradigm, their accuracy on equal-length pairs, and each model's (from its
    per-pair correctness and its tokenizer's lengths); which tokenizer each baseline and each run used
    (``count_model_tokenizers``, ``run_tokenizers``: tokenizer hashes), so that an arm is set against the
    count models of its own tokenizer."""
    from zoo.runs import open_run

    equal_length: dict[str, float] = {}
    pairs = 0
    hashes: dict[str, str] = {}
    for info in infos:
        if info.path not in hashes:
            hashes[info.path] = open_run(info.path).tokenizer_hash()
        masks = result.equal_masks.get(hashes[info.path])
        values = items.get(info.name, {}).get(ALL_PAIRS)
        if masks is None or values is None:
            continue
        mask = np.concatenate([masks[p] for p in sorted(masks)])
        pairs = int(mask.sum())
        if pairs:
            equal_length[info.name] = float(values.values[0][mask].mean())
    return {"baselines": result.baselines, "baselines_equal_length": result.baseline_equal_length,
            "baseline_notes": result.baseline_notes, "equal_length": equal_length, "equal_pairs": pairs,
            "count_model_tokenizers": result.baseline_tokenizers,
            "run_tokenizers": {info.name: hashes[info.path] for info in infos}}


def _pairs_scores(info: RunInfo, model: Any, items: dict[str, dict[str, ItemValues]] | None = None) -> None:
    """A minimal-pair result's headline accuracies as the run's task scores, and its per-pair correctness
    (paradigms in name order, pairs in file order) as the item set ``ALL_PAIRS`` in ``items``."""
    head = model.scorers[0]
    for p, acc in model.accuracy[head].items():
        info.scores[p] = acc
        info.metrics[p] = {"accuracy": acc}
    info.bench_s += model.seconds
    correct = model.correct.get(head, {})
    if items is not None and correct:
        items.setdefault(info.name, {})[ALL_PAIRS] = pair_items(correct)


def pair_items(correct: dict[str, str]) -> ItemValues:
    """Per-pair correctness (paradigm -> its pairs' flags) as one item set: paradigms in name order, pairs in
    file order, each pair's paradigm its stratum (pairs are resampled within their paradigm)."""
    from zoo.benchmarks.pairs_results import flags

    order = sorted(correct)
    values = flags("".join(correct[p] for p in order)).astype(float)
    strata = tuple(p for p in order for _ in range(len(correct[p])))
    return ItemValues("mean", values[None, :], strata)  # (1 fine-tune, N)
