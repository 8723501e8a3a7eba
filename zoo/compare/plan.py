"""Plan a study by wall time: from measured costs on this machine and a number of hours, the budget
of every run, the parallel layout and the expected time of each phase.

``make_plan`` is pure (no I/O, no clock): the measurements come from ``zoo.compare.probe`` and are
stored in ``study.json`` so a resumed study plans the same budget again.

The cost of one (arm, seed) is that of its budget design, in units of the top budget ``B``: one
run at ``B`` costs ``B``; a curve of relative budgets ``b_i`` (``max b_i = 1``) trained as one trunk
to ``(1 - c) B`` with a cooldown branch of ``c b_i B`` per budget costs ``((1 - c) + c sum b_i) B``
(``design_cost``), which is ``B`` for a single budget whatever ``c``. Every model trained (a run, a
trunk, each branch) also costs the measured per-run overhead (process start, set-up, final evaluation);
trunks train first, all at once on the layout's jobs, then the branches.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from zoo.errors import ConfigError

TRAIN_SHARE = 0.7  # training should take at least this share of the wall time
MIN_PAIRS = 10  # fewest pairs per paradigm a reduced zero-shot evaluation scores
MARGIN = 0.05  # share of the training time held back for load changes during the study
PHASES = ("tokenizers", "measure", "train", "bench", "report")


@dataclass(frozen=True)
class Layout:
    """``jobs`` training runs at once, each on ``threads`` threads."""

    jobs: int
    threads: int

    @property
    def label(self) -> str:
        return f"{self.jobs}x{self.threads}"

    @staticmethod
    def parse(label: str) -> Layout:
        jobs, _, threads = label.partition("x")
        return Layout(int(jobs), int(threads))


def layouts(cores: int) -> list[Layout]:
    """The layouts that keep every core busy: ``jobs x threads == cores``, one job first."""
    return [Layout(j, cores // j) for j in range(1, cores + 1) if cores % j == 0]


@dataclass(frozen=True)
class ArmCost:
    """Measured costs of one arm (objective x backbone) on this machine."""

    arm: str  # the run-directory slug, e.g. ``gpt-clm``
    backbone: str
    flops_per_s: dict[str, float]  # layout label -> training FLOP/s of ONE job while the layout's jobs all run
    flops_per_token: float  # training FLOPs per token (objective heads included)
    params: int
    pair_s: float = 0.0  # seconds to score one minimal pair with one model of this arm
    finetune_s: float = 0.0  # seconds to fine-tune and evaluate one model of this arm on the study's tasks
    # layout label -> seconds a run costs besides its steps: process start, set-up, final evaluation, checkpoint
    overhead_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Measurements:
    """Everything the plan needs from this machine (``study.json`` "plan" / "measurements")."""

    cores: int
    arms: tuple[ArmCost, ...]
    spent_s: dict[str, float] = field(default_factory=dict)  # phases already done: measure, tokenizers
    pairs_per_paradigm: int = 0  # pairs of each paradigm of the zero-shot suite (0: no zero-shot suite)
    paradigms: int = 0
    report_s: float = 30.0  # writing the report, plots and tables

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Measurements:
        arms = tuple(ArmCost(**a) for a in data["arms"])
        return Measurements(**{**data, "arms": arms})


@dataclass(frozen=True)
class PlanRequest:
    """What to plan: the hours, the seeds, and the budget design (relative budgets, cooldown fraction)."""

    hours: float
    seeds: int
    budgets: tuple[float, ...] = (1.0,)  # relative budgets; the largest is the top budget
    cooldown: float = 0.0  # c: the share of each budget trained as its own cooldown branch
    baselines: bool = True  # a from-scratch model per backbone and seed is evaluated too
    max_pairs: int | None = None  # the user's cap on pairs per paradigm
    train_share: float = TRAIN_SHARE

    def __post_init__(self) -> None:
        if not (self.hours > 0 and math.isfinite(self.hours)):
            raise ConfigError(f"--hours must be a positive number, got {self.hours}")
        if self.seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {self.seeds}")
        if not self.budgets or min(self.budgets) <= 0:
            raise ConfigError(f"budgets must be positive, got {list(self.budgets)}")
        if not 0.0 < self.train_share < 1.0 - MARGIN:
            raise ConfigError(f"the training share must be in (0, {1 - MARGIN:g}), got {self.train_share}")
        if not 0.0 <= self.cooldown < 1.0:
            raise ConfigError(f"the cooldown fraction must be in [0, 1), got {self.cooldown}")


def design_cost(budgets: tuple[float, ...], cooldown: float) -> float:
    """FLOPs of one (arm, seed), in units of its top budget: ``(1 - c) + c * sum(b_i / b_top)``."""
    top = max(budgets)
    if len(budgets) == 1:
        return 1.0
    return (1.0 - cooldown) + cooldown * sum(b / top for b in budgets)


@dataclass(frozen=True)
class ArmPlan:
    arm: str
    budgets: tuple[float, ...]  # FLOPs of each run (or branch) of this arm, largest last
    tokens_per_param: tuple[float, ...]
    train_s: float  # expected wall time of one seed's training


@dataclass(frozen=True)
class Plan:
    """A study sized to ``hours``: the top budget, every arm's runs, the layout and the phases' times."""

    hours: float
    layout: Layout
    top_flops: float
    arms: tuple[ArmPlan, ...]
    seeds: int
    max_pairs: int | None  # pairs per paradigm (None: all)
    pairs_per_model: int
    phases: dict[str, float]  # expected wall seconds per phase (PHASES)
    notes: tuple[str, ...] = ()
    cooldown: float = 0.0  # a curve design's cooldown fraction (0: one budget)

    @property
    def budget(self) -> str:
        """The top budget as ``--budget`` spells it (two significant digits)."""
        return flops_text(self.top_flops)

    @property
    def budgets(self) -> tuple[str, ...]:
        """Every budget of the design as ``--budgets`` spells them, shortest first (one: ``(budget,)``)."""
        return tuple(flops_text(b) for b in self.arms[0].budgets) if self.arms else (self.budget,)

    @property
    def total_s(self) -> float:
        return sum(self.phases.values())

    @property
    def train_share(self) -> float:
        return self.phases["train"] / self.total_s if self.total_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["layout"] = self.layout.label
        data["budget"] = self.budget
        data["budgets"] = list(self.budgets)
        data["train_share"] = self.train_share
        return data


def flops_text(flops: float) -> str:
    """``3.97e12`` -> ``"3.9e12flops"``: two significant digits, rounded down so the plan still fits."""
    exp = math.floor(math.log10(flops))
    mantissa = math.floor(flops / 10 ** exp * 10 + 1e-9) / 10
    return f"{mantissa:g}e{exp}flops"


def round_flops(flops: float) -> float:
    """``flops`` rounded down to two significant digits (as ``flops_text`` spells it)."""
    return float(flops_text(flops).removesuffix("flops"))


def _makespan(durations: list[float], jobs: int) -> float:
    """Wall time of ``durations`` on ``jobs`` workers, longest first to the least-loaded worker."""
    loads = [0.0] * jobs
    for d in sorted(durations, reverse=True):
        i = loads.index(min(loads))
        loads[i] += d
    return max(loads)


def _eval_s(m: Measurements, req: PlanRequest, pairs: int, seeds: int) -> float:
    """Seconds to evaluate every model: each (arm, seed)'s runs, and a baseline per backbone and seed."""
    per_design = len(req.budgets)
    total = 0.0
    for a in m.arms:
        total += seeds * per_design * (a.pair_s * pairs * m.paradigms + a.finetune_s)
    if req.baselines:
        first: dict[str, ArmCost] = {}
        for a in m.arms:
            first.setdefault(a.backbone, a)
        total += sum(seeds * (a.pair_s * pairs * m.paradigms + a.finetune_s) for a in first.values())
    return total


