"""``report.md``, ``results.json`` and the figures of a comparison, and the tables the terminal shows."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from zoo import fileio
from zoo.compare.results import ComparisonResult, Group, RunInfo
from zoo.compare.stats import Estimate, ItemComparison, format_level, holm, seeds_needed, sign_flip_min_seeds
from zoo.compare.study import BASELINE

log = logging.getLogger(__name__)

Table = tuple[list[str], list[list[str]]]


def fmt_estimate(est: Estimate | None, signed: bool = False) -> str:
    """``81.2 [79.0, 83.1]`` (x100); a single seed has no interval."""
    if est is None:
        return "-"
    sign = "+" if signed else ""
    point = f"{100 * est.point:{sign}.1f}"
    if not est.has_interval:
        return f"{point} (1 seed)"
    return f"{point} [{100 * est.low:{sign}.1f}, {100 * est.high:{sign}.1f}]"


def _si(x: float | None, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.3g}{unit}" if abs(x) < 1e4 else f"{x:.3e}{unit}"


def _seconds(x: float | None) -> str:
    if x is None:
        return "-"
    if x < 10:
        return f"{x:.1f} s"
    return f"{x:.0f} s" if x < 600 else f"{x / 60:.1f} min"


def _level(est: Estimate | None) -> str:
    return est.label if est is not None and est.has_interval else "-"


def score_table(result: ComparisonResult) -> Table:
    """One row per (backbone, objective), baselines included, and the constant predictor: each task and
    the average, with intervals over seeds whose actual level is the last column."""
    columns = ["backbone", "objective", *(result.task_titles.get(t, t) for t in result.tasks), "average", "seeds",
               "interval"]
    rows = []
    for g in result.groups:
        rows.append([g.backbone, g.objective, *(fmt_estimate(g.tasks.get(t)) for t in result.tasks),
                     fmt_estimate(g.average), str(len(g.runs)), _level(g.average)])
    for name, acc in (result.bench.get("baselines") or {}).items():  # minimal pairs: count models, length
        if all(t in acc for t in result.tasks):
            rows.append(["-", name, *(f"{100 * acc[t]:.1f}" for t in result.tasks),
                         f"{100 * float(np.mean([acc[t] for t in result.tasks])):.1f}", "-", "none (deterministic)"])
    for name, scores, avg in ((CONSTANT, result.constant, result.constant_average()),
                              (BAG_OF_WORDS, result.bag_of_words, result.bag_of_words_average())):
        if scores:
            rows.append(["-", name, *(f"{100 * scores[t]:.1f}" if t in scores else "-" for t in result.tasks),
                         f"{100 * avg:.1f}" if avg is not None else "-", "-", "none (no randomness)"])
    return columns, rows


CONSTANT = "constant predictor"
BAG_OF_WORDS = "bag of words"
ALPHA = 0.05
PLANNED_DIFFERENCES = (0.5, 1.0, 2.0, 5.0)  # points (score x100) for the seeds-needed line


def _p(p: float | None) -> str:
    if p is None or math.isnan(p):
        return "-"
    return f"{p:.2g}" if p >= 0.001 else "<0.001"


def reading(diff: Estimate, p_holm: float | None, a: str, b: str) -> str:
    """``not distinguishable`` when the interval contains 0; a winner only when the Holm-adjusted p is
    also below 0.05."""
    if not diff.has_interval:
        return "no interval (1 seed)"
    if not diff.excludes(0.0):
        return "not distinguishable"
    ahead = a if diff.point > 0 else b
    if p_holm is not None and p_holm < ALPHA:
        return f"{ahead} better"
    return f"{ahead} ahead, not significant after Holm"


def pair_table(result: ComparisonResult) -> Table:
    m = len(result.pairs)
    columns = ["backbone", "A", "B", "A - B (avg x100)", "p (sign-flip, seeds)", "p (Holm)", "A ahead",
               f"seeds for 80% power (Holm, {m} pairs)", "reading"]
    rows = []
    for p in result.pairs:
        c = p.seeds
        wins = f"{c.wins}/{c.diff.n} seeds" if c.wins is not None else "unpaired"
        need = "-" if c.seeds_needed is None else str(c.seeds_needed)
        rows.append([p.backbone, p.a, p.b, fmt_estimate(c.diff, signed=True), _p(c.p), _p(c.p_holm), wins, need,
                     reading(c.diff, c.p_holm, p.a, p.b)])
    return columns, rows


def cross_table(result: ComparisonResult) -> Table:
    """Arms on different backbones, unpaired: Welch over seeds, Holm over these rows alone."""
    columns = ["A", "B", "seeds (A, B)", "A - B (avg x100)", "p (Welch, seeds)", "p (Holm)", "reading"]
    rows = []
    for c in result.cross_pairs:
        a, b = c.a.label, c.b.label
        rows.append([a, b, f"{len(c.a.runs)}, {len(c.b.runs)}", fmt_estimate(c.seeds.diff, signed=True), _p(c.seeds.p),
                     _p(c.seeds.p_holm), reading(c.seeds.diff, c.seeds.p_holm, a, b)])
    return columns, rows


def _cross_note(result: ComparisonResult) -> str:
    m = len(result.cross_pairs)
    return (f"Arms on different backbones share no initial weights, so seed s of one is no pair for seed s of the "
            f"other: A - B of the average score (x100) is the difference of the means over seeds with Welch's "
            f"{format_level(result.confidence)} t interval and Welch's t test (unequal variances), p Holm-adjusted "
            f"over these {m} difference(s) alone. Each difference mixes the objective with the architecture "
            "(and with the tokenizer, where the families use different ones). A winner is named only when the "
            "interval excludes 0 and the Holm-adjusted p is below 0.05.")


def item_reading(c: ItemComparison, a: str, b: str) -> str:
    """A winner only when the test over seeds and items and the sign-flip test over the same per-seed
    differences both reject after Holm; with one seed the item test is conditional on that seed."""
    if not c.diff.excludes(0.0):
        return "not distinguishable"
    ahead = a if c.diff.point > 0 else b
    items_ok = c.p_holm is not None and c.p_holm < ALPHA
    if c.conditional:
        return (f"{ahead} ahead on these items, given this one seed" if items_ok
                else f"{ahead} ahead, not significant after Holm")
    seeds_ok = c.p_seeds_holm is not None and c.p_seeds_holm < ALPHA
    if items_ok and seeds_ok:
        return f"{ahead} better"
    if items_ok:
        return f"{ahead} ahead, the seed-level test does not agree ({c.seeds} seeds)"
    return f"{ahead} ahead, not significant after Holm"


def item_table(result: ComparisonResult) -> Table:
    columns = ["backbone", "A", "B", "task", "metric", "items", "A - B (x100)", "p (seeds and items, t)", "p (Holm)",
               "p (sign-flip, seeds; Holm)", "reading"]
    rows = []
    for p in result.pairs:
        for t, c in p.items.items():
            seed_p = "-" if c.conditional else f"{_p(c.p_seeds)}; {_p(c.p_seeds_holm)}"
            rows.append([p.backbone, p.a, p.b, result.task_titles.get(t, t), ITEM_METRIC_NAMES.get(c.metric, c.metric),
                         f"{c.items:,}", fmt_estimate(c.diff, signed=True), _p(c.p), _p(c.p_holm), seed_p,
                         item_reading(c, p.a, p.b)])
    return columns, rows


ITEM_METRIC_NAMES = {"mean": "accuracy", "mcc": "MCC", "f1": "F1", "accuracy_f1": "(accuracy + F1) / 2"}


def compute_table(result: ComparisonResult) -> Table:
    columns = ["run", "status", "steps", "train FLOPs", "head FLOPs", "tokens", "train time", "wall time",
               "CPU time", "final val loss", "fine-tuning"]
    rows = []
    for r in result.runs:
        loss = r.final_eval_loss()
        rows.append([r.name, r.status if r.status == "done" else f"{r.status}: {r.error or ''}"[:80], str(r.steps),
                     _si(r.flops), _head(r), f"{r.tokens:,}", _seconds(r.train_time_s), _seconds(r.wall_s), _seconds(r.cpu_s),
                     f"{loss:.3f}" if loss is not None else "-", _seconds(r.bench_s) if r.scores and r.bench_s else "-"])
    for b in result.baselines:
        rows.append([b.name, "baseline", "0", "0", "0", "0", "-", "-", "-", "-",
                     _seconds(b.bench_s) if b.bench_s else "-"])
    return columns, rows


def _head(r: RunInfo) -> str:
    """The heads' training FLOPs and their share of the run's ("-" where the run did not record them)."""
    if r.head_flops <= 0 or r.flops <= 0:
        return "-"
    return f"{_si(r.head_flops)} ({100 * r.head_flops / r.flops:.0f}%)"


def metric_table(result: ComparisonResult) -> Table:
    """Every official metric (its median over seeds), for tasks with several metrics."""
    cols = [(t, m) for t in result.tasks for m in result.task_metrics.get(t, [])]
    columns = ["backbone", "objective", *(f"{result.task_titles.get(t, t)} {m}" for t, m in cols)]
    rows = []
    for g in result.groups:
        row = [g.backbone, g.objective]
        for t, m in cols:
            values = [r.metrics[t][m] for r in g.runs if m in r.metrics.get(t, {})]
            stat = np.median if result.statistic == "median" else np.mean
            row.append(f"{100 * float(stat(values)):.1f}" if values else "-")
        rows.append(row)
    return columns, rows


def _md(table: Table) -> list[str]:
    columns, rows = table
    esc = [[c.replace("|", "\\|") for c in r] for r in rows]
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns), *("| " + " | ".join(r) + " |" for r in esc)]


def _n_seeds(result: ComparisonResult) -> int:
    return max((len(g.runs) for g in result.groups), default=0)


def statistics_note(result: ComparisonResult) -> str:
    n = _n_seeds(result)
    stat = result.statistic
    level = format_level(result.confidence)
    how = (f"the distribution-free order-statistic interval of the median, at the largest level {n} seed(s) "
           f"allow up to {level}: with few seeds it is [min, max], whose actual level is printed (3 seeds: 75%, "
           f"5 seeds: 93.8%), never more than it is" if stat == "median" else
           f"the {level} Student t interval of the mean")
    text = (f"Cells are the {stat} over pretraining seeds of each run's task score (x100; a task's score is the mean "
            f"of its official metrics, MRPC accuracy and F1 for instance, each the median over "
            f"{result.bench.get('fine_tune_seeds', 1)} fine-tuning seed(s)); brackets are {how} (the `interval` "
            f"column). The average is the {stat} over seeds of each run's mean task score.")
    if result.constant:
        text += (f" The `{CONSTANT}` row always answers the majority class of the training labels (the training "
                 "mean for regression), scored on the same dev examples with the official metrics: a model near "
                 "it has learned nothing usable for the task.")
    if result.bag_of_words:
        from zoo.benchmarks.scoring import BAG_OF_WORDS as HOW

        text += (f" The `{BAG_OF_WORDS}` row is a {HOW}, trained on the same training examples: pretraining has "
                 "bought something a word count cannot give only where a model is above it.")
    return text


def _pair_notes(result: ComparisonResult) -> list[str]:
    n = _n_seeds(result)
    m = len(result.pairs)
    lines = [f"Difference of the average score, A - B (x100): the mean of the per-seed differences with its "
             f"{format_level(result.confidence)} t interval when both sides have the same seeds (seed s of both "
             "starts from the same initial weights and uses the same fine-tuning seeds), Welch's interval "
             "otherwise. p is the exact sign-flip permutation test of the per-seed differences (all 2^n sign "
             "patterns enumerated; Welch's t test when unpaired). Objectives on different backbones are not "
             "paired: their difference mixes the objective with the architecture"
             + (" (compared unpaired below, \"Across backbones\")." if result.cross_pairs else "."),
             "",
             f"{m} pair(s) were tested: p (Holm) is adjusted for that many comparisons (Holm's step-down method, "
             "family-wise error at most 5%). \"Not distinguishable\" means the interval contains 0; a winner is "
             "named only when the interval excludes 0 and the Holm-adjusted p is below 0.05."]
    if n:
        need_min = sign_flip_min_seeds(ALPHA, m)
        lines += ["", f"With {n} seeds the smallest p the sign-flip test can give is 2/2^{n} = {2 / 2**n:.3g}"
                  + (" (below 0.05 only from 6 seeds)" if 2 / 2**n >= ALPHA else "")
                  + f". Holm's first step over the {m} pair(s) asks for p <= 0.05/{m} = {ALPHA / m:.3g}, which the "
                  f"sign-flip test can reach only from {need_min} seeds"
                  + (f": with {n} no pair can be significant after Holm, however large its difference."
                     if n < need_min else ".")
                  + f" \"Seeds for 80% power\" is the number of seeds a paired t test at that level (0.05/{m}) would "
                  "need to detect a true difference as large as the observed one with probability 0.8, given the "
                  "observed spread of the per-seed differences (noncentral t; at least the sign-flip test's minimum "
                  "for that level): a rough planning number, since both the difference and the spread are estimated "
                  "from these seeds."]
        if any(p.items for p in result.pairs):
            lines += ["", "The item-level test (next section) adds the evaluation items' sampling to the seed-level "
                      "spread; a winner is named there only when the sign-flip test over the seeds agrees, so it "
                      "cannot get round the floor above."]
    sds = [p.seeds.sd for p in result.pairs if p.seeds.sd]
    if sds:
        sd = float(np.median(sds))
        need = [(d, seeds_needed(d / 100, sd, tests=max(1, m))) for d in PLANNED_DIFFERENCES]
        lines += ["", f"Seeds needed for a given difference of the average score, at the median spread of the per-seed "
                  f"differences here (sd {100 * sd:.2f} points; 80% power, paired t test at 0.05/{m} = "
                  f"{ALPHA / max(1, m):.3g}): "
                  + ", ".join(f"{d:g} point{'s' if d != 1 else ''}: {n if n is not None else 'more than 10,000'}"
                              for d, n in need) + "."]
    return lines


def _item_notes(result: ComparisonResult) -> list[str]:
    m = sum(len(p.items) for p in result.pairs)
    return [f"The same pairs, per task, over evaluation items: A - B of the task score (x100) computed from each "
            f"model's per-item predictions, the mean over seeds of the per-seed differences. Its standard error has "
            "two parts: the spread of the per-seed differences (the seed level, which also holds the per-(seed, "
            "item) noise) and the sampling of the evaluation items, which that spread cannot see because every seed "
            "is scored on the same items (a bootstrap of the items with the seeds held fixed; BLiMP pairs are drawn "
            "within their paradigm). The difference over that standard error is referred to Student t with the "
            "Welch-Satterthwaite degrees of freedom of the two parts (the number of seeds minus 1 when the seeds "
            f"dominate); the interval is {format_level(result.confidence)} t. `p (sign-flip, seeds; Holm)` is the "
            "exact sign-flip test of the same per-seed differences. A winner is named only when both are below 0.05 "
            f"after Holm over the {m} test(s). With one seed the item p holds for these items given that seed only. "
            "Left out: tasks without a per-item form here (regression, several evaluation splits), and runs whose "
            "cached fine-tuning results predate per-item predictions (delete their `bench-cache/` to recompute)."]


def scores_section(result: ComparisonResult, figures: dict[str, Path], suite_title: bool = False,
                   prefix: str = "") -> list[str]:
    """The scores of one suite: the score table (per phenomenon first for minimal pairs), the paired
    comparisons over seeds and over evaluation items; figure links are ``prefix`` + file name."""
    suite = f" ({result.suite.upper()})" if suite_title else ""
    lines = [f"## Downstream scores{suite}", "", statistics_note(result), ""]
    if any(g.baseline for g in result.groups):
        how = ("scored zero-shot with the scorer of the model it mirrors" if result.bench.get("kind") == "minimal-pairs"
               else "fine-tuned with the same recipe")
        lines += [f"`{BASELINE}` rows are the same architecture and tokenizer, randomly initialised with each "
                  f"seed and {how}: the distance to them is what pretraining bought.", ""]
    if result.bench.get("kind") == "minimal-pairs":
        lines += _phenomena_lines(result, figures, prefix)
    lines += _md(score_table(result)) + [""]
    if "scores" in figures and result.bench.get("kind") != "minimal-pairs":
        lines += [f"![Downstream scores per task and on average]({prefix}scores.png)", ""]
    if result.pairs:
        lines += [f"## Paired comparison over seeds (same backbone){suite}", "", *_pair_notes(result), ""]
        lines += _md(pair_table(result)) + [""]
        if "pairs" in figures:
            lines += [f"![Differences of average score]({prefix}pairs.png)", ""]
        if any(p.items for p in result.pairs):
            lines += [f"## Paired comparison over evaluation items{suite}", "", *_item_notes(result), ""]
            lines += _md(item_table(result)) + [""]
    if result.cross_pairs:
        lines += [f"## Across backbones (unpaired){suite}", "", _cross_note(result), ""]
        lines += _md(cross_table(result)) + [""]
    lines += multiplier_lines(result, figures, suite, prefix, loss=not prefix)
    return lines


def _curve_rows(curves: list) -> list[list[str]]:
    from zoo.compare.curves import slope_per_decade

    rows = []
    for c in curves:
        s = slope_per_decade(c)
        slope = "-" if s is None else f"{s.point:+.3f}"
        if s is not None and s.has_interval:
            slope += f" [{s.low:+.3f}, {s.high:+.3f}]"
        rows.append([c.backbone, c.objective, str(c.budgets), str(len(c.seeds)), slope,
                     "yes" if c.monotone else "no", c.reason or "yes"])
    return rows


def _multiplier_rows(pairs: list, adj: list[float] | None = None) -> list[list[str]]:
    """One row per multiplier; p (Holm) over ``pairs`` unless ``adj`` gives the adjusted values."""
    adj = holm([m.p for m in pairs]) if adj is None else adj
    return [[" ".join(m.a), " ".join(m.b), m.text(), _p(m.p), _p(p_holm) if m.log_k else "-",
             str(m.beyond) if m.log_k else "-", m.reading(p_holm)] for m, p_holm in zip(pairs, adj, strict=True)]


CURVE_COLUMNS = ["backbone", "objective", "budgets", "seeds", "slope per 10x FLOPs [t interval over seeds]",
                 "monotone", "usable for a multiplier"]
MULTIPLIER_COLUMNS = ["A", "B", "k(A -> B) [interval]", "p (sign-flip, seeds)", "p (Holm)",
                      "seeds extrapolated", "reading"]


def multiplier_lines(result: ComparisonResult, figures: dict[str, Path], suite: str = "", prefix: str = "",
                     loss: bool = True) -> list[str]:
    """The ``Compute multipliers`` section: present when an arm was trained at 2 or more budgets."""
    from zoo.compare.curves import method_note

    study = result.curves()
    if study is None:
        return []
    lines = [f"## Compute multipliers{suite}", "", method_note(result.confidence), ""]
    if result.bench.get("kind") != "minimal-pairs":
        lines += ["Task scores of a fine-tuning suite are not fitted: their average mixes metrics (MCC, F1) that "
                  "have no logit scale. Only the held-out loss is.", ""]
    if study.curves:
        lines += ["Per arm: the slope of the fitted line (logit of the macro-average accuracy per factor 10 of "
                  "training FLOPs) with its t interval over seeds, and whether the arm can be used.", ""]
        lines += _md((CURVE_COLUMNS, _curve_rows(study.curves))) + [""]
        if study.pairs:
            lines += [f"Multipliers on the macro average over paradigms; p (Holm) over the {len(study.pairs)} "
                      "pair(s). The reading follows the interval.", ""]
            lines += _md((MULTIPLIER_COLUMNS, _multiplier_rows(study.pairs))) + [""]
        if "scaling" in figures:
            lines += [f"![Accuracy vs training FLOPs]({prefix}scaling.png)", ""]
    if study.phenomena:
        flags = [f"{c.label} on {name}" + (f" (paradigms that fall: {', '.join(c.falling)})" if c.falling else "")
                 for name, cs in study.phenomena.items() for c in cs if not c.monotone]
        lines += ["Per phenomenon (mean accuracy over its paradigms). Not monotone: "
                  + ("; ".join(flags) if flags else "none") + ". Early training can learn word frequencies that "
                  "mislead some paradigms, so a phenomenon's curve may fall before it rises; no line is fitted "
                  "through such a curve.", ""]
        keyed = [(name, m) for name, ms in study.phenomenon_pairs.items() for m in ms]
        adj = holm([m.p for _, m in keyed])  # one family: every (phenomenon, pair)
        rows = [[name, *row] for (name, _), row in zip(keyed, _multiplier_rows([m for _, m in keyed], adj),
                                                        strict=True)]
        if rows:
            lines += [f"p (Holm) over all {len(rows)} (phenomenon, pair) multipliers.", ""]
            lines += _md((["phenomenon", *MULTIPLIER_COLUMNS], rows)) + [""]
    if loss and study.loss_curves:
        lines += ["Held-out loss (the final validation loss, fitted negated so that a rising line is an "
                  "improving one): losses of different objectives measure different predictions, so a loss "
                  "multiplier is computed only between arms with the same objective on backbones of the same "
                  "tokenizer family.", ""]
        lines += _md((CURVE_COLUMNS, _curve_rows(study.loss_curves))) + [""]
        if study.loss_pairs:
            lines += _md((MULTIPLIER_COLUMNS, _multiplier_rows(study.loss_pairs))) + [""]
        else:
            lines += ["No pair of arms shares an objective and a tokenizer family: no loss multiplier.", ""]
    return lines


def plan_table(plan: dict) -> Table:
    """Planned vs actual wall time per phase of a study planned by wall time (study.json "plan")."""
    from zoo.compare.plan import PHASES

    planned, actual = plan["plan"]["phases"], plan.get("actual", {})
    rows = [[phase, _seconds(planned.get(phase)), _seconds(actual.get(phase)) if phase in actual else "-"]
            for phase in PHASES]
    total_a = sum(actual.get(p, 0.0) for p in PHASES)
    rows.append(["total", _seconds(sum(planned.get(p, 0.0) for p in PHASES)), _seconds(total_a)])
    return ["phase", "planned", "actual"], rows


def plan_lines(plan: dict) -> list[str]:
    """The "Plan vs actual" section (empty for a study given its budget)."""
    if not plan or "plan" not in plan:
        return []
    p = plan["plan"]
    pairs = "all pairs" if p.get("max_pairs") is None else f"{p['max_pairs']} pairs per paradigm"
    budgets = p.get("budgets") or [p["budget"]]
    design = (f"budgets {', '.join(budgets)} (cooldown branches of {p.get('cooldown', 0.2):g} of one trunk per arm "
              f"and seed)" if len(budgets) > 1 else f"{p['budget']} per run")
    lines = ["## Plan vs actual", "",
             f"Planned for {p['hours']:g} h on this machine from measured speeds: {design} "
             f"({p['layout']} = jobs x threads), {pairs}, training {p['phases']['train'] / (3600 * p['hours']):.0%} of "
             f"the {p['hours']:g} h. "
             "Actual times are wall times of every invocation together; other work on the machine lengthens them.", ""]
    lines += _md(plan_table(plan)) + [""]
    for note in p.get("notes", []):
        lines += [f"> **Note.** {note}", ""]
    return lines


def markdown(result: ComparisonResult, figures: dict[str, Path],
             others_figures: list[dict[str, Path]] | None = None) -> str:
    lines = ["# Objective comparison" + (" at equal compute" if result.mode == "study" else ""), ""]
    if result.command:
        lines += ["```", result.command, "```", ""]
    lines += _setup_lines(result)
    for note in result.notes:
        lines += [f"> **Note.** {note}", ""]
    several = bool(result.others)
    lines += scores_section(result, figures, suite_title=several)
    for other, other_figures in zip(result.others, others_figures or [{}] * len(result.others), strict=True):
        lines += scores_section(other, other_figures, suite_title=True, prefix=f"{other.suite}/")
    lines += ["## Compute used", ""]
    lines += ["Training FLOPs count the backbone and the objective's heads, forward and backward (3 x forward), as "
              "the trainer's budget does. Train time is the training loop alone; wall time adds data loading, "
              "evaluation and checkpoints; CPU time is the training call's process CPU time over all its threads "
              "(unlike wall time, not inflated by other jobs on the machine). Equal FLOPs is not equal tokens: an "
              "objective with a costly head (a "
              "full-vocabulary softmax at every position) sees fewer tokens.", ""]
    lines += _md(compute_table(result)) + [""]
    if result.settings.get("budgets"):
        from zoo.compare.branches import report_lines

        lines += report_lines(result, fileio.read_json(Path(result.out) / "study.json"))
    if "compute" in figures:
        lines += ["![Compute used per run](compute.png)", ""]
    lines += plan_lines(result.plan)
    lines += ["## Validation loss", "",
              "Each objective's own held-out loss (the `kind: eval` records of `metrics.jsonl`) against training "
              "FLOPs. Losses of different objectives measure different predictions (masked tokens, the next token, "
              "corrupted spans, a sentence-pair label added on top) and are not on one scale, so each objective has "
              "its own panel: compare how the curves fall, not their heights across panels.", ""]
    if "curves" in figures:
        lines += ["![Validation loss vs training FLOPs](curves.png)", ""]
    if any(len(ms) > 1 for ms in result.task_metrics.values()):
        lines += ["## Every metric", "", f"The {result.statistic} over seeds of each official metric (x100).", ""]
        lines += _md(metric_table(result)) + [""]
    if result.skipped:
        lines += ["## Pairs not trained", ""]
        lines += [f"- `{x['objective']}` x `{x['backbone']}`: {x['reason']}" for x in result.skipped] + [""]
    if result.failed:
        lines += ["## Failed runs", ""]
        lines += [f"- `{r.name}`: {r.error}" for r in result.failed] + [""]
    if result.wall_s is not None:
        lines += [f"Wall time of this invocation{'s' if result.mode == 'study' else ''}: "
                  f"{_seconds(result.wall_s)} (cached and reused work is not repeated)." if result.mode == "runs" else
                  f"Total wall time of the study (all invocations): {_seconds(result.wall_s)}.", ""]
    return "\n".join(lines)


def _group_tokenizer(result: ComparisonResult, g: Group) -> str | None:
    """The tokenizer hash an arm's runs used (``bench["run_tokenizers"]``), None when not recorded."""
    run_tok = result.bench.get("run_tokenizers") or {}
    return next((run_tok[r.name] for r in g.runs if r.name in run_tok), None)


