"""A study sized by wall time: measure (or reuse the measurements in ``study.json``), plan, apply.

``study.json`` "plan" holds ``request`` (the hours and design), ``measurements`` (``zoo.compare.probe``),
``plan`` (``Plan.to_dict``) and ``actual`` (wall seconds per phase, all invocations). A resumed study
plans from its stored measurements, so it trains to the same budget. A curve study (``--budgets`` with
``--hours``: relative budgets) is planned as its whole design, and its planned absolute budgets replace the
ratios in the study's settings (``apply_plan``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from zoo.compare.plan import Measurements, Plan, PlanRequest, make_plan
from zoo.compare.study import Grid, StudyFile, StudySettings, slug
from zoo.errors import ConfigError
from zoo.train.config import Budget

log = logging.getLogger(__name__)


def plan_request(settings: StudySettings) -> PlanRequest:
    """What ``settings`` ask the planner for: the hours, the seeds and, for a curve study, the relative
    budgets (ratios to the smallest) and the cooldown fraction."""
    from zoo.benchmarks.minimal_pairs import is_pair_suite
    from zoo.compare.budgets import relative_budgets

    assert settings.hours is not None
    cap = None
    for suite in settings.bench.suites:
        if is_pair_suite(suite):
            cap = settings.bench.for_suite(suite).max_eval_examples
    design: dict[str, Any] = {}
    if settings.budgets:
        design = {"budgets": relative_budgets(settings.budgets), "cooldown": settings.cooldown}
    return PlanRequest(hours=settings.hours, seeds=len(settings.seeds), baselines=settings.bench.baselines,
                       max_pairs=cap, **design)


def measurements_for(settings: StudySettings, grid: Grid, tokenizers: dict[str, Path], out: Path,
                     study: StudyFile) -> Measurements:
    """The stored measurements when they cover this grid on as many cores; else measured now (and stored)."""
    from zoo.compare.probe import cores, measure

    section = study.data.setdefault("plan", {})
    stored = section.get("measurements")
    if stored:
        m = Measurements.from_dict(stored)
        if m.cores == cores() and [a.arm for a in m.arms] == [slug(c) for c in grid.cells]:
            log.info("planning from the measurements stored in %s", study.path)
            return m
    log.info("measuring training and evaluation speed of %d arm(s) on %d core(s)", len(grid.cells), cores())
    t0 = time.perf_counter()
    m = measure(settings, grid, tokenizers, out)
    spent = time.perf_counter() - t0
    actual = section.get("actual", {})
    m = replace(m, spent_s={"tokenizers": actual.get("tokenizers", 0.0), "measure": spent})
    section["measurements"] = m.to_dict()
    actual["measure"] = actual.get("measure", 0.0) + spent
    section["actual"] = actual
    study.save()
    return m


def plan_for(settings: StudySettings, grid: Grid, tokenizers: dict[str, Path], out: Path, study: StudyFile) -> Plan:
    """Measure (or reuse), plan ``settings.hours`` and record request and plan in ``study.json``."""
    request = plan_request(settings)
    section = study.data.setdefault("plan", {})
    before = [float(b) for b in (section.get("request") or {}).get("budgets", request.budgets)]
    if before != list(request.budgets) and study.trained_anything():  # the study's settings hold planned budgets
        given = f"--budgets {','.join(f'{b:g}' for b in before)}"
        design = (f"{given}; rerun it with those --budgets" if len(before) > 1
                  else "one budget per run; rerun it without --budgets")
        raise ConfigError(f"{out} holds a study planned with {design} to resume it, or choose another --out")
    m = measurements_for(settings, grid, tokenizers, out, study)
    plan = make_plan(m, request)
    section["request"] = asdict(request)
    section["plan"] = plan.to_dict()
    study.save()
    log.info("plan: %s per run, %s layout, %.0f min of training of %.0f min", ",".join(plan.budgets),
             plan.layout.label, plan.phases["train"] / 60, plan.total_s / 60)
    return plan


def apply_plan(settings: StudySettings, plan: Plan, study: StudyFile) -> StudySettings:
    """``settings`` with the plan's budget (a curve study: its budgets, absolute), layout and pairs per
    paradigm, recorded as the study's settings in ``study.json``."""
    from zoo.compare.budgets import planned_budgets, relative_budgets

    bench = settings.bench
    if plan.max_pairs is not None:
        bench = replace(bench, max_pairs=plan.max_pairs)
    budgets = planned_budgets(plan.top_flops, relative_budgets(settings.budgets)) if settings.budgets else []
    planned = replace(settings, budget=Budget.parse(plan.budget), budgets=budgets, jobs=plan.layout.jobs,
                      threads=plan.layout.threads, bench=bench)
    study.data["settings"] = planned.to_dict()
    study.save()
    return planned


def plan_study(settings: StudySettings, out: str | Path, command: str | None = None) -> Plan:
    """``zoo compare --plan-only``: build the study's tokenizers, measure, plan; train nothing. The
    tokenizers, measurements and plan are kept in ``out``, so running the study then starts from them."""
    from zoo.compare.prepare import absolute_paths, check_tasks, ensure_tokenizers, phase_time
    from zoo.compare.study import claim_study, expand_grid, study_dir

    out = study_dir(out)
    with claim_study(out):
        settings = absolute_paths(settings)
        check_tasks(settings.bench)
        grid = expand_grid(settings.objectives, settings.backbones)
        study = StudyFile(out)
        study.load_or_start(settings, grid, command)
        t0 = time.perf_counter()
        tokenizers = ensure_tokenizers(settings, grid, out, study)
        phase_time(study, "tokenizers", time.perf_counter() - t0)
        return plan_for(settings, grid, tokenizers, out, study)


def plan_tables(plan: Plan) -> list[tuple[str, list[str], list[list[str]]]]:
    """The plan as tables (title, header, rows): the runs of each arm, then the phases."""
    from zoo.compare.plan import PHASES
    from zoo.train.estimate import duration

    curve = len(plan.budgets) > 1
    runs = [[a.arm, ", ".join(t.removesuffix("flops") for t in plan.budgets) if curve else f"{a.budgets[0]:.2g}",
             ", ".join(f"{t:.2g}" for t in a.tokens_per_param), duration(a.train_s)] for a in plan.arms]
    pairs = "all" if plan.max_pairs is None else f"{plan.max_pairs} per paradigm"
    phases = [[p, duration(plan.phases[p]), f"{plan.phases[p] / plan.total_s:.0%}"] for p in PHASES]
    phases.append(["total", duration(plan.total_s), f"of {plan.hours:g} h"])
    design = (f"budgets {', '.join(plan.budgets)} (a trunk to the top budget and a cooldown branch of {plan.cooldown:g} "
              f"of each shorter one)" if curve else f"{plan.budget} per run")
    return [(f"Plan: {design}, {plan.seeds} seed(s), layout {plan.layout.label} (jobs x threads), pairs scored: "
             f"{pairs}", ["arm", "FLOPs per model" if curve else "FLOPs per run", "tokens per parameter",
                          "training per seed"], runs),
            ("Expected wall time per phase", ["phase", "time", "share"], phases)]