def _model_times(a: ArmCost, layout: Layout, req: PlanRequest, top: float) -> tuple[float, list[float]] | None:
    """Wall seconds of one (arm, seed)'s models in ``layout``: its run (or trunk, to the top budget) and each
    cooldown branch (``c`` of a shorter budget), every one its steps plus the measured per-run overhead."""
    fps = a.flops_per_s.get(layout.label)
    if not fps or fps <= 0:
        return None
    overhead = a.overhead_s.get(layout.label, 0.0)
    top_rel = max(req.budgets)
    shorter = sorted(req.budgets)[:-1]
    return top / fps + overhead, [req.cooldown * top * b / top_rel / fps + overhead for b in shorter]


def _train_time(m: Measurements, layout: Layout, req: PlanRequest, top: float) -> float | None:
    """Training wall seconds of the grid at top budget ``top`` in ``layout``: the runs (or trunks), longest
    first onto the layout's jobs, then the cooldown branches likewise (None: the layout was not measured)."""
    runs: list[float] = []
    branches: list[float] = []
    for a in m.arms:
        times = _model_times(a, layout, req, top)
        if times is None:
            return None
        runs.extend([times[0]] * req.seeds)
        branches.extend(times[1] * req.seeds)
    return _makespan(runs, layout.jobs) + (_makespan(branches, layout.jobs) if branches else 0.0)


