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

from zoo.compare import branches
from zoo.compare.collect import BenchFn, BenchProgress, benchmark_and_collect, run_info
from zoo.compare.prepare import absolute_paths, check_tasks, ensure_tokenizers, entered, phase_time
from zoo.compare.results import ComparisonResult, RunInfo
from zoo.compare.study import (
    BenchOptions,
    Cell,
    Grid,
    StudyFile,
    StudySettings,
    auto_evals,
    claim_study,
    expand_grid,
    reuse_diffs,
    run_config,
    run_name,
    run_state,
    slug,
    study_dir,
)
from zoo.errors import ConfigError, ZooError
from zoo.train.config import Budget
from zoo.train.interrupt import TrainingInterrupted

log = logging.getLogger(__name__)

TrainFn = Callable[..., Any]  # zoo.train.trainer.train(cfg, callback=...)
TrainProgress = Callable[[str], contextlib.AbstractContextManager]  # title -> context giving a record callback


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
        raise ConfigError(f"--budget {settings.budget.to_text()} and --hours {settings.hours:g} both size the runs; give one")
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
    check_tasks(settings.bench)
    grid = expand_grid(settings.objectives, settings.backbones)
    for s in grid.skipped:
        log.info("skipping %s x %s: %s", s.objective, s.backbone, s.reason)
    study = StudyFile(out)
    study.load_or_start(settings, grid, command)
    t0 = time.perf_counter()
    tokenizers = ensure_tokenizers(settings, grid, out, study)
    phase_time(study, "tokenizers", time.perf_counter() - t0)
    if settings.hours is not None:
        from zoo.compare.planning import apply_plan, plan_for

        settings = apply_plan(settings, plan_for(settings, grid, tokenizers, out, study), study)
    budget = settings.budget
    assert budget is not None  # given, or set by the plan

    order = [(cell, seed) for seed in settings.seeds for cell in grid.cells]  # a partial study covers all cells
    t_train = time.perf_counter()
    infos = _train_grid(settings, grid, order, tokenizers, out, study, train_fn, train_progress)
    phase_time(study, "train", time.perf_counter() - t_train)
    runs = [infos[n] for c in grid.cells for s in settings.seeds
            for n in (branches.model_names(settings, c, s) if settings.budgets else [run_name(c, s)])]

    notes = _budget_notes(budget)
    t_bench = time.perf_counter()
    result = benchmark_and_collect(runs, settings.bench, out, bench_fn, bench_progress, study, mode="study",
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


def _train_grid(settings: StudySettings, grid: Grid, order: list[tuple[Cell, int]], tokenizers: dict[str, Path],
                out: Path, study: StudyFile, train_fn: TrainFn | None,
                train_progress: TrainProgress | None) -> dict[str, RunInfo]:
    """Train (or reuse) every run of ``order``: one at a time in this process, or in worker processes as
    ``settings.layout`` says (each run's weights are those it gets in process on as many threads)."""
    if train_fn is None:
        from zoo.train.trainer import train as train_fn
    budget = settings.budget
    assert budget is not None  # given, or set by the plan
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
                                             lambda t, title=title: entered(train_progress, title + t), run_info):
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
            infos[name] = run_info(run_dir, name, study.run(name))
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
            with entered(train_progress, f"[{i}/{len(order)}] {cell.backbone} {cell.objective} seed {seed}") as cb:
                train_fn(cfg, callback=cb)
        except TrainingInterrupted:  # a signal stops the study too (the run resumes when it is rerun)
            raise
        except ZooError as exc:
            log.error("%s failed: %s", name, exc)
            study.update(name, status="failed", error=str(exc),
                         wall_s=study.run(name).get("wall_s", 0.0) + time.perf_counter() - t0,
                         cpu_s=study.run(name).get("cpu_s", 0.0) + time.process_time() - c0)
            infos[name] = RunInfo(name, cell.backbone, cell.objective, seed, str(run_dir), status="failed",
                                  error=str(exc), budget=budget.to_text())
            continue
        # process CPU time (every thread): unlike wall time, not inflated by other processes on the machine
        study.update(name, status="done", wall_s=study.run(name).get("wall_s", 0.0) + time.perf_counter() - t0,
                     cpu_s=study.run(name).get("cpu_s", 0.0) + time.process_time() - c0)
        infos[name] = run_info(run_dir, name, study.run(name))
        study.update(name, counters=infos[name].counters())  # a report can be rewritten without the run
    if jobs:
        from zoo.compare.parallel import train_parallel

        train_parallel(settings, jobs, out, study, infos, run_info)
    if curves:  # with a layout: every trunk in worker processes, then every branch
        branches.train_curves_parallel(settings, curves, out, study, infos, lambda c: tokenizers[families[c.backbone]],
                                       lambda c, tok: _eval_every(settings, c, tok, out, study), run_info)
    return infos


def _eval_every(settings: StudySettings, cell: Cell, tokenizer: Path, out: Path, study: StudyFile) -> int | None:
    """Steps between evaluations so each run logs about ``settings.evals`` validation points (and
    checkpoints as often). Needs the steps a budget allows: exact for steps, from ``plan`` (FLOPs and
    tokens per step) otherwise; None (the trainer's default) for time budgets."""
    overrides = {o.partition("=")[0].strip() for o in settings.train_overrides}
    budget = settings.budget
    assert budget is not None  # given, or set by the plan
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
    check_tasks(options)
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
        runs.append(run_info(path, path.name, {}))
    notes = _consistency_notes(runs, [open_run(r.path) for r in runs])
    tokenizers: dict[str, dict[str, Any]] = {}
    for r in runs:
        run = open_run(r.path)
        tokenizers.setdefault(run.info.get("family", "?"), {
            "path": str(Path(r.path) / "tokenizer.json"), "tokenizer_hash": run.info.get("tokenizer_hash"),
            "vocab_size": run.info.get("vocab_size"), "source": (run.info.get("data") or {}).get("source")})
    result = benchmark_and_collect(runs, options, out, bench_fn, bench_progress, None, mode="runs",
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
    budgets = sorted({r.config.train.budget.to_text() for r in runs})
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