def _several_tokenizers(result: ComparisonResult) -> bool:
    """Whether the minimal-pair baselines or the runs span more than one tokenizer."""
    hashes = set(result.bench.get("count_model_tokenizers") or {})
    hashes |= set((result.bench.get("run_tokenizers") or {}).values())
    return len(hashes) > 1


def _tokenizer_label(result: ComparisonResult, digest: str, label: str) -> str:
    """``the BPE tokenizer (gpt-clm-seed0 tokens)``: the kind recorded for the study's tokenizer of that hash."""
    kind = next((t.get("tokenizer_kind") for t in result.tokenizers.values()
                 if str(t.get("tokenizer_hash")) == digest and t.get("tokenizer_kind")), None)
    name = f"the {kind} tokenizer" if kind else "the tokenizer"
    return f"{name} ({label})" if label else name


def count_model_regime(result: ComparisonResult) -> list[str]:
    """Per group: below, at or above the best count model's macro average (its interval against it). With
    several tokenizers (a study of several families), each arm against the best count model on its own
    tokenizer: a count model on other tokens scores other token sequences."""
    from zoo.benchmarks.ngram import LENGTH

    base = result.bench.get("baselines") or {}
    counts = {n: float(np.mean([acc[p] for p in result.tasks])) for n, acc in base.items()
              if not n.startswith(LENGTH) and all(p in acc for p in result.tasks)}
    if not counts:
        return []
    tail = ("Pretraining has bought something a count cannot give only where a row is above it; a random init is "
            "no measure of that.")

    def regime(g: Group, best: float) -> str:
        return f"{g.label} " + ("above" if g.average.low > best else "below" if g.average.high < best else "at")

    groups = [g for g in result.groups if g.average is not None and g.average.has_interval]
    if not _several_tokenizers(result) or not result.bench.get("count_model_tokenizers"):
        best_name, best = max(counts.items(), key=lambda kv: kv[1])
        out = [regime(g, best) for g in groups]
        return [f"Against the best count model ({best_name}, {100 * best:.1f}): " + "; ".join(out) + ". "
                + tail] if out else []
    by_tokenizer: dict[str, tuple[str, float]] = {}
    for digest, t in (result.bench.get("count_model_tokenizers") or {}).items():
        own = {n: v for n, v in counts.items() if n in set(t.get("baselines") or [])}
        if own:
            by_tokenizer[digest] = max(own.items(), key=lambda kv: kv[1])
    placed: dict[str, list[str]] = {d: [] for d in by_tokenizer}
    unplaced = []
    for g in groups:
        digest = _group_tokenizer(result, g)
        if digest in by_tokenizer:
            placed[digest].append(regime(g, by_tokenizer[digest][1]))
        else:
            unplaced.append(g.label)
    parts = [f"{name}, {100 * best:.1f}: " + ", ".join(placed[d]) for d, (name, best) in by_tokenizer.items()
             if placed[d]]
    if not parts and not unplaced:
        return []
    text = "Against the best count model on each arm's own tokenizer (a count model on other tokens scores other " \
           "token sequences): " + ("; ".join(parts) + "." if parts else "none has one.")
    if unplaced:
        text += f" No count model on the tokenizer of: {', '.join(unplaced)}."
    return [f"{text} {tail}"]