def _largest_top(m: Measurements, layout: Layout, req: PlanRequest, train_s: float) -> float:
    """The largest top budget (two significant digits, rounded down) that trains within ``train_s``; 0 if none."""
    if (_train_time(m, layout, req, 0.0) or 0.0) >= train_s:
        return 0.0
    lo, hi = 0.0, train_s * max(a.flops_per_s[layout.label] for a in m.arms)  # a run (trunk) alone takes top / fps
    for _ in range(100):  # the training time grows with the budget: bisect
        mid = (lo + hi) / 2
        if (_train_time(m, layout, req, mid) or math.inf) <= train_s:
            lo = mid
        else:
            hi = mid
    return round_flops(lo) if lo > 0 else 0.0


def _pair_options(m: Measurements, req: PlanRequest) -> list[int]:
    """Pairs per paradigm to try, most first: all (or the user's cap), then fewer down to MIN_PAIRS."""
    if m.paradigms == 0:
        return [0]
    top = m.pairs_per_paradigm if req.max_pairs is None else min(req.max_pairs, m.pairs_per_paradigm)
    options = [top]
    p = top
    while p > MIN_PAIRS:
        p = max(MIN_PAIRS, p // 2)
        options.append(p)
    return options


def make_plan(m: Measurements, req: PlanRequest) -> Plan:
    """The largest top budget that lets the whole study end within ``req.hours`` here.

    Scores all pairs when that leaves training ``req.train_share`` of the wall time, else the most pairs
    per paradigm that do (down to MIN_PAIRS); picks the layout that trains fastest as measured. A study
    whose evaluation and overheads alone leave no time to train is refused (``ConfigError``) with the
    largest plan that would fit: fewer seeds or pairs, or the hours this one needs."""
    wall = req.hours * 3600.0
    fixed = m.spent_s.get("measure", 0.0) + m.spent_s.get("tokenizers", 0.0) + m.report_s
    cost = design_cost(req.budgets, req.cooldown)
    if not _measured(m):
        raise ConfigError(f"no training throughput was measured for a layout of {m.cores} core(s)")
    best = None
    for pairs in _pair_options(m, req):  # most pairs first; the fewest if none reaches the training share
        candidate = _plan_at(m, req, cost, fixed, pairs)
        best = candidate or best
        if candidate is not None and candidate.phases["train"] >= req.train_share * wall:
            break
    if best is None:
        raise ConfigError(_refusal(m, req, fixed, cost))
    notes = list(best.notes)
    if best.phases["train"] < req.train_share * wall:
        notes.append(f"training takes {best.phases['train'] / wall:.0%} of the {req.hours:g} h (target "
                     f"{req.train_share:.0%}): evaluation and set-up take the rest even at {best.max_pairs or 'all'} "
                     "pairs per paradigm")
    return replace(best, notes=tuple(notes))


def _measured(m: Measurements) -> list[Layout]:
    return [lay for lay in layouts(m.cores) if all(a.flops_per_s.get(lay.label, 0) > 0 for a in m.arms)]


def _plan_at(m: Measurements, req: PlanRequest, cost: float, fixed: float, pairs: int) -> Plan | None:
    """The plan scoring ``pairs`` pairs per paradigm, in the layout that trains the largest budget in the
    time left (None: no time is left to train)."""
    wall = req.hours * 3600.0
    bench = _eval_s(m, req, pairs, req.seeds)
    train_s = (wall - fixed - bench) * (1.0 - MARGIN)
    if train_s <= 0:
        return None
    tops = {lay: _largest_top(m, lay, req, train_s) for lay in _measured(m)}
    layout = max(tops, key=lambda lay: (tops[lay], -lay.jobs))
    top = tops[layout]
    if top <= 0:
        return None
    notes = []
    if m.paradigms and pairs < m.pairs_per_paradigm:
        notes.append(f"{pairs} of the {m.pairs_per_paradigm} pairs of each paradigm are scored per model"
                     + (f" (all would not fit in {req.hours:g} h)" if req.max_pairs is None or req.max_pairs > pairs
                        else " (--max-pairs)"))
    top_rel = max(req.budgets)
    arms = []
    for a in m.arms:
        budgets = tuple(round_flops(top * b / top_rel) for b in sorted(req.budgets))  # as --budgets spells them
        # one seed: the design's FLOPs at the measured speed, and the overhead of each model (run or trunk, branches)
        train_s = cost * top / a.flops_per_s[layout.label] + len(req.budgets) * a.overhead_s.get(layout.label, 0.0)
        arms.append(ArmPlan(a.arm, budgets, tuple(b / a.flops_per_token / a.params for b in budgets), train_s))
    phases = {"tokenizers": m.spent_s.get("tokenizers", 0.0), "measure": m.spent_s.get("measure", 0.0),
              "train": _train_time(m, layout, req, top) or 0.0, "bench": bench, "report": m.report_s}
    return Plan(req.hours, layout, top, tuple(arms), req.seeds, None if pairs >= m.pairs_per_paradigm else pairs,
                pairs * m.paradigms, phases, tuple(notes), req.cooldown if len(req.budgets) > 1 else 0.0)


def _refusal(m: Measurements, req: PlanRequest, fixed: float, cost: float) -> str:
    """Why the request cannot fit, and the largest plan that can (fewer seeds, fewer pairs, more hours)."""
    wall = req.hours * 3600.0
    fewest = _pair_options(m, req)[-1]
    need = fixed + _eval_s(m, req, fewest, req.seeds)
    hours = need / 3600.0
    while True:  # the fewest hours (in 5% steps) at which this study trains its share of the time
        fit = _plan_at(m, replace(req, hours=hours), cost, fixed, fewest)
        if fit is not None and fit.phases["train"] >= req.train_share * hours * 3600.0:
            break
        hours *= 1.05
    message = (f"--hours {req.hours:g}: evaluation and set-up alone take {need / 60:.1f} min of the {wall / 60:.1f} min "
               f"({req.seeds} seed(s), {len(m.arms)} arm(s)"
               + (f", {fewest} pairs per paradigm" if m.paradigms else "") + ")")
    for seeds in range(req.seeds - 1, 0, -1):
        sub = replace(req, seeds=seeds)
        for pairs in _pair_options(m, sub):
            fit = _plan_at(m, sub, cost, fixed, pairs)
            if fit is not None and fit.phases["train"] >= sub.train_share * wall:
                what = f"--seeds {seeds}" + (f" --max-pairs {pairs}" if m.paradigms else "")
                return f"{message}; the largest plan that fits is {what}, or this one needs --hours {_up(hours)}"
    return f"{message}; even one seed does not fit: this study needs --hours {_up(hours)}"


def _up(hours: float) -> str:
    """``hours`` rounded up to two significant digits."""
    exp = math.floor(math.log10(hours)) - 1
    return f"{math.ceil(hours / 10 ** exp - 1e-9) * 10 ** exp:.{max(0, -exp)}f}"
