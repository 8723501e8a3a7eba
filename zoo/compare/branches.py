"""Curve studies: models at several budgets for little more than the cost of the longest.

``zoo compare --budgets 1e13,2e13,4e13,8e13flops`` trains, per (objective, backbone, seed), one
trapezoid *trunk* with the longest budget, keeping a checkpoint at the start of each budget's cooldown
(``train.branch_budgets``); it is the model of the longest budget. Every shorter budget's model is a
cooldown branch of it (``zoo.train.branch``): bitwise the run trained with that budget from the start,
at the cost of its cooldown alone. Each model is benchmarked like any run; its row carries its budget
and the FLOPs charged to it (the trunk's up to the branch point included).

Cost of a curve design, per (arm, seed), in training FLOPs (``F(B)``: the FLOPs of budget ``B``, ``c``
the cooldown fraction, budgets ``B_1 < ... < B_n``)::

    F(B_n) + sum_{i<n} c * F(B_i)        (vs sum_i F(B_i) for separate runs)

for FLOPs budgets exactly so up to the last step; steps and tokens budgets likewise in their unit.

With ``--hours`` the budgets are relative (``--budgets 1,2,4,8``: ratios to the smallest): the planner
(``zoo.compare.plan``) chooses the top budget that fits the hours, and the study trains
``B_top * r_i / r_max`` for each ratio ``r_i`` (``planned_budgets``, two significant digits). With a
parallel layout every trunk trains first, all at once in worker processes, then every branch
(``train_curves_parallel``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.compare.results import RunInfo
from zoo.compare.study import Cell, StudyFile, StudySettings, run_config, run_name, run_state
from zoo.errors import ZooError
from zoo.train.config import Budget
from zoo.train.interrupt import TrainingInterrupted
from zoo.train.resolve import resolve
from zoo.typed_config import to_dict

log = logging.getLogger(__name__)

DEFAULT_WARMUP = 0.05  # of the shortest budget's steps, when no optim.warmup_steps is given
def _tag(b: Budget) -> str:
    return f"{b.value:g}{'steps' if b.kind == 'steps' else b.kind}".replace("+", "")


def ordered(settings: StudySettings) -> list[str]:
    return sorted(settings.budgets, key=lambda b: Budget.parse(b).value)


def model_names(settings: StudySettings, cell: Cell, seed: int) -> list[str]:
    """The run names of one (arm, seed): one per budget, shortest first; the last is the trunk."""
    return [f"{run_name(cell, seed)}-{_tag(Budget.parse(b))}" for b in ordered(settings)]


def _warmup_steps(settings: StudySettings, plan: dict[str, Any] | None) -> int | None:
    """An absolute warmup for the trunk: the one given, else 5% of the shortest budget's steps."""
    for item in settings.train_overrides:
        if item.partition("=")[0].strip() == "optim.warmup_steps":
            return None
    shortest = Budget.parse(ordered(settings)[0])
    per_step = 1.0 if shortest.kind == "steps" else (plan or {}).get(
        "flops_per_step" if shortest.kind == "flops" else "tokens_per_step")
    if not per_step:
        return 0
    return max(1, int(DEFAULT_WARMUP * shortest.value / per_step))


def trunk_config(settings: StudySettings, cell: Cell, seed: int, run_dir: Path, tokenizer: Path,
                 eval_every: int | None, plan: dict[str, Any] | None) -> Any:
    data = to_dict(run_config(settings, cell, seed, run_dir, tokenizer, eval_every))  # trapezoid (base_config)
    warmup = _warmup_steps(settings, plan)
    if warmup is not None:
        data["optim"]["warmup_steps"] = warmup
    data["train"]["branch_budgets"] = ordered(settings)
    return resolve(data)


def _reused(cell: Cell, seed: int, name: str, run_dir: Path, budget: str,
            parent: dict[str, Any] | None, study: StudyFile,
            run_info: Callable[[Path, str, dict[str, Any]], RunInfo]) -> RunInfo | None:
    """The model ``name`` when its run directory already reached ``budget`` (recorded as done), else None."""
    state = run_state(run_dir)
    if state is None or state.progress(Budget.parse(budget)) < 1.0:
        return None
    log.info("%s: finished earlier (step %d), reused", name, state.step)
    return _finished(cell, seed, name, run_dir, budget, parent, study, run_info)


def _finished(cell: Cell, seed: int, name: str, run_dir: Path, budget: str, parent: dict[str, Any] | None,
              study: StudyFile, run_info: Callable[[Path, str, dict[str, Any]], RunInfo]) -> RunInfo:
    study.update(name, status="done", path=str(run_dir), budget=budget, objective=cell.objective,
                 backbone=cell.backbone, seed=seed, **(parent or {}))
    info = run_info(run_dir, name, study.run(name))
    info.parent = parent["parent"] if parent else None
    study.update(name, counters=info.counters())
    return info


