"""``zoo compare --report-only``: rewrite a study's report from its ``study.json``, training and fine-tuning
nothing.

What the report needs comes from the study record: the settings, every run's and baseline's
per-seed scores, and (recorded since studies keep them) each run's training counters and final
validation loss. A run directory that is still there adds its validation curve and, for a
minimal-pair suite, its per-pair correctness (``bench.json``); without them the item-level tests
are left out and the report says so. Trivial baselines are recomputed: the constant predictor and
the bag-of-words model from the benchmark's training data, the count models from the study's
corpus and the tokenizer of its first family (rebuilt from the corpus when ``tokenizers/`` is gone;
the study's recorded tokenizer hash must match, else the count models are left out); arms of other
families are reported as having no count model on their tokenizer.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from zoo.compare.branches import model_names
from zoo.compare.results import ComparisonResult, ItemValues, RunInfo
from zoo.compare.study import BASELINE, StudySettings, expand_grid, run_name, slug
from zoo.errors import ConfigError, ZooError

log = logging.getLogger(__name__)


def _resolve(path: str | None, out: Path) -> str | None:
    """A recorded path as it stands: absolute, or relative to the working directory, else to the study's parent."""
    if not path or path.startswith("hf:") or Path(path).is_absolute() or Path(path).exists():
        return path
    for base in out.parents:
        if (base / path).exists():
            return str(base / path)
    return path


def _record_info(name: str, rec: dict[str, Any], backbone: str, objective: str, seed: int, run_dir: Path,
                 budget: str, params: int | None) -> RunInfo:
    from zoo.compare.collect import run_info

    if (run_dir / "run.json").is_file():
        info = run_info(run_dir, name, rec)
        info.status, info.error = rec.get("status", "done"), rec.get("error")
        return info
    counters = rec.get("counters") or {}
    info = RunInfo(name, backbone, objective, seed, str(run_dir), status=rec.get("status", "missing"),
                   error=rec.get("error"), budget=budget, wall_s=rec.get("wall_s"), cpu_s=rec.get("cpu_s"),
                   params=counters.get("params", params))
    info.steps, info.flops = int(counters.get("steps", 0)), float(counters.get("flops", 0.0))
    info.head_flops = float(counters.get("head_flops", 0.0))
    info.tokens, info.train_time_s = int(counters.get("tokens", 0)), float(counters.get("train_time_s", 0.0))
    info.final_loss = counters.get("final_loss")
    return info


def _bench_seconds(info: RunInfo, rec: dict[str, Any], suite: str) -> None:
    """The recorded benchmarking seconds of the first suite (the compute table's column)."""
    seconds = (rec.get("bench_s") or {}).get(suite)
    if seconds is not None:
        info.bench_s = float(seconds)


def report_from_study(out: str | Path, count_models: bool = True) -> ComparisonResult:
    """The ``ComparisonResult`` of the study in ``out`` rebuilt from its ``study.json`` (see the module)."""
    from zoo.compare.runner import _budget_notes

    out = Path(out).resolve()
    path = out / "study.json"
    if not path.is_file():
        raise ConfigError(f"{out}: no study.json; --report-only rewrites the report of a study trained by zoo compare")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        settings = StudySettings.from_dict(data["settings"], f"{path}: settings")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a readable study file ({exc})") from exc
    grid = expand_grid(settings.objectives, settings.backbones)
    plans = data.get("plans", {})
    runs = []
    first_suite = settings.bench.suites[0] or ""
    budget = settings.budget.to_text() if settings.budget is not None else ""
    for cell in grid.cells:
        for seed in settings.seeds:
            for name in model_names(settings, cell, seed) if settings.budgets else [run_name(cell, seed)]:
                rec = data.get("runs", {}).get(name, {})
                runs.append(_record_info(name, rec, cell.backbone, cell.objective, seed, out / "runs" / name,
                                         rec.get("budget", budget), plans.get(slug(cell), {}).get("params")))
                runs[-1].parent = rec.get("parent")
                _bench_seconds(runs[-1], rec, first_suite)
    baselines = [RunInfo(name, rec.get("backbone", "?"), BASELINE, int(rec.get("seed", 0)), rec.get("path", ""),
                         baseline=True) for name, rec in data.get("baselines", {}).items()]
    for b in baselines:
        _bench_seconds(b, data["baselines"][b.name], first_suite)
    scores = {**{n: r.get("scores") or {} for n, r in data.get("runs", {}).items()},
              **{n: r.get("scores") or {} for n, r in data.get("baselines", {}).items()}}
    suites = data.get("suites") or {}
    missing = [r.name for r in runs if not Path(r.path, "run.json").is_file()]
    notes = _budget_notes(settings.budget) if settings.budget is not None else []
    notes.append("This report was rewritten from the study's study.json (`zoo compare --report-only`); nothing was "
                 "trained or benchmarked again." + (
                     f" {len(missing)} run director{'y is' if len(missing) == 1 else 'ies are'} not present, so the "
                     "item-level tests (which need each run's per-item results) are left out, and figures drawn "
                     "from the runs' validation curves are kept from the earlier report." if missing else ""))
    results = []
    for suite in settings.bench.suites:
        opts = settings.bench.for_suite(suite)
        tasks = suites.get(suite or "", [])
        copies = [replace(r, scores={t: scores.get(r.name, {})[t] for t in tasks if t in scores.get(r.name, {})},
                          metrics={}, evals=list(r.evals), bench_s=r.bench_s if suite == first_suite else 0.0)
                  for r in runs]
        bases = [replace(b, scores={t: scores.get(b.name, {})[t] for t in tasks if t in scores.get(b.name, {})})
                 for b in baselines]
        results.append(_suite_result(out, settings, data, opts, suite or "", tasks, copies, bases, notes,
                                     count_models))
    first, *others = results
    first.others = others
    first.wall_s = data.get("wall_s_total")
    first.plan = data.get("plan") or {}
    return first