def _equal_length_sentence(result: ComparisonResult) -> str:
    """What the equal-length row counts: one number of pairs, or one per tokenizer (token counts differ)."""
    toks = result.bench.get("count_model_tokenizers") or {}
    if _several_tokenizers(result) and any(t.get("equal_pairs") for t in toks.values()):
        each = ", ".join(f"{int(t.get('equal_pairs') or 0):,} under {_tokenizer_label(result, d, t.get('label', ''))}"
                         for d, t in toks.items())
        return (" The last row is the accuracy on the pairs whose two sentences have the same number of tokens "
                f"under the column's tokenizer, where length cannot decide ({each}).")
    if result.bench.get("equal_pairs") and not _several_tokenizers(result):
        return (f" The last row is the accuracy on the {result.bench['equal_pairs']:,} pairs whose two sentences "
                "have the same number of tokens, where length cannot decide.")
    return ""


def _phenomena_lines(result: ComparisonResult, figures: dict[str, Path], prefix: str = "") -> list[str]:
    """Minimal pairs: accuracy per phenomenon (mean over its paradigms), then the per-paradigm table; the
    trivial baselines (count models, length heuristic) as columns, and the accuracy on equal-length pairs."""
    phenomena: dict[str, list[str]] = result.bench.get("groups") or {}
    groups = [g for g in result.groups if g.runs]
    scorers = result.bench.get("scorers", {})
    base: dict[str, dict[str, float]] = {n: acc for n, acc in (result.bench.get("baselines") or {}).items()
                                         if all(p in acc for p in result.tasks)}
    lines = [f"Zero-shot minimal pairs: a pair is right when the acceptable sentence scores higher (scorers: "
             f"{', '.join(sorted(set(scorers.values()))) or '-'}). Rows: phenomena (mean over their paradigms) and "
             f"the macro average over the {len(result.tasks)} paradigms; cells: {result.statistic} over seeds, x100. "
             f"Per-pair correctness is in each run's bench.json, for paired tests on the same items.", ""]
    if base:
        lines += ["Trivial baselines on the same pairs and tokenizer, as the last columns: unigram, bigram and "
                  "trigram interpolated Kneser-Ney count models trained on the training split of the study's corpus "
                  "(each sentence scored whole: start-of-sentence context, end-of-sentence symbol), and `fewer "
                  "tokens` (the shorter sentence wins, ties count half)."
                  + _equal_length_sentence(result), ""]
    for note in result.bench.get("baseline_notes") or []:
        lines += [f"> {note}", ""]
    lines += ["| phenomenon | " + " | ".join(g.label for g in groups) + "".join(f" | {n}" for n in base) + " |",
              "|---|" + "---|" * (len(groups) + len(base))]
    for name, ps in phenomena.items():
        cells = [100 * float(np.median([np.mean([r.scores[p] for p in ps]) for r in g.runs])) for g in groups]
        cells += [100 * float(np.mean([acc[p] for p in ps])) for acc in base.values()]
        lines.append(f"| {name} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    lines.append("| macro average | " + " | ".join(fmt_estimate(g.average) for g in groups)
                 + "".join(f" | {100 * float(np.mean([acc[p] for p in result.tasks])):.1f}" for acc in base.values())
                 + " |")
    equal = result.bench.get("equal_length") or {}
    base_eq = {n: v for n, v in (result.bench.get("baselines_equal_length") or {}).items()
               if v is not None and math.isfinite(v)}
    if equal or base_eq:  # "-" for a model without per-pair results

        def med(g: Group) -> str:
            vals = [equal[r.name] for r in g.runs if r.name in equal]
            return f"{100 * float(np.median(vals)):.1f}" if vals else "-"

        lines.append("| equal-length pairs | " + " | ".join(med(g) for g in groups)
                     + "".join(f" | {100 * base_eq[n]:.1f}" if base_eq.get(n) is not None else " | -" for n in base)
                     + " |")
    lines.append("")
    lines += [*count_model_regime(result), ""] if base else []
    if "scores" in figures:
        lines += [f"![Accuracy per phenomenon]({prefix}scores.png)", ""]
    return lines + ["Per paradigm:", ""]