def _failed(cell: Cell, seed: int, name: str, run_dir: Path, budget: str, error: str) -> RunInfo:
    return RunInfo(name, cell.backbone, cell.objective, seed, str(run_dir), status="failed", error=error, budget=budget)


def _branch_point(settings: StudySettings, trunk_dir: Path, budget: str) -> tuple[int | None, str]:
    """The trunk's checkpoint to branch ``budget`` from, or None and why there is none."""
    from zoo.train.branch import latest_before_cooldown

    step = latest_before_cooldown(trunk_dir, Budget.parse(budget), settings.cooldown)
    return step, f"{trunk_dir} has no checkpoint before {budget}'s cooldown"


def _branch_config(run_dir: Path, trunk_dir: Path, step: int, budget: str) -> Any:
    return resolve({"out": str(run_dir), "branch": {"source": str(trunk_dir), "step": step}, "train": {"budget": budget}})


def train_curve(settings: StudySettings, cell: Cell, seed: int, out: Path, tokenizer: Path, study: StudyFile,
                train_fn: Callable[..., Any], eval_every: int | None, progress: Callable[[str], Any],
                run_info: Callable[[Path, str, dict[str, Any]], RunInfo]) -> list[RunInfo]:
    """Train (or reuse) one arm's trunk, then its branches, in this process; returns one ``RunInfo`` per
    budget, shortest first, each with its parent. ``study.json`` records each model (``parent``,
    ``parent_step``, ``cooldown_flops``: what the branch itself trained) and the curve's totals (``curve``)."""
    from zoo.compare.study import slug

    budgets = ordered(settings)
    names = model_names(settings, cell, seed)
    trunk_name, trunk_dir = names[-1], out / "runs" / names[-1]
    plan = study.data.get("plans", {}).get(slug(cell))
    cfg = trunk_config(settings, cell, seed, trunk_dir, tokenizer, eval_every, plan)
    common = {"objective": cell.objective, "backbone": cell.backbone, "seed": seed}
    infos: dict[str, RunInfo] = {}

    def fit(name: str, run_dir: Path, cfg: Any, budget: str, parent: dict[str, Any] | None) -> bool:
        reused = _reused(cell, seed, name, run_dir, budget, parent, study, run_info)
        if reused is not None:
            infos[name] = reused
            return True
        study.update(name, status="training", path=str(run_dir), budget=budget, error=None, **common,
                     **(parent or {}))
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            with progress(f"{cell.backbone} {cell.objective} seed {seed} {budget}") as cb:
                train_fn(cfg, callback=cb)
        except TrainingInterrupted:
            raise
        except ZooError as exc:
            log.error("%s failed: %s", name, exc)
            study.update(name, status="failed", error=str(exc))
            infos[name] = _failed(cell, seed, name, run_dir, budget, str(exc))
            return False
        rec = study.run(name)
        study.update(name, wall_s=rec.get("wall_s", 0.0) + time.perf_counter() - t0,
                     cpu_s=rec.get("cpu_s", 0.0) + time.process_time() - c0)
        infos[name] = _finished(cell, seed, name, run_dir, budget, parent, study, run_info)
        return True

    if fit(trunk_name, trunk_dir, cfg, budgets[-1], None):
        for name, budget in zip(names[:-1], budgets[:-1], strict=True):
            step, why = _branch_point(settings, trunk_dir, budget)
            run_dir = out / "runs" / name
            if step is None:
                infos[name] = _failed(cell, seed, name, run_dir, budget, why)
                continue
            fit(name, run_dir, _branch_config(run_dir, trunk_dir, step, budget), budget,
                {"parent": trunk_name, "parent_step": step})
    else:
        for name, budget in zip(names[:-1], budgets[:-1], strict=True):
            infos[name] = _failed(cell, seed, name, out / "runs" / name, budget, f"its trunk {trunk_name} failed")
    _record_totals(study, names)
    return [infos[n] for n in names]


