"""Measure what a study costs on this machine, for ``zoo.compare.plan``.

Per arm (objective x backbone): a few real training steps of the arm's exact run config (its
tokenizer, data, objective, sizes and precision; the first step, a warm-up, is excluded from the
FLOP/s and counted, with process start, set-up and the final evaluation, as the run's overhead) in every
layout that keeps all cores busy (``1 x cores`` threads, ..., ``cores`` jobs x 1 thread, the jobs of
a layout run at once, each starting at another arm, so that different arms share the machine as they do
in the study); then, on the probe's tiny checkpoint, the seconds per minimal pair scored
and per fine-tuning of the study's tasks on a few examples, scaled to the study's example count.
Probe runs are written under ``OUT/probe/`` and removed afterwards.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

from zoo.compare.parallel import probe_outputs, start
from zoo.compare.plan import ArmCost, Layout, Measurements, layouts
from zoo.compare.study import Grid, StudySettings, run_config, slug
from zoo.errors import ConfigError
from zoo.train.config import Budget

log = logging.getLogger(__name__)

PROBE_STEPS = 6  # the first is a warm-up; FLOP/s come from the other five
PROBE_PAIRS = 3  # pairs per paradigm scored to time the zero-shot suite
PROBE_EXAMPLES = 32  # fine-tuning examples (train and eval) to time the fine-tuning suite


def cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def measure(settings: StudySettings, grid: Grid, tokenizers: dict[str, Path], out: Path) -> Measurements:
    """Probe every arm of ``grid`` (see the module docstring); ``tokenizers``: family -> tokenizer path.
    Each layout starts its jobs once; every job probes all arms in turn."""
    import json

    n = cores()
    families = grid.families()
    root = out / "probe"
    shutil.rmtree(root, ignore_errors=True)
    probe = _probe_settings(settings)
    pairs_per_paradigm, paradigms = _pair_counts(settings)
    fps: dict[str, dict[str, float]] = {slug(c): {} for c in grid.cells}
    overhead: dict[str, dict[str, float]] = {slug(c): {} for c in grid.cells}
    per_step: dict[str, dict] = {}
    try:
        for layout in layouts(n):
            procs, logs, orders = [], [], []
            for j in range(layout.jobs):
                # job j starts at arm j: the jobs of a layout probe different arms at once, as a study trains them
                order = [(j + k) % len(grid.cells) for k in range(len(grid.cells))]
                cells = [grid.cells[i] for i in order]
                dirs = [root / layout.label / f"{slug(c)}-{j}" for c in cells]
                cfgs = [run_config(probe, c, settings.seeds[0], d, tokenizers[families[c.backbone]])
                        for c, d in zip(cells, dirs, strict=True)]
                logs.append(root / layout.label / f"job{j}.log")
                procs.append(start("probe", cfgs, layout.threads, [d.with_suffix(".json") for d in dirs], logs[-1]))
                orders.append(order)
            results = [{i: r[k] for k, i in enumerate(order)} for r, order in
                       zip(probe_outputs(procs, logs), orders, strict=True)]  # arm index -> its probe, per job
            for i, cell in enumerate(grid.cells):
                fps[slug(cell)][layout.label] = sum(r[i]["flops_per_s"] for r in results) / len(results)
                # a run in its own process: interpreter start and imports, set-up, warm-up, final evaluation
                overhead[slug(cell)][layout.label] = sum(r[i]["startup_s"] + r[i]["setup_s"] for r in results) / len(results)
                log.info("%s: %.3g training FLOP/s per job in layout %s", slug(cell), fps[slug(cell)][layout.label],
                         layout.label)
                if layout.jobs == 1:
                    per_step[slug(cell)] = results[0][i]
        arms = []
        for cell in grid.cells:
            kept = root / layouts(n)[0].label / f"{slug(cell)}-0"  # a finished run of a few steps
            params = int(json.loads((kept / "run.json").read_text(encoding="utf-8")).get("parameters") or 1)
            r = per_step[slug(cell)]
            pair_s, finetune_s = _evaluation_costs(settings, kept)
            arms.append(ArmCost(slug(cell), cell.backbone, fps[slug(cell)],
                                r["flops_per_step"] / max(r["tokens_per_step"], 1.0), params, pair_s, finetune_s,
                                overhead[slug(cell)]))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return Measurements(cores=n, arms=tuple(arms), pairs_per_paradigm=pairs_per_paradigm, paradigms=paradigms)


def _probe_settings(settings: StudySettings) -> StudySettings:
    keep = [o for o in settings.train_overrides
            if o.partition("=")[0].strip() not in ("train.log_every", "train.eval_every", "train.checkpoint_every")]
    # a few steps of each arm's run: no curve design (its budgets are the study's, planned from this)
    return replace(settings, budget=Budget.parse(f"{PROBE_STEPS}steps"), hours=None, budgets=[],
                   train_overrides=[*keep, "train.log_every=1", "train.eval_every=0", "train.checkpoint_every=0"])


def _pair_counts(settings: StudySettings) -> tuple[int, int]:
    """(pairs per paradigm, paradigms) of the study's zero-shot suite, read with its reader; (0, 0) without one."""
    from zoo.benchmarks.minimal_pairs import is_pair_suite, load_suite

    for suite in settings.bench.suites:
        if is_pair_suite(suite):
            opts = settings.bench.for_suite(suite)
            counts = [len(p.pairs) for p in load_suite(suite, opts.data_dir)]
            return round(sum(counts) / len(counts)), len(counts)
    return 0, 0


def _evaluation_costs(settings: StudySettings, run_dir: Path) -> tuple[float, float]:
    """(seconds per minimal pair, seconds to fine-tune one model on the study's tasks) with the probe run."""
    from zoo.benchmarks.minimal_pairs import is_pair_suite

    pair_s = finetune_s = 0.0
    for suite in settings.bench.suites:
        opts = settings.bench.for_suite(suite)
        if is_pair_suite(suite):
            from zoo.benchmarks.zeroshot import run_minimal_pairs

            res = run_minimal_pairs([run_dir], suite, opts.data_dir, PROBE_PAIRS, device=opts.device,
                                    write_reports=False, baselines=False)
            model = res.models[0]
            pair_s = model.seconds / max(1, sum(res.pairs.values()))
            continue
        if opts.max_train_examples is None:
            raise ConfigError("--hours: planning fine-tuning needs --max-train-examples (the examples each "
                              "fine-tuning uses), so that its time can be measured and scaled")
        from zoo.benchmarks.bench import run_bench

        t0 = time.perf_counter()
        run_bench([run_dir], opts.suite, opts.tasks, opts.data_dir, seeds=1, overrides=opts.overrides,
                  max_train_examples=min(PROBE_EXAMPLES, opts.max_train_examples),
                  max_eval_examples=PROBE_EXAMPLES, device=opts.device, use_cache=False, write_reports=False)
        seconds = time.perf_counter() - t0
        finetune_s += seconds * opts.max_train_examples / min(PROBE_EXAMPLES, opts.max_train_examples) * opts.seeds
    return pair_s, finetune_s


__all__ = ["Layout", "cores", "measure"]
