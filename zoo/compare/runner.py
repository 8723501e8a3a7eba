"""Run a comparison: train the grid at one budget (resumably), benchmark every run and a from-scratch
baseline per backbone and seed, and write the report.

``run_study`` trains; ``compare_runs`` takes runs that already exist. Both benchmark through
``run_bench`` (its result cache makes a rerun compute only what is missing) and return a
``ComparisonResult``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from zoo.compare import branches
from zoo.compare.results import ComparisonResult, ItemValues, RunInfo, item_values
from zoo.compare.study import (
    BASELINE,
    BenchOptions,
    Cell,
    Grid,
    StudyFile,
    StudySettings,
    auto_evals,
    base_config,
    claim_study,
    expand_grid,
    reuse_diffs,
    run_config,
    run_name,
    run_state,
    shared_tokenizer_config,
    slug,
    study_dir,
)
from zoo.errors import ConfigError, ZooError
from zoo.train.config import Budget, RunConfig
from zoo.train.interrupt import TrainingInterrupted
from zoo.train.resolve import resolve

log = logging.getLogger(__name__)

TrainFn = Callable[..., Any]  # zoo.train.trainer.train(cfg, callback=...)
BenchFn = Callable[..., Any]  # zoo.benchmarks.bench.run_bench(models, ...)
TrainProgress = Callable[[str], contextlib.AbstractContextManager]  # title -> context giving a record callback
BenchProgress = Callable[[], contextlib.AbstractContextManager]  # -> context giving a fine-tuning Progress


def absolute_paths(settings: StudySettings) -> StudySettings:
    """Local corpus and benchmark paths made absolute, so run configs do not depend on the directory
    the command runs from (``hf:`` sources are left alone)."""
    data = settings.data
    if data and not data.startswith("hf:") and Path(data).expanduser().exists():
        data = str(Path(data).expanduser().resolve())
    bench = settings.bench
    if bench.data_dir and Path(bench.data_dir).expanduser().exists():
        bench = replace(bench, data_dir=str(Path(bench.data_dir).expanduser().resolve()))
    return replace(settings, data=data, bench=bench)


# --- the study ---------------------------------------------------------------------------------------------

def run_study(settings: StudySettings, out: str | Path, *, command: str | None = None,
              train_fn: TrainFn | None = None, bench_fn: BenchFn | None = None,
              train_progress: TrainProgress | None = None, bench_progress: BenchProgress | None = None,
              write_report: bool = True) -> ComparisonResult:
    """Train every compatible (objective, backbone) pair for every seed at ``settings.budget``, benchmark
    them and the from-scratch baselines, and write ``report.md``, plots and ``results.json`` into ``out``.
    With ``settings.hours`` (and no budget) the budget, layout and pairs scored are planned first
    (``zoo.compare.planning``); with ``settings.jobs``/``threads`` runs train in worker processes.

    Rerunning with the same settings resumes: finished runs (a checkpoint that reached the budget) are
    reused, interrupted runs continue from their newest checkpoint, fine-tuning results come from the cache.
    ``out`` is locked for the whole command (a second ``zoo compare`` into it is refused).
    """
    if settings.hours is not None and settings.budget is not None:
        raise ConfigError(f"--budget {settings.budget} and --hours {settings.hours:g} both size the runs; give one")
    with claim_study(study_dir(out)):
        return _run_study(settings, out, command=command, train_fn=train_fn, bench_fn=bench_fn,
                          train_progress=train_progress, bench_progress=bench_progress, write_report=write_report)


def _run_study(settings: StudySettings, out: str | Path, *, command: str | None, train_fn: TrainFn | None,
               bench_fn: BenchFn | None, train_progress: TrainProgress | None, bench_progress: BenchProgress | None,
               write_report: bool) -> ComparisonResult:
    t_start, c_start = time.perf_counter(), time.process_time()
    if train_fn is None:
        from zoo.train.trainer import train as train_fn
    out = Path(out).resolve()
    settings = absolute_paths(settings)
    _check_tasks(settings.bench)
    grid = expand_grid(settings.objectives, settings.backbones)
    for s in grid.skipped:
        log.info("skipping %s x %s: %s", s.objective, s.backbone, s.reason)
    study = StudyFile(out)
    study.load_or_start(settings, grid, command)
    t0 = time.perf_counter()
    tokenizers = _ensure_tokenizers(settings, grid, out, study)
    phase_time(study, "tokenizers", time.perf_counter() - t0)
    if settings.hours is not None:
        from zoo.compare.planning import apply_plan, plan_for

        settings = apply_plan(settings, plan_for(settings, grid, tokenizers, out, study), study)
    budget = settings.budget_spec

    order = [(cell, seed) for seed in settings.seeds for cell in grid.cells]  # a partial study covers all cells
    t_train = time.perf_counter()
    infos = _train_grid(settings, grid, order, tokenizers, out, study, train_fn, train_progress)
    phase_time(study, "train", time.perf_counter() - t_train)
    runs = [infos[n] for c in grid.cells for s in settings.seeds
            for n in (branches.model_names(settings, c, s) if settings.budgets else [run_name(c, s)])]

    notes = _budget_notes(budget)
    t_bench = time.perf_counter()
    result = _benchmark_and_collect(runs, settings.bench, out, bench_fn, bench_progress, study, mode="study",
                                    settings=settings.to_dict(), notes=notes, command=command,
                                    skipped=[{"objective": s.objective, "backbone": s.backbone, "reason": s.reason}
                                             for s in grid.skipped],
                                    tokenizers=study.data.get("tokenizers", {}))
    phase_time(study, "bench", time.perf_counter() - t_bench)
    result.wall_s = study.data.get("wall_s_total", 0.0) + time.perf_counter() - t_start
    study.data["wall_s_total"] = result.wall_s
    study.data["cpu_s_total"] = study.data.get("cpu_s_total", 0.0) + time.process_time() - c_start
    study.save()
    if write_report:
        from zoo.compare.report import write_report as write

        t_report = time.perf_counter()
        result.plan = study.data.get("plan", {})
        write(result, out)
        phase_time(study, "report", time.perf_counter() - t_report)
    return result


def phase_time(study: StudyFile, phase: str, seconds: float) -> None:
    """Add ``seconds`` to the wall time spent in ``phase`` (study.json "plan" / "actual"), all invocations."""
    actual = study.data.setdefault("plan", {}).setdefault("actual", {})
    actual[phase] = actual.get(phase, 0.0) + seconds
    study.save()


def _train_grid(settings: StudySettings, grid: Grid, order: list[tuple[Cell, int]], tokenizers: dict[str, Path],
                out: Path, study: StudyFile, train_fn: TrainFn | None,
                train_progress: TrainProgress | None) -> dict[str, RunInfo]:
    """Train (or reuse) every run of ``order``: one at a time in this process, or in worker processes as
    ``settings.layout`` says (each run's weights are those it gets in process on as many threads)."""
    if train_fn is None:
        from zoo.train.trainer import train as train_fn
    budget = settings.budget_spec
    jobs: list[Any] = []
    curves: list[tuple[Cell, int]] = []
    families = grid.families()
    infos: dict[str, RunInfo] = {}
    for i, (cell, seed) in enumerate(order, 1):
        name = run_name(cell, seed)
        run_dir = out / "runs" / name
        family = families[cell.backbone]
        if settings.budgets and settings.layout is not None:
            curves.append((cell, seed))
            continue
        if settings.budgets:  # a curve: one trunk and its cooldown branches (zoo.compare.branches)
            title = f"[{i}/{len(order)}] "
            for info in branches.train_curve(settings, cell, seed, out, tokenizers[family], study, train_fn,
                                             _eval_every(settings, cell, tokenizers[family], out, study),
                                             lambda t, title=title: _progress(train_progress, title + t), _run_info):
                infos[info.name] = info
            continue
        state = run_state(run_dir)
        saved = run_dir / "config.json"
        if saved.is_file():
            _check_reusable(settings, cell, seed, run_dir, tokenizers[family])
        if state is not None and state.progress(budget) >= 1.0:
            log.info("[%d/%d] %s: finished earlier (step %d), reused", i, len(order), name, state.step)
            if study.run(name).get("status") != "done":
                study.update(name, status="done", objective=cell.objective, backbone=cell.backbone, seed=seed,
                             path=str(run_dir))
            infos[name] = _run_info(run_dir, name, study.run(name))
            study.update(name, counters=infos[name].counters())
            continue
        eval_every = _eval_every(settings, cell, tokenizers[family], out, study)
        cfg = run_config(settings, cell, seed, run_dir, tokenizers[family], eval_every)
        if settings.layout is not None:
            from zoo.compare.parallel import Job

            jobs.append((Job(name, cfg), cell, seed, {}))
            continue
        what = "resuming" if state is not None else "training"
        log.info("[%d/%d] %s %s (%s)", i, len(order), what, name, budget)
        study.update(name, status="training", objective=cell.objective, backbone=cell.backbone, seed=seed,
                     path=str(run_dir), error=None)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            with _progress(train_progress, f"[{i}/{len(order)}] {cell.backbone} {cell.objective} seed {seed}") as cb:
                train_fn(cfg, callback=cb)
        except TrainingInterrupted:  # a signal stops the study too (the run resumes when it is rerun)
            raise
        except ZooError as exc:
            log.error("%s failed: %s", name, exc)
            study.update(name, status="failed", error=str(exc),
                         wall_s=study.run(name).get("wall_s", 0.0) + time.perf_counter() - t0,
                         cpu_s=study.run(name).get("cpu_s", 0.0) + time.process_time() - c0)
            infos[name] = RunInfo(name, cell.backbone, cell.objective, seed, str(run_dir), status="failed",
                                  error=str(exc), budget=settings.budget)
            continue
        # process CPU time (every thread): unlike wall time, not inflated by other processes on the machine
        study.update(name, status="done", wall_s=study.run(name).get("wall_s", 0.0) + time.perf_counter() - t0,
                     cpu_s=study.run(name).get("cpu_s", 0.0) + time.process_time() - c0)
        infos[name] = _run_info(run_dir, name, study.run(name))
        study.update(name, counters=infos[name].counters())  # a report can be rewritten without the run
    if jobs:
        from zoo.compare.parallel import train_parallel

        train_parallel(settings, jobs, out, study, infos, _run_info)
    if curves:  # with a layout: every trunk in worker processes, then every branch
        branches.train_curves_parallel(settings, curves, out, study, infos, lambda c: tokenizers[families[c.backbone]],
                                       lambda c, tok: _eval_every(settings, c, tok, out, study), _run_info)
    return infos


def _check_tasks(options: BenchOptions) -> None:
    from zoo.benchmarks.minimal_pairs import is_pair_suite
    from zoo.benchmarks.recipe import recipes_for
    from zoo.benchmarks.tasks import resolve_tasks

    for suite in options.suites:
        opts = options.for_suite(suite)
        if is_pair_suite(suite):
            _check_minimal_pairs(opts)
            continue
        _, specs = resolve_tasks(suite, opts.tasks)  # a typo fails before hours of training
        recipes_for([s.name for s in specs], None, opts.overrides)


@contextlib.contextmanager
def _progress(factory: Callable[..., contextlib.AbstractContextManager] | None, *args: Any):  # noqa: ANN202
    """``factory(*args)`` entered, or None without a factory."""
    if factory is None:
        yield None
        return
    with factory(*args) as value:
        yield value


def _ensure_tokenizers(settings: StudySettings, grid: Grid, out: Path, study: StudyFile) -> dict[str, Path]:
    """One tokenizer per backbone family, trained on the study corpus into ``out/tokenizers/<family>/``;
    this also builds (and caches) the token stores every run of the family reads."""
    from zoo.data import build_datasets

    paths: dict[str, Path] = {}
    recorded = study.data.setdefault("tokenizers", {})
    for backbone, family in grid.families().items():
        if family in paths:
            continue
        directory = out / "tokenizers" / family
        path = directory / "tokenizer.json"
        tok_cfg = shared_tokenizer_config(settings, grid, family)
        if not path.is_file() or family not in recorded:
            cfg = resolve({**base_config(settings, backbone), "objective": grid.cells[0].objective})
            log.info("tokenizer for the %s family (%s): building it and the token stores", family, backbone)
            bundle = build_datasets(cfg.data, tok_cfg, family, directory)
            recorded[family] = {"path": str(path), "backbone": backbone, **{k: bundle.stats.get(k) for k in (
                "tokenizer_kind", "tokenizer_hash", "vocab_size", "source", "documents", "train_documents",
                "valid_documents", "train_tokens", "valid_tokens")}}
            if tok_cfg.special_tokens:  # absent otherwise, as in studies written before objectives declared any
                recorded[family]["special_tokens"] = list(tok_cfg.special_tokens)
            study.save()
        else:
            _check_reserved(path, family, tok_cfg.special_tokens)
        paths[family] = path
    return paths


def _check_reserved(path: Path, family: str, needed: list[str]) -> None:
    """A resumed study keeps its tokenizer: refuse objectives that need special tokens it lacks."""
    from zoo.data import load_tokenizer, special_tokens

    have = special_tokens(load_tokenizer(path)).extra
    missing = [t for t in needed if t not in have]
    if missing:
        raise ConfigError(f"{path}: the study's {family} tokenizer lacks the special token(s) {', '.join(missing)} "
                          f"that objectives of this grid declare (it has: {', '.join(have) or 'none'}); a study keeps "
                          f"the tokenizer its runs were trained with: train these objectives in a new --out")


def _eval_every(settings: StudySettings, cell: Cell, tokenizer: Path, out: Path, study: StudyFile) -> int | None:
    """Steps between evaluations so each run logs about ``settings.evals`` validation points (and
    checkpoints as often). Needs the steps a budget allows: exact for steps, from ``plan`` (FLOPs and
    tokens per step) otherwise; None (the trainer's default) for time budgets."""
    overrides = {o.partition("=")[0].strip() for o in settings.train_overrides}
    budget = settings.budget_spec
    if "train.eval_every" in overrides or budget.kind == "time":
        return None
    plans = study.data.setdefault("plans", {})
    key = slug(cell)
    if key not in plans:
        from zoo.train.trainer import plan

        cfg = run_config(settings, cell, settings.seeds[0], out / "runs" / run_name(cell, settings.seeds[0]),
                         tokenizer)
        p = plan(cfg)
        plans[key] = {"flops_per_step": p.flops_per_step, "tokens_per_step": p.tokens_per_step,
                      "params": p.params, "params_no_embeddings": p.params_no_embeddings}
        study.save()
    p = plans[key]
    per_step = {"steps": 1.0, "flops": p["flops_per_step"], "tokens": p["tokens_per_step"]}[budget.kind]
    steps = max(1, math.ceil(budget.value / per_step))
    plans[key]["expected_steps"] = steps
    return max(1, steps // (settings.evals or auto_evals(steps)))


def _check_reusable(settings: StudySettings, cell: Cell, seed: int, run_dir: Path, tokenizer: Path) -> None:
    import json

    saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    diffs = reuse_diffs(saved, run_config(settings, cell, seed, run_dir, tokenizer))
    if diffs:
        raise ConfigError(f"{run_dir} holds a run trained with other settings ({', '.join(diffs[:6])}); "
                          f"rerun the study with its original settings, or choose another --out")


def _budget_notes(budget: Budget) -> list[str]:
    if budget.kind == "flops":
        return []
    if budget.kind == "time":
        return [f"Runs were matched on wall time ({budget}), not FLOPs: objectives with cheaper steps "
                "get more compute. The FLOPs column shows what each run actually used."]
    return [f"Runs were matched on {budget.kind} ({budget}), not FLOPs: the FLOPs column shows what each "
            "run actually used."]


# --- existing runs ---------------------------------------------------------------------------------------

def compare_runs(paths: Sequence[str | Path], out: str | Path, options: BenchOptions, *,
                 command: str | None = None, bench_fn: BenchFn | None = None, bench_progress: BenchProgress | None = None,
                 write_report: bool = True) -> ComparisonResult:
    """Benchmark (what is not cached) and report runs that already exist; nothing is trained. ``out`` is
    locked and marked as a study, as ``run_study``'s is."""
    if not paths:
        raise ConfigError("zoo compare: name run directories, or pass --objectives and --budget to train a study")
    with claim_study(study_dir(out)):
        return _compare_runs(paths, out, options, command=command, bench_fn=bench_fn, bench_progress=bench_progress,
                             write_report=write_report)


def _compare_runs(paths: Sequence[str | Path], out: str | Path, options: BenchOptions, *, command: str | None,
                  bench_fn: BenchFn | None, bench_progress: BenchProgress | None,
                  write_report: bool) -> ComparisonResult:
    from zoo.runs import open_run

    t_start = time.perf_counter()
    if not paths:
        raise ConfigError("zoo compare: name run directories, or pass --objectives and --budget to train a study")
    out = Path(out).resolve()
    if options.data_dir and Path(options.data_dir).expanduser().exists():
        options = replace(options, data_dir=str(Path(options.data_dir).expanduser().resolve()))
    _check_tasks(options)
    runs, seen = [], set()
    for p in paths:
        path = Path(p).resolve()
        if path in seen:
            raise ConfigError(f"{p} is listed twice")
        seen.add(path)
        if (path / "study.json").is_file() and not (path / "run.json").is_file():
            raise ConfigError(f"{p} is a study directory, not a run: rerun the study's command (see its study.json) "
                              f"to update its report, or name its runs ({Path(p) / 'runs'}/*)")
        run = open_run(path)  # CheckpointError for anything that is not a run directory
        run.checkpoint()  # and for a run without an intact checkpoint
        runs.append(_run_info(path, path.name, {}))
    notes = _consistency_notes(runs, [open_run(r.path) for r in runs])
    tokenizers: dict[str, dict[str, Any]] = {}
    for r in runs:
        run = open_run(r.path)
        tokenizers.setdefault(run.info.get("family", "?"), {
            "path": str(Path(r.path) / "tokenizer.json"), "tokenizer_hash": run.info.get("tokenizer_hash"),
            "vocab_size": run.info.get("vocab_size"), "source": (run.info.get("data") or {}).get("source")})
    result = _benchmark_and_collect(runs, options, out, bench_fn, bench_progress, None, mode="runs",
                                    settings={"runs": [r.path for r in runs], "bench": asdict(options)},
                                    notes=notes, command=command, skipped=[], tokenizers=tokenizers)
    result.wall_s = time.perf_counter() - t_start
    if write_report:
        from zoo.compare.report import write_report as write

        write(result, out)
    return result


def _consistency_notes(infos: list[RunInfo], runs: list[Any]) -> list[str]:
    """Say where existing runs were not trained alike (the comparison is then not compute-matched)."""
    notes = []
    budgets = sorted({r.config.train.budget for r in runs})
    if len(budgets) > 1:
        notes.append(f"The runs were trained with different budgets ({', '.join(budgets)}): this comparison is "
                     "not compute-matched; compare the FLOPs column.")
    for what, get in (("corpus", lambda r: str(r.config.data.source)), ("model size", lambda r: r.config.size),
                      ("sequence length", lambda r: str(r.config.train.seq_len)),
                      ("batch size", lambda r: str(r.config.train.batch_size))):
        values = sorted({get(r) for r in runs})
        if len(values) > 1:
            notes.append(f"The runs differ in {what} ({', '.join(values)}).")
    by_family: dict[str, set[str]] = {}
    for r in runs:
        by_family.setdefault(r.info.get("family", "?"), set()).add(str(r.info.get("tokenizer_hash")))
    for family, hashes in by_family.items():
        if len(hashes) > 1:
            notes.append(f"The {family} runs use {len(hashes)} different tokenizers.")
    continued = [f"{i.name} (from {r.config.init.source})" for i, r in zip(infos, runs, strict=True)
                 if r.config.init.source]
    if continued:
        notes.append(f"Continued from trained weights (--init), whose earlier compute is not counted: "
                     f"{', '.join(continued)}.")
    unfinished = [i.name for i, r in zip(infos, runs, strict=True) if i.steps and _progress_of(i, r.config.budget) < 1.0]
    if unfinished:
        notes.append(f"Not trained to their budget: {', '.join(unfinished)}.")
    return notes


def _progress_of(info: RunInfo, budget: Budget) -> float:
    return budget.progress(info.steps, info.tokens, info.flops, info.train_time_s)


# --- shared: run records, benchmarking, baselines ------------------------------------------------------------

def _run_info(run_dir: Path, name: str, recorded: dict[str, Any]) -> RunInfo:
    from zoo.runs import open_run

    run = open_run(run_dir)
    cfg: RunConfig = run.config
    state = run_state(run_dir)
    info = RunInfo(name=name, backbone=cfg.backbone, objective=cfg.objective, seed=cfg.train.seed,
                   path=str(run_dir), budget=cfg.train.budget, params=run.info.get("parameters"),
                   wall_s=recorded.get("wall_s"), cpu_s=recorded.get("cpu_s"))
    if state is not None:
        info.steps, info.flops, info.tokens, info.train_time_s = (state.step, state.flops, state.tokens,
                                                                  state.train_time_s)
        info.head_flops = state.head_flops
    info.evals = [r for r in run.records("eval") if r.get("step", 0) <= info.steps]
    info.parent = (run.info.get("branch") or {}).get("parent")  # a cooldown branch's trunk
    return info


def _benchmark_and_collect(runs: list[RunInfo], options: BenchOptions, out: Path, bench_fn: BenchFn | None,
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
    with _progress(progress) as bar:
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

def _check_minimal_pairs(options: BenchOptions) -> None:
    given = [f for f, v in (("--tasks", options.tasks), ("--bench-set", options.overrides),
                            ("--bench-seeds", options.seeds != 1), ("--max-train-examples", options.max_train_examples))
             if v]
    if given:
        raise ConfigError(f"{', '.join(given)}: fine-tuning options do not apply to the zero-shot suite {options.suite}")


def _minimal_pairs_collect(runs: list[RunInfo], options: BenchOptions, out: Path, progress: BenchProgress | None,
                           *, mode: str, settings: dict[str, Any], notes: list[str], command: str | None,
                           skipped: list[dict[str, str]], tokenizers: dict[str, dict[str, Any]]) -> ComparisonResult:
    """Score every run zero-shot; the comparison's "tasks" are the paradigms (so the average is the macro
    average over paradigms), grouped into phenomena for the report. The baseline of each backbone and
    seed s is a random init with seed s of that seed's first run (heads included), scored with that run's
    scorer. Per-pair correctness of every model becomes the
    item set "all pairs", for the paired bootstrap over pairs."""
    from zoo.benchmarks.zeroshot import run_minimal_pairs

    _check_minimal_pairs(options)
    done = [r for r in runs if r.status == "done"]
    items: dict[str, dict[str, ItemValues]] = {}
    result = None
    baselines = []
    with _progress(progress) as bar:
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