def _suite_result(out: Path, settings: StudySettings, data: dict[str, Any], opts: Any, suite: str, tasks: list[str],
                  runs: list[RunInfo], baselines: list[RunInfo], notes: list[str],
                  count_models: bool) -> ComparisonResult:
    from zoo.benchmarks.minimal_pairs import is_pair_suite

    common = {"out": str(out), "mode": "study", "suite": suite, "tasks": tasks, "runs": runs,
              "baselines": baselines, "statistic": opts.statistic, "settings": settings.to_dict(), "notes": notes,
              "command": data.get("command"), "skipped": data.get("skipped", []),
              "tokenizers": data.get("tokenizers", {})}
    data_dir = _resolve(opts.data_dir, out)
    if is_pair_suite(suite):
        return _pairs_result(out, settings, data, opts, data_dir, common, count_models)
    from zoo.benchmarks.bench import _task_data
    from zoo.benchmarks.scoring import bag_of_words_scores, constant_predictor_scores
    from zoo.benchmarks.tasks import resolve_tasks
    from zoo.compare.collect import finetune_fields

    _, specs = resolve_tasks(suite, tasks)
    constant, bow = {}, {}
    try:
        for s in specs:
            task_data = _task_data(s, data_dir, opts.max_train_examples, opts.max_eval_examples)
            constant[s.name], bow[s.name] = constant_predictor_scores(task_data), bag_of_words_scores(task_data)
    except (ZooError, OSError) as exc:  # the benchmark data is gone: the report goes without these rows
        log.warning("no constant predictor or bag-of-words rows: %s", exc)
    return ComparisonResult(**common, **finetune_fields(suite, tasks, specs, opts, constant, bow))


def _pairs_result(out: Path, settings: StudySettings, data: dict[str, Any], opts: Any, data_dir: str | None,
                  common: dict[str, Any], count_models: bool) -> ComparisonResult:
    from zoo.benchmarks.minimal_pairs import load_suite, phenomena
    from zoo.compare.collect import ALL_PAIRS, pair_items

    tasks: list[str] = common["tasks"]
    meta: dict[str, Any] = {"suite": opts.suite, "kind": "minimal-pairs", "data": opts.data_dir or "hub",
                            "max_eval_examples": opts.max_eval_examples, "groups": {},
                            "scorers": dict((data.get("scorers") or {}).get(opts.suite, {}))}
    paradigms = []
    try:
        paradigms = [p for p in load_suite(opts.suite, data_dir, opts.max_eval_examples) if p.name in tasks]
        meta["groups"] = phenomena(paradigms)
    except (ZooError, OSError) as exc:  # the pairs are gone: no phenomenon table, no count models
        log.warning("cannot read the %s pairs (%s): no phenomena and no count models", opts.suite, exc)
    items: dict[str, dict[str, ItemValues]] = {}
    for r in common["runs"]:  # per-pair correctness from the run directories that are still there
        bench = Path(r.path) / "bench.json"
        if not bench.is_file():
            continue
        entry = json.loads(bench.read_text(encoding="utf-8")).get("suites", {}).get(opts.suite, {})
        model = next((m for m in entry.get("models", []) if not m.get("from_scratch")), None)
        if model:
            meta["scorers"][r.name] = model["scorer"]
            items[r.name] = {ALL_PAIRS: pair_items(model["correct"][model["scorer"]])}
    if count_models and paradigms:
        meta.update(_count_models(out, settings, data, paradigms))
        meta["run_tokenizers"] = _run_tokenizers(settings, data, [*common["runs"], *common["baselines"]])
    return ComparisonResult(**common, task_titles={p: p for p in tasks}, task_metrics={p: ["accuracy"] for p in tasks},
                            bench=meta, items=items)