def _setup_lines(result: ComparisonResult) -> list[str]:
    s = result.settings
    out = ["## Setup", ""]
    if result.mode == "study":
        overrides = ", ".join(f"`{o}`" for o in s.get("train_overrides", [])) or "none"
        params = {}
        for r in result.runs:
            if r.params and r.status == "done":
                params.setdefault(r.label, r.params)
        out += [
            f"- **Budget per run:** {result.budget}; every run has the same budget, corpus, model size "
            "and training settings; only the objective, backbone and seed change.",
            f"- **Pretraining seeds:** {', '.join(map(str, s['seeds']))}.",
            f"- **Model:** size `{s['size']}`"
            + (f", seq_len {s['seq_len']}" if s.get("seq_len") else "")
            + (f", batch {s['batch_size']}" if s.get("batch_size") else "")
            + f"; other training settings: {overrides}.",
            "- **Parameters (backbone + heads):** " + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in params.items()) + ".",
            f"- **Corpus:** {s.get('data') or 'the embedded default corpus'}.",
        ]
    else:
        out += [f"- **Runs:** {len(result.runs)} existing run(s), benchmarked as they are (nothing was trained)."]
    for family, t in result.tokenizers.items():
        detail = ", ".join(x for x in (
            t.get("tokenizer_kind") and f"{t['tokenizer_kind']}", t.get("vocab_size") and f"{t['vocab_size']:,} entries",
            t.get("tokenizer_hash") and f"hash {str(t['tokenizer_hash'])[:12]}",
            t.get("train_tokens") and f"{t['train_tokens']:,} training tokens") if x)
        out.append(f"- **Tokenizer ({family}s):** one for every run of the family ({detail}).")
    return out + [_benchmark_line(r) for r in (result, *result.others)] + [""]


