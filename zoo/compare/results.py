"""What a comparison found: per run, per (backbone, objective) group with intervals over seeds,
per pair of objectives on the same backbone, tested over seeds and over evaluation items, and per pair
of arms on different backbones, unpaired over seeds. Plain data; the report and plots read it. The
statistics are in ``zoo.compare.stats``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo import fileio
from zoo.compare.stats import (
    DEFAULT_CONFIDENCE,
    Estimate,
    ItemComparison,
    SeedComparison,
    compare_seeds,
    holm,
    seed_estimate,
    seed_item_test,
)
from zoo.compare.study import BASELINE
from zoo.train.config import Budget

if TYPE_CHECKING:
    from zoo.compare.curves import CurveStudy

RESULTS_FORMAT = 2


@dataclass
class RunInfo:
    """One benchmarked model: a pretraining run, or a from-scratch replicate (``baseline``)."""

    name: str
    backbone: str
    objective: str  # BASELINE for a from-scratch replicate
    seed: int
    path: str
    baseline: bool = False
    status: str = "done"  # done | failed | missing
    error: str | None = None
    budget: str | None = None
    steps: int = 0
    flops: float = 0.0  # training FLOPs (backbone + heads, forward and backward)
    head_flops: float = 0.0  # the part of ``flops`` in the objectives' heads (0: not recorded)
    tokens: int = 0
    train_time_s: float = 0.0  # training loop only (the trainer's clock)
    wall_s: float | None = None  # the whole training call (data, evaluation, checkpoints), when measured
    cpu_s: float | None = None  # its process CPU time (every thread), when measured
    params: int | None = None
    evals: list[dict[str, Any]] = field(default_factory=list)  # ``kind: eval`` records of metrics.jsonl
    scores: dict[str, float] = field(default_factory=dict)  # task -> task score (fine-tune seed median)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> metric -> median
    bench_s: float = 0.0
    final_loss: float | None = None  # the last validation loss, when the run's metrics.jsonl is not at hand
    parent: str | None = None  # a cooldown branch's trunk run (zoo.compare.branches)

    @property
    def label(self) -> str:
        return f"{self.backbone} {self.objective}"

    def counters(self) -> dict[str, Any]:
        """What the compute table needs, for ``study.json`` (a report can be rewritten without the run)."""
        return {"steps": self.steps, "flops": self.flops, "head_flops": self.head_flops, "tokens": self.tokens,
                "train_time_s": self.train_time_s, "params": self.params, "final_loss": self.final_eval_loss()}

    def average(self, tasks: list[str]) -> float | None:
        if not tasks or any(t not in self.scores for t in tasks):
            return None
        return float(np.mean([self.scores[t] for t in tasks]))

    def final_eval_loss(self) -> float | None:
        return float(self.evals[-1]["loss"]) if self.evals else self.final_loss


@dataclass
class Group:
    backbone: str
    objective: str
    baseline: bool
    runs: list[RunInfo]
    tasks: dict[str, Estimate]
    average: Estimate | None
    budget: str | None = None  # a curve study's groups are per budget

    @property
    def label(self) -> str:
        return f"{self.backbone} {self.objective}" + (f" @ {self.budget}" if self.budget else "")

    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]

    def median_of(self, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.runs if getattr(r, attr) is not None]
        return float(np.median(values)) if values else None


@dataclass
class ItemValues:
    """One run's per-item results on one task: ``values`` (fine-tunes, items) in the item order of the
    dev set, summarised by ``metric`` (``zoo.compare.stats.ITEM_METRICS``) into the task score."""

    metric: str  # "mean" of 0/1 correctness, or "f1" / "mcc" / "accuracy_f1" of confusion codes
    values: np.ndarray  # (F, N)
    strata: tuple[str, ...] | None = None  # per item, the group it is resampled within (a paradigm)


def item_values(metrics: list[str] | tuple[str, ...], regression: bool, eval_splits: int,
                predictions: list[dict[str, list[float]]], references: dict[str, list[float]]) -> ItemValues | None:
    """Per-item values whose item metric is the task score: 0/1 correctness for accuracy, confusion
    codes ``2 * label + prediction`` for binary F1 / MCC. None when the task has no such form here
    (regression, several evaluation splits, F1 or MCC beyond two classes) or predictions are missing."""
    if regression or eval_splits != 1 or len(references) != 1 or not predictions:
        return None
    (split, refs), = references.items()
    if any(split not in p or len(p[split]) != len(refs) for p in predictions):
        return None
    y = np.asarray(refs, dtype=np.int64)  # (N,)
    pred = np.asarray([p[split] for p in predictions], dtype=np.int64)  # (F, N)
    kind = tuple(metrics)
    if kind == ("accuracy",):
        return ItemValues("mean", (pred == y).astype(np.float64))
    binary = bool(np.all((y == 0) | (y == 1)) and np.all((pred == 0) | (pred == 1)))
    metric = {("accuracy", "f1"): "accuracy_f1", ("matthews_correlation",): "mcc", ("f1",): "f1"}.get(kind)
    if metric is None or not binary:
        return None
    return ItemValues(metric, (2 * y + pred).astype(np.float64))


@dataclass
class Pair:
    """``a - b`` on one backbone: the average score over seeds, and each task over evaluation items."""

    backbone: str
    a: str
    b: str
    seeds: SeedComparison
    items: dict[str, ItemComparison] = field(default_factory=dict)  # task (or other item set) -> comparison

    @property
    def diff(self) -> Estimate:
        return self.seeds.diff

    @property
    def paired(self) -> bool:
        return self.seeds.paired

    @property
    def wins(self) -> int | None:
        return self.seeds.wins


@dataclass
class CrossPair:
    """``a - b`` of two trained arms on different backbones: unpaired (seed s of each starts from
    different initial weights), Welch's t interval and test over seeds of the average score; the
    difference mixes the objective with the architecture."""

    a: Group
    b: Group
    seeds: SeedComparison

    def to_dict(self) -> dict[str, Any]:
        return {"a": {"backbone": self.a.backbone, "objective": self.a.objective, "budget": self.a.budget},
                "b": {"backbone": self.b.backbone, "objective": self.b.objective, "budget": self.b.budget},
                "seeds": self.seeds.to_dict()}


def summarize(runs: list[RunInfo], tasks: list[str], statistic: str = "median",
              confidence: float = DEFAULT_CONFIDENCE, by_budget: bool = False) -> list[Group]:
    """One group per (backbone, objective) in first-seen order, from-scratch baselines last per backbone;
    ``by_budget`` (a curve study): one per (backbone, objective, budget)."""
    keyed: dict[tuple[str, str, str | None], list[RunInfo]] = {}
    for r in runs:
        if r.status == "done":
            keyed.setdefault((r.backbone, r.objective, r.budget if by_budget and not r.baseline else None),
                             []).append(r)
    backbones = list(dict.fromkeys(k[0] for k in keyed))
    order = [k for b in backbones for k in keyed if k[0] == b and k[1] != BASELINE]
    order += [k for b in backbones for k in keyed if k[0] == b and k[1] == BASELINE]
    groups = []
    for bb, obj, budget in order:
        members = sorted(keyed[(bb, obj, budget)], key=lambda r: r.seed)
        ests = {}
        for t in tasks:
            values = [r.scores[t] for r in members if t in r.scores]
            if values:
                ests[t] = seed_estimate(values, statistic, confidence)
        avgs = [a for r in members if (a := r.average(tasks)) is not None]
        groups.append(Group(bb, obj, obj == BASELINE, members, ests,
                            seed_estimate(avgs, statistic, confidence) if avgs else None, budget))
    return groups


def pairwise(groups: list[Group], tasks: list[str], items: dict[str, dict[str, ItemValues]] | None = None,
             confidence: float = DEFAULT_CONFIDENCE) -> list[Pair]:
    """Every pair of objectives on the same backbone (baseline included), ``a`` before ``b`` in group order.

    Paired by seed when both groups hold the same distinct seeds: seed ``s`` of each shares its
    initial weights and fine-tuning seeds, so the per-seed differences cancel that variation. Paired
    pairs with per-item values (``items``: run name -> task -> values) of every seed on a task are also
    compared over that task's items. p values are Holm-adjusted over all pairs, separately per level.
    """
    items = items or {}
    family = [(ga, gb) for ga, gb in combinations(groups, 2)
              if ga.backbone == gb.backbone and ga.average is not None and gb.average is not None
              and (ga.budget == gb.budget or ga.baseline or gb.baseline)]
    out = []
    for ga, gb in family:
        a = [(r.seed, v) for r in ga.runs if (v := r.average(tasks)) is not None]
        b = [(r.seed, v) for r in gb.runs if (v := r.average(tasks)) is not None]
        seeds_a, seeds_b = [s for s, _ in a], [s for s, _ in b]
        paired = len(set(seeds_a)) == len(a) and sorted(seeds_a) == sorted(seeds_b)
        if paired:
            da, db = dict(a), dict(b)
            xa, xb = [da[s] for s in sorted(da)], [db[s] for s in sorted(da)]
        else:
            xa, xb = [v for _, v in a], [v for _, v in b]
        # seeds needed for the whole family, at Holm's first step (0.05 / pairs)
        pair = Pair(ga.backbone, ga.objective, gb.objective,
                    compare_seeds(xa, xb, paired, confidence, tests=len(family)))
        if paired:
            pair.items = _item_comparisons(ga, gb, tasks, items, confidence)
        out.append(pair)
    _adjust(out)
    return out


def across_backbones(groups: list[Group], tasks: list[str],
                     confidence: float = DEFAULT_CONFIDENCE) -> list[CrossPair]:
    """Every pair of trained arms (from-scratch baselines left out) on different backbones, at the same
    budget, ``a`` before ``b`` in group order: Welch over seeds (``compare_seeds`` unpaired), p values
    Holm-adjusted over this family alone (the same-backbone pairs are another family)."""
    family = [(ga, gb) for ga, gb in combinations(groups, 2)
              if ga.backbone != gb.backbone and not ga.baseline and not gb.baseline and ga.budget == gb.budget
              and ga.average is not None and gb.average is not None]
    out = []
    for ga, gb in family:
        xa = [v for r in ga.runs if (v := r.average(tasks)) is not None]
        xb = [v for r in gb.runs if (v := r.average(tasks)) is not None]
        out.append(CrossPair(ga, gb, compare_seeds(xa, xb, paired=False, confidence=confidence)))
    for c, adj in zip(out, holm([c.seeds.p for c in out]), strict=True):
        c.seeds = replace(c.seeds, p_holm=None if math.isnan(adj) else adj)
    return out


def _item_comparisons(ga: Group, gb: Group, tasks: list[str], items: dict[str, dict[str, ItemValues]],
                      confidence: float) -> dict[str, ItemComparison]:
    out = {}
    runs_a, runs_b = sorted(ga.runs, key=lambda r: r.seed), sorted(gb.runs, key=lambda r: r.seed)
    # the tasks, then any other item set the runs carry (e.g. every pair of a zero-shot suite at once)
    keys = [*tasks, *dict.fromkeys(k for r in runs_a for k in items.get(r.name, {}) if k not in tasks)]
    for t in keys:
        va = [items.get(r.name, {}).get(t) for r in runs_a]
        vb = [items.get(r.name, {}).get(t) for r in runs_b]
        values = [v for v in va + vb if v is not None]
        if len(values) != len(va) + len(vb) or len({(v.metric, v.values.shape, v.strata) for v in values}) != 1:
            continue  # a seed without per-item results, or runs scored on different items
        out[t] = seed_item_test(np.stack([v.values for v in va]), np.stack([v.values for v in vb]),
                                values[0].metric, confidence, strata=values[0].strata)
    return out


def _adjust(pairs: list[Pair]) -> None:
    """Holm over the seed-level tests of all pairs, and over the item-level tests of all (pair, task), both
    the studentized test over seeds and items and the sign-flip test of the same per-seed differences."""
    for p, adj in zip(pairs, holm([p.seeds.p for p in pairs]), strict=True):
        p.seeds = replace(p.seeds, p_holm=None if math.isnan(adj) else adj)
    keys = [(p, t) for p in pairs for t in p.items]
    item_adj = holm([p.items[t].p for p, t in keys])
    seed_adj = holm([p.items[t].p_seeds for p, t in keys])  # the same family, tested over seeds
    for (p, t), adj, adj_s in zip(keys, item_adj, seed_adj, strict=True):
        p.items[t] = replace(p.items[t], p_holm=adj, p_seeds_holm=None if math.isnan(adj_s) else adj_s)


@dataclass
class ComparisonResult:
    """Everything the report shows; ``results.json`` in the output directory is its ``to_dict``."""

    out: str
    mode: str  # "study" (trained here) | "runs" (existing runs)
    suite: str
    tasks: list[str]
    task_titles: dict[str, str]
    task_metrics: dict[str, list[str]]
    runs: list[RunInfo]  # pretraining runs, failed ones included
    baselines: list[RunInfo]
    statistic: str = "median"
    settings: dict[str, Any] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)  # incompatible (objective, backbone)
    tokenizers: dict[str, dict[str, Any]] = field(default_factory=dict)  # family -> path, hash, kind, vocab
    bench: dict[str, Any] = field(default_factory=dict)  # data, recipe, seeds, example limits
    notes: list[str] = field(default_factory=list)
    command: str | None = None
    wall_s: float | None = None
    constant: dict[str, float] = field(default_factory=dict)  # task -> task score of the constant predictor
    constant_metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> metric -> value
    bag_of_words: dict[str, float] = field(default_factory=dict)  # task -> task score of the bag-of-words model
    bag_of_words_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    items: dict[str, dict[str, ItemValues]] = field(default_factory=dict)  # run name -> task -> per-item values
    confidence: float = DEFAULT_CONFIDENCE
    others: list[ComparisonResult] = field(default_factory=list)  # the same runs on the study's other suites
    plan: dict[str, Any] = field(default_factory=dict)  # study.json "plan": a study planned by wall time

    def __post_init__(self) -> None:
        self.groups = summarize([*self.runs, *self.baselines], self.tasks, self.statistic, self.confidence,
                                by_budget=bool(self.settings.get("budgets")))
        self.pairs = pairwise(self.groups, self.tasks, self.items, self.confidence)
        self.cross_pairs = across_backbones(self.groups, self.tasks, self.confidence)

    @property
    def budget(self) -> Budget | None:
        """The study's budget (``settings["budget"]``, parsed); None for a comparison of existing runs."""
        text = self.settings.get("budget")
        return Budget.parse(text) if text else None

    def constant_average(self) -> float | None:
        """The constant predictor's mean task score, when every task has one."""
        return self._average(self.constant)

    def bag_of_words_average(self) -> float | None:
        return self._average(self.bag_of_words)

    def _average(self, scores: dict[str, float]) -> float | None:
        if not self.tasks or any(t not in scores for t in self.tasks):
            return None
        return float(np.mean([scores[t] for t in self.tasks]))

    @property
    def failed(self) -> list[RunInfo]:
        return [r for r in self.runs if r.status != "done"]

    def objectives(self) -> list[str]:
        """Objective names in first-seen order (the colour map keys), baseline last."""
        names = list(dict.fromkeys(r.objective for r in self.runs))
        return names + ([BASELINE] if self.baselines else [])

    def to_dict(self) -> dict[str, Any]:
        def group(g: Group) -> dict[str, Any]:
            return {"backbone": g.backbone, "objective": g.objective, "baseline": g.baseline, "seeds": g.seeds(),
                    "tasks": {t: e.to_dict() for t, e in g.tasks.items()},
                    "average": g.average.to_dict() if g.average else None}

        return {
            "format": RESULTS_FORMAT, "mode": self.mode, "suite": self.suite, "tasks": self.tasks,
            "statistic": self.statistic, "settings": self.settings, "command": self.command, "wall_s": self.wall_s,
            "skipped": self.skipped, "tokenizers": self.tokenizers, "bench": self.bench, "notes": self.notes,
            "runs": [asdict(r) for r in self.runs], "baselines": [asdict(r) for r in self.baselines],
            "groups": [group(g) for g in self.groups], "confidence": self.confidence,
            "constant": {"scores": self.constant, "metrics": self.constant_metrics,
                         "average": self.constant_average()},
            "bag_of_words": {"scores": self.bag_of_words, "metrics": self.bag_of_words_metrics,
                             "average": self.bag_of_words_average()},
            "pairs": [{"backbone": p.backbone, "a": p.a, "b": p.b, "seeds": p.seeds.to_dict(),
                       "items": {t: c.to_dict() for t, c in p.items.items()}} for p in self.pairs],
            "across_backbones": [c.to_dict() for c in self.cross_pairs],
            "others": [o.to_dict() for o in self.others],
            "multipliers": curves.to_dict() if (curves := self.curves()) else None,
            **({"plan": self.plan} if self.plan else {}),
        }

    def curves(self) -> CurveStudy | None:
        """Score and loss curves against FLOPs with the compute multipliers (``zoo.compare.curves.CurveStudy``),
        when an arm was trained at several budgets; else None."""
        from zoo.compare.curves import curves_for

        return curves_for(self)

    def write_json(self, path: Path) -> None:
        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v

        fileio.write_json(path, clean(self.to_dict()))