def _count_models(out: Path, settings: StudySettings, data: dict[str, Any], paradigms: list[Any]) -> dict[str, Any]:
    """Count models and the length heuristic with the study's tokenizer of its first backbone family."""
    from zoo.benchmarks.ngram import equal_length_accuracy, score_pair_baselines
    from zoo.compare.study import base_config, shared_tokenizer_config
    from zoo.data import build_datasets
    from zoo.train.resolve import resolve

    grid = expand_grid(settings.objectives, settings.backbones)
    families = grid.families()
    backbone = grid.cells[0].backbone
    family = families[backbone]
    recorded = (data.get("tokenizers") or {}).get(family, {})
    local = replace(settings, data=_resolve(settings.data, out))
    cfg = resolve({**base_config(local, backbone), "objective": grid.cells[0].objective})
    tok_cfg = shared_tokenizer_config(local, grid, family)
    directory = out / "tokenizers" / family
    if (directory / "tokenizer.json").is_file():
        tok_cfg = replace(tok_cfg, path=str(directory / "tokenizer.json"))
    try:
        bundle = build_datasets(cfg.data, tok_cfg, family, None)
    except (ZooError, OSError) as exc:  # the corpus is gone
        return {"baseline_notes": [f"No count models: the study's corpus could not be read ({exc})."]}
    got = bundle.stats.get("tokenizer_hash")
    if recorded.get("tokenizer_hash") and got != recorded["tokenizer_hash"]:
        return {"baseline_notes": [f"No count models: the tokenizer rebuilt from the corpus (hash {str(got)[:12]}) is "
                                   f"not the study's ({str(recorded['tokenizer_hash'])[:12]})."]}
    pairs = {p.name: ([x.good for x in p.pairs], [x.bad for x in p.pairs]) for p in paradigms}
    base = score_pair_baselines(bundle.tokenizer, pairs, np.asarray(bundle.train.tokens),
                                np.asarray(bundle.train.sent_offsets))
    equal = base.equal_length()
    rebuilt = "" if tok_cfg.path else " (rebuilt from the corpus with the study's settings; its hash matches the study's)"
    equal_pairs = sum(int(m.sum()) for m in equal.values())
    digest = str(got or recorded.get("tokenizer_hash") or "")
    return {"baselines": {n: base.accuracy(n) for n in base.names},
            "baselines_equal_length": {n: equal_length_accuracy(base.outcomes[n], equal)[0] for n in base.names},
            "equal_pairs": equal_pairs,
            "count_model_tokenizers": {digest: {"label": f"{family} tokens", "baselines": list(base.names),
                                                "equal_pairs": equal_pairs}} if digest else {},
            "baseline_notes": [f"Count models: the {family} tokenizer{rebuilt}, trained on the "
                               f"{base.train_sentences:,} sentences ({base.train_tokens:,} tokens) of the corpus's "
                               "training split."]}


def _run_tokenizers(settings: StudySettings, data: dict[str, Any], runs: list[RunInfo]) -> dict[str, str]:
    """run name -> the recorded hash of its family's tokenizer (a study trains one tokenizer per family)."""
    families = expand_grid(settings.objectives, settings.backbones).families()
    recorded = data.get("tokenizers") or {}
    out = {}
    for r in runs:
        digest = (recorded.get(families.get(r.backbone, "")) or {}).get("tokenizer_hash")
        if digest:
            out[r.name] = str(digest)
    return out


def rewrite_report(out: str | Path) -> ComparisonResult:
    """Rewrite ``report.md``, ``results.json`` and the figures of the study in ``out`` from its study.json,
    holding the study's lock as ``zoo compare`` does; figures drawn from run directories that are gone
    are kept."""
    from zoo.compare.report import write_report
    from zoo.compare.study import claim_study, study_dir

    out = study_dir(out)
    if not (out / "study.json").is_file():
        raise ConfigError(f"{out}: no study.json; --report-only rewrites the report of a study trained by zoo compare")
    with claim_study(out):
        result = report_from_study(out)
        write_report(result, out, keep_figures=("curves", "compute"))
    return result