def train_curves_parallel(settings: StudySettings, curves: list[tuple[Cell, int]], out: Path, study: StudyFile,
                          infos: dict[str, RunInfo], tokenizer: Callable[[Cell], Path],
                          eval_every: Callable[[Cell, Path], int | None],
                          run_info: Callable[[Path, str, dict[str, Any]], RunInfo]) -> None:
    """Train (or reuse) the curves of ``curves`` (arm, seed) in worker processes, in ``settings.layout``:
    first every trunk, all at once as the layout allows, then every branch of the trunks that finished
    (each from its trunk's checkpoint). Every model is the one ``train_curve`` trains in process, bit for
    bit; ``infos`` gets one ``RunInfo`` per model and ``study.json`` the same records."""
    from zoo.compare.parallel import Job, StudyJob, train_parallel
    from zoo.compare.study import slug

    trunks: list[StudyJob] = []
    for cell, seed in curves:
        names, budgets = model_names(settings, cell, seed), ordered(settings)
        trunk_dir = out / "runs" / names[-1]
        every = eval_every(cell, tokenizer(cell))
        reused = _reused(cell, seed, names[-1], trunk_dir, budgets[-1], None, study, run_info)
        if reused is not None:
            infos[names[-1]] = reused
            continue
        cfg = trunk_config(settings, cell, seed, trunk_dir, tokenizer(cell), every,
                           study.data.get("plans", {}).get(slug(cell)))
        trunks.append((Job(names[-1], cfg), cell, seed, {"budget": budgets[-1]}))
    if trunks:
        train_parallel(settings, trunks, out, study, infos, run_info)
    branches: list[StudyJob] = []
    for cell, seed in curves:
        names, budgets = model_names(settings, cell, seed), ordered(settings)
        trunk_name, trunk_dir = names[-1], out / "runs" / names[-1]
        for name, budget in zip(names[:-1], budgets[:-1], strict=True):
            run_dir = out / "runs" / name
            if infos[trunk_name].status != "done":
                infos[name] = _failed(cell, seed, name, run_dir, budget, f"its trunk {trunk_name} failed")
                continue
            step, why = _branch_point(settings, trunk_dir, budget)
            if step is None:
                infos[name] = _failed(cell, seed, name, run_dir, budget, why)
                continue
            parent = {"parent": trunk_name, "parent_step": step}
            reused = _reused(cell, seed, name, run_dir, budget, parent, study, run_info)
            if reused is not None:
                infos[name] = reused
                continue
            branches.append((Job(name, _branch_config(run_dir, trunk_dir, step, budget)), cell, seed,
                             {"budget": budget, **parent}))
    if branches:
        train_parallel(settings, branches, out, study, infos, run_info)
    for cell, seed in curves:
        _record_totals(study, model_names(settings, cell, seed))


def _record_totals(study: StudyFile, names: list[str]) -> None:
    """Per model, the FLOPs it trained itself (a branch: its cooldown); the curve's totals: the trunk once
    plus every cooldown, and what separate runs of every budget would have cost."""
    runs = study.data.get("runs", {})
    trunk = runs.get(names[-1], {}).get("counters", {})
    for name in names[:-1]:
        rec = runs.get(name, {})
        step = rec.get("parent_step")
        if rec.get("status") == "done" and step is not None:
            at = _flops_at(Path(runs[names[-1]]["path"]), int(step))
            rec["cooldown_flops"] = rec["counters"]["flops"] - at if at is not None else None
    curve = study.data.setdefault("curve", {"flops_total": 0.0, "flops_separate": 0.0, "arms": {}})
    own = trunk.get("flops", 0.0) + sum(runs.get(n, {}).get("cooldown_flops") or 0.0 for n in names[:-1])
    separate = sum(runs.get(n, {}).get("counters", {}).get("flops", 0.0) for n in names)
    curve["arms"][names[-1]] = {"models": names, "flops": own, "flops_separate": separate}
    curve["flops_total"] = sum(a["flops"] for a in curve["arms"].values())
    curve["flops_separate"] = sum(a["flops_separate"] for a in curve["arms"].values())
    study.save()


def _flops_at(trunk: Path, step: int) -> float | None:
    from zoo.train import checkpoint as ckpt
    from zoo.train.branch import spent_at

    try:
        return spent_at(trunk / ckpt.step_name(step), "flops")
    except (OSError, ValueError, KeyError):
        return None


def report_lines(result: Any, study: dict[str, Any] | None) -> list[str]:
    """The report's section on a curve study: each model with its budget, parent and FLOPs, and the totals."""
    if not result.settings.get("budgets"):
        return []
    runs = (study or {}).get("runs", {})
    lines = ["## Budgets: cooldown branches", "",
             f"One trapezoid trunk per objective, backbone and seed, trained to the longest budget; each shorter "
             f"budget's model is a cooldown branch of it (the final {result.settings.get('cooldown', 0.2):g} of its "
             f"budget), bitwise the run trained with that budget alone (docs/training.md). FLOPs charged include "
             f"the trunk's up to the branch point.", "",
             "| model | budget | parent | FLOPs charged | FLOPs trained here |", "|---|---|---|---|---|"]
    for r in result.runs:
        rec = runs.get(r.name, {})
        parent = f"{rec['parent']} step {rec['parent_step']}" if rec.get("parent") else "(trunk)"
        here = rec.get("cooldown_flops") if rec.get("parent") else r.flops
        shown = f"{here:.3e}" if here is not None else "-"
        lines.append(f"| {r.name} | {r.budget} | {parent} | {r.flops:.3e} | {shown} |")
    curve = (study or {}).get("curve", {})
    if curve:
        lines += ["", f"Training compute of the study: {curve['flops_total']:.3e} FLOPs (each trunk once plus every "
                      f"cooldown); separate runs of every budget would have cost {curve['flops_separate']:.3e}."]
    return lines + [""]