def _benchmark_line(result: ComparisonResult) -> str:
    b = result.bench
    limits = ", ".join(x for x in (
        b.get("max_train_examples") and f"at most {b['max_train_examples']:,} training examples per task",
        b.get("max_eval_examples") and f"at most {b['max_eval_examples']:,} evaluation examples") if x)
    recipes = b.get("recipes", {})
    recipe = next(iter(recipes.values()), {})
    varying = sorted({k for r in recipes.values() for k, v in r.items() if v != recipe.get(k)})
    if b.get("kind") == "minimal-pairs":
        n = b.get("max_eval_examples")
        return (f"- **Benchmark:** {result.suite.upper()} minimal pairs, zero-shot (no fine-tuning), "
                f"{len(result.tasks)} paradigms from {b.get('data', 'hub')}"
                + (f"; the first {n:,} pairs of each" if n else "") + ".")
    return (f"- **Benchmark:** {result.suite.upper()} {', '.join(result.task_titles.get(t, t) for t in result.tasks)}"
               f" dev sets from {b.get('data', 'hub')}" + (f"; {limits}" if limits else "")
               + f"; fine-tuning recipe lr {recipe.get('lr')}, {recipe.get('epochs')} epochs, batch "
               f"{recipe.get('batch_size')}, max length {recipe.get('max_length')}"
               + (f" (per task: {', '.join(varying)} differ)" if varying else "") + "; " + _method_words(recipe) + ".")


