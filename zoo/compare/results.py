"""What a comparison found: per run, per (backbone, objective) group with bootstrap intervals over
seeds, and per pair of objectives on the same backbone. Plain data; the report and plots read it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from zoo.compare.stats import Estimate, bootstrap_ci, bootstrap_diff_ci
from zoo.compare.study import BASELINE

RESULTS_FORMAT = 1


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
    tokens: int = 0
    train_time_s: float = 0.0  # training loop only (the trainer's clock)
    wall_s: float | None = None  # the whole training call (data, evaluation, checkpoints), when measured
    params: int | None = None
    evals: list[dict[str, Any]] = field(default_factory=list)  # ``kind: eval`` records of metrics.jsonl
    scores: dict[str, float] = field(default_factory=dict)  # task -> task score (fine-tune seed median)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> metric -> median
    bench_s: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.backbone} {self.objective}"

    def average(self, tasks: list[str]) -> float | None:
        if not tasks or any(t not in self.scores for t in tasks):
            return None
        return float(np.mean([self.scores[t] for t in tasks]))

    def final_eval_loss(self) -> float | None:
        return float(self.evals[-1]["loss"]) if self.evals else None


@dataclass
class Group:
    backbone: str
    objective: str
    baseline: bool
    runs: list[RunInfo]
    tasks: dict[str, Estimate]
    average: Estimate | None

    @property
    def label(self) -> str:
        return f"{self.backbone} {self.objective}"

    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]

    def median_of(self, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.runs if getattr(r, attr) is not None]
        return float(np.median(values)) if values else None


@dataclass
class Pair:
    """``a - b`` of the average score on one backbone."""

    backbone: str
    a: str
    b: str
    diff: Estimate
    paired: bool
    wins: int | None  # seeds where a beat b (paired only)


def summarize(runs: list[RunInfo], tasks: list[str], statistic: str = "median") -> list[Group]:
    """One group per (backbone, objective) in first-seen order, from-scratch baselines last per backbone."""
    keyed: dict[tuple[str, str], list[RunInfo]] = {}
    for r in runs:
        if r.status == "done":
            keyed.setdefault((r.backbone, r.objective), []).append(r)
    backbones = list(dict.fromkeys(b for b, _ in keyed))
    order = [k for b in backbones for k in keyed if k[0] == b and k[1] != BASELINE]
    order += [k for b in backbones for k in keyed if k[0] == b and k[1] == BASELINE]
    groups = []
    for bb, obj in order:
        members = sorted(keyed[(bb, obj)], key=lambda r: r.seed)
        ests = {}
        for t in tasks:
            values = [r.scores[t] for r in members if t in r.scores]
            if values:
                ests[t] = bootstrap_ci(values, statistic)
        avgs = [a for r in members if (a := r.average(tasks)) is not None]
        groups.append(Group(bb, obj, obj == BASELINE, members, ests,
                            bootstrap_ci(avgs, statistic) if avgs else None))
    return groups


def pairwise(groups: list[Group], tasks: list[str], statistic: str = "median") -> list[Pair]:
    """Every pair of objectives on the same backbone (baseline included), ``a`` before ``b`` in group order.

    Paired by seed when both groups hold the same distinct seeds: seed ``s`` of each shares its
    initial weights and fine-tuning seeds, so the per-seed differences cancel that variation.
    """
    out = []
    for ga, gb in combinations(groups, 2):
        if ga.backbone != gb.backbone or ga.average is None or gb.average is None:
            continue
        a = [(r.seed, v) for r in ga.runs if (v := r.average(tasks)) is not None]
        b = [(r.seed, v) for r in gb.runs if (v := r.average(tasks)) is not None]
        seeds_a, seeds_b = [s for s, _ in a], [s for s, _ in b]
        paired = len(set(seeds_a)) == len(a) and sorted(seeds_a) == sorted(seeds_b)
        if paired:
            da, db = dict(a), dict(b)
            xa, xb = [da[s] for s in sorted(da)], [db[s] for s in sorted(da)]
            wins: int | None = sum(x > y for x, y in zip(xa, xb, strict=True))
        else:
            xa, xb, wins = [v for _, v in a], [v for _, v in b], None
        out.append(Pair(ga.backbone, ga.objective, gb.objective, bootstrap_diff_ci(xa, xb, paired, statistic),
                        paired, wins))
    return out


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

    def __post_init__(self) -> None:
        self.groups = summarize([*self.runs, *self.baselines], self.tasks, self.statistic)
        self.pairs = pairwise(self.groups, self.tasks, self.statistic)

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
            "groups": [group(g) for g in self.groups],
            "pairs": [{"backbone": p.backbone, "a": p.a, "b": p.b, "paired": p.paired, "wins": p.wins,
                       "difference": p.diff.to_dict()} for p in self.pairs],
        }

    def write_json(self, path: Path) -> None:
        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v

        Path(path).write_text(json.dumps(clean(self.to_dict()), indent=1) + "\n", encoding="utf-8")