def _method_words(recipe: dict[str, Any]) -> str:
    """How the recipe fine-tunes: its ``method`` (``auto``: text-to-text for t5, a task head otherwise)."""
    method = recipe.get("method", "auto")
    decoding = f" ({recipe.get('decoding', 'greedy')} decoding)"
    if method == "auto":
        return f"method auto: t5 text-to-text{decoding}, other backbones a task head"
    return "method text-to-text" + decoding if method == "text-to-text" else "method head (a task head on the states)"


def write_report(result: ComparisonResult, out: str | Path, keep_figures: tuple[str, ...] = ()) -> Path:
    """``report.md``, ``results.json`` and the PNG figures in ``out``; returns the report's path. Figures named
    in ``keep_figures`` that this result has no data for are kept as they are (``--report-only``)."""
    from zoo.compare.plots import plot_all

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = plot_all(result, out, keep_figures)
    others_figures = []
    for other in result.others:  # each further suite's figures in OUT/<suite>/
        (out / other.suite).mkdir(exist_ok=True)
        others_figures.append(plot_all(other, out / other.suite))
    result.write_json(out / "results.json")
    path = out / "report.md"
    fileio.write_text(path, markdown(result, figures, others_figures))
    log.info("report: %s (%s)", path, ", ".join(p.name for p in figures.values()) or "no figures")
    return path
