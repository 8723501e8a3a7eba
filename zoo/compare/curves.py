"""Score against training compute, and the compute multiplier between two arms.

An *arm* is a (backbone, objective); a study with several budgets holds, per arm and pretraining seed,
models at several training FLOPs. Per (arm, seed) the score is fitted as a straight line in log FLOPs
by least squares, ``y = a + b ln(FLOPs)``, where ``y`` is

- a minimal-pair accuracy on the logit scale (``ln(p / (1 - p))``, clipped at ``CLIP`` from 0 and 1),
  for the whole suite (macro average over paradigms) and per phenomenon; or
- the held-out loss, negated so that larger is better in both cases. Losses of different objectives
  measure different predictions: a loss multiplier is computed only between arms with the same objective
  whose backbones share a tokenizer family.

**The multiplier** ``k(A -> B)``, per seed ``s``, on the common fitted range: each line covers the
fitted scores between its smallest and largest budget; the target score ``y*`` is the midpoint of the
overlap of A's and B's ranges, and ``ln k_s = x_B(y*) - x_A(y*)``, with ``x(y)`` the log FLOPs at which a
line reaches ``y``. Both are then interpolated, never extrapolated. ``k > 1``: B needs k times A's compute
to reach the same score (A is the more compute-efficient arm); ``k < 1``: B needs less. With equal slopes
k does not depend on the target; with unequal slopes it does, and the midpoint of the common range is
the level both arms measured. When the ranges do not overlap (B's whole curve below A's, or above),
``y*`` is the midpoint of the gap, both lines are extrapolated, and the seed is marked ``beyond``.

**Across seeds** seed ``s`` of A is paired with seed ``s`` of B (same data order and initial seed); the
per-seed ``ln k_s`` get the Student t interval of their mean (``stats.t_interval``), reported as ``k`` =
``exp`` of the mean and of the ends, and the exact sign-flip p of ``ln k = 0`` (``stats.sign_flip_test``).
The interval covers the true multiplier at its nominal level when the per-seed ``ln k_s`` are
independent and normal around it; with lines fitted to few budgets, ``ln k_s`` is a ratio of noisy
estimates and its tails are heavier than normal when B's slope is poorly determined, which the
applicability checks below guard against (``perf/multiplier_coverage.py`` measures the coverage on simulated
studies; the interval is over seeds only, given the evaluation items). A sign-flip
interval would be distribution-free but cannot reach 95% with fewer than 6 seeds.

**When it does not apply** (``reason`` names why, the number is withheld): fewer than ``MIN_BUDGETS``
budgets or ``MIN_SEEDS`` paired seeds; an arm whose slope over seeds is not positive or whose t interval
includes 0 (the curve does not rise measurably); an arm whose mean curve over seeds falls between two
budgets (not monotone: a straight line in log FLOPs misdescribes it; per phenomenon, the paradigms whose
curve falls are named). **Extrapolation:** ``k`` can be measured only between
``F_B,min / F_A,max`` and ``F_B,max / F_A,min`` (over seeds, the narrowest such range); a point estimate or
interval end beyond it is reported as a bound (``> x`` or ``< x``), not a number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from zoo.compare.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_SEED,
    Estimate,
    format_level,
    sign_flip_test,
    t_interval,
)

MIN_BUDGETS = 3
MIN_SEEDS = 2
CLIP = 1e-4  # accuracies clipped to [CLIP, 1 - CLIP] before the logit

Arm = tuple[str, str]  # (backbone, objective)


def logit(p: float) -> float:
    q = min(max(float(p), CLIP), 1 - CLIP)
    return math.log(q / (1 - q))


def expit(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


@dataclass(frozen=True)
class LineFit:
    """Least-squares ``y = intercept + slope x``, with the slope's standard error (NaN with 2 points)."""

    intercept: float
    slope: float
    slope_se: float
    n: int

    def predict(self, x: float) -> float:
        return self.intercept + self.slope * x

    def solve(self, y: float) -> float:
        """The ``x`` where the line reaches ``y`` (the slope must not be 0)."""
        return (y - self.intercept) / self.slope


def fit_line(x: Sequence[float], y: Sequence[float]) -> LineFit:
    """Ordinary least squares of ``y`` on ``x`` (at least 2 distinct ``x``)."""
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"fit_line: x and y need the same 1-d shape, got {xs.shape} and {ys.shape}")
    if xs.size < 2 or np.ptp(xs) == 0:
        raise ValueError(f"fit_line: need at least 2 distinct x values, got {xs.tolist()}")
    xc = xs - xs.mean()
    sxx = float(xc @ xc)
    slope = float(xc @ (ys - ys.mean())) / sxx
    intercept = float(ys.mean() - slope * xs.mean())
    if xs.size > 2:
        resid = ys - (intercept + slope * xs)
        se = math.sqrt(float(resid @ resid) / (xs.size - 2) / sxx)
    else:
        se = math.nan
    return LineFit(intercept, slope, se, int(xs.size))


@dataclass(frozen=True)
class SeedCurve:
    """One (arm, seed): its budgets' FLOPs and scores (as measured), and the line on the fitted scale."""

    seed: int
    flops: tuple[float, ...]  # ascending
    scores: tuple[float, ...]  # accuracy or loss, as measured
    fit: LineFit | None  # None with fewer than 2 budgets

    @property
    def x_min(self) -> float:
        return math.log(self.flops[0])

    @property
    def x_max(self) -> float:
        return math.log(self.flops[-1])


@dataclass(frozen=True)
class ArmCurve:
    """One arm's curves over seeds, and whether a straight line in log FLOPs describes them."""

    backbone: str
    objective: str
    metric: str  # "accuracy" (fitted as logit) | "loss" (fitted negated)
    seeds: tuple[SeedCurve, ...]
    slope: Estimate | None  # per-seed slopes (fitted scale per unit ln FLOPs), t interval over seeds
    monotone: bool  # the mean curve over seeds never gets worse from one budget to the next
    reason: str | None  # why no multiplier can use this arm; None when it can
    falling: tuple[str, ...] = ()  # per phenomenon: paradigms whose mean curve gets worse somewhere

    @property
    def label(self) -> str:
        return f"{self.backbone} {self.objective}"

    @property
    def budgets(self) -> int:
        return min((len(s.flops) for s in self.seeds), default=0)

    def to_dict(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "objective": self.objective, "metric": self.metric,
                "budgets": self.budgets, "seeds": [
                    {"seed": s.seed, "flops": list(s.flops), "scores": list(s.scores),
                     "intercept": s.fit.intercept if s.fit else None, "slope": s.fit.slope if s.fit else None}
                    for s in self.seeds],
                "slope": self.slope.to_dict() if self.slope else None, "monotone": self.monotone,
                "reason": self.reason, "falling": list(self.falling)}


def _fitted(metric: str, value: float) -> float:
    """A measured score on the fitted scale, larger is better."""
    return logit(value) if metric == "accuracy" else -float(value)


def arm_curve(backbone: str, objective: str, per_seed: dict[int, Sequence[tuple[float, float]]],
              metric: str = "accuracy", confidence: float = DEFAULT_CONFIDENCE,
              paradigms: dict[str, dict[int, Sequence[tuple[float, float]]]] | None = None) -> ArmCurve:
    """Fit each seed's ``(flops, score)`` points of one arm. ``paradigms``: the same points per paradigm
    of a phenomenon, to name those whose curve falls. ``reason`` says why the arm cannot be used."""
    if metric not in ("accuracy", "loss"):
        raise ValueError(f"unknown curve metric {metric!r}; expected accuracy or loss")
    seeds = []
    for seed in sorted(per_seed):
        pts = sorted((float(f), float(v)) for f, v in per_seed[seed] if f > 0 and math.isfinite(v))
        flops, scores = tuple(p[0] for p in pts), tuple(p[1] for p in pts)
        fit = (fit_line(np.log(flops), [_fitted(metric, v) for v in scores])
               if len(set(flops)) >= 2 else None)
        seeds.append(SeedCurve(seed, flops, scores, fit))
    slopes = [s.fit.slope for s in seeds if s.fit is not None]
    slope = t_interval(slopes, confidence) if slopes else None
    monotone = _monotone(seeds, metric)
    falling = tuple(name for name, pts in (paradigms or {}).items()
                    if not _monotone([SeedCurve(s, tuple(sorted(f for f, _ in p)),
                                                tuple(v for _, v in sorted(p)), None) for s, p in pts.items()], metric))
    budgets = min((len(s.flops) for s in seeds), default=0)
    if budgets < MIN_BUDGETS:
        reason = f"{budgets} budget(s), a fit needs {MIN_BUDGETS}"
    elif len(seeds) < MIN_SEEDS:
        reason = f"{len(seeds)} seed(s), an interval needs {MIN_SEEDS}"
    elif slope is None or slope.point <= 0:
        reason = "does not improve with compute (slope not positive)"
    elif not monotone:
        reason = "curve not monotone" + (f" ({', '.join(falling)} fall)" if falling else "")
    elif not slope.excludes(0.0):
        reason = f"slope not distinguishable from 0 ({slope.label} interval over seeds)"
    else:
        reason = None
    return ArmCurve(backbone, objective, metric, tuple(seeds), slope, monotone, reason, falling)


def _monotone(seeds: Sequence[SeedCurve], metric: str) -> bool:
    """Whether the mean over seeds (budget by budget, in order) never gets worse; seeds with fewer
    budgets than the others are cut to the common number."""
    n = min((len(s.scores) for s in seeds), default=0)
    if n < 2:
        return True
    mean = np.mean([[_fitted(metric, v) for v in s.scores[:n]] for s in seeds], axis=0)
    return bool(np.all(np.diff(mean) >= 0))


@dataclass(frozen=True)
class Multiplier:
    """``k(A -> B)``: the compute B needs, as a multiple of A's, to reach the same score (module docstring).
    ``log_k`` holds ln k with its t interval over paired seeds; ``range_low``/``range_high`` the ln k the
    budgets can measure (beyond: a bound, not a number). ``reason``: why there is no multiplier (then
    ``log_k`` is None)."""

    a: Arm
    b: Arm
    metric: str
    log_k: Estimate | None = None
    p: float = math.nan  # exact sign-flip p of ln k = 0 over seeds
    range_low: float = math.nan
    range_high: float = math.nan
    reason: str | None = None
    per_seed: tuple[float, ...] = field(default=())
    beyond: int = 0  # seeds whose fitted ranges do not overlap (their ln k is extrapolated)

    @property
    def k(self) -> float | None:
        return math.exp(self.log_k.point) if self.log_k else None

    @property
    def bound(self) -> str | None:
        """``above`` / ``below`` when the point estimate lies beyond what the budgets measure, else None."""
        if self.log_k is None:
            return None
        if self.log_k.point > self.range_high:
            return "above"
        return "below" if self.log_k.point < self.range_low else None

    def _end(self, v: float) -> str:
        if v > self.range_high:
            return f"> {math.exp(self.range_high):.3g}"
        if v < self.range_low:
            return f"< {math.exp(self.range_low):.3g}"
        return f"{math.exp(v):.3g}"

    def text(self) -> str:
        """``2.1 [1.4, 3.2]``, ``> 4 [1.9, > 4]`` beyond the measurable range, or why there is none."""
        if self.log_k is None:
            return f"not applicable: {self.reason}"
        est = self.log_k
        return f"{self._end(est.point)} [{self._end(est.low)}, {self._end(est.high)}]"

    def reading(self, p_holm: float | None = None) -> str:
        """What the interval supports, in words; with ``p_holm`` (the sign-flip p adjusted over the family),
        a direction the sign-flip test does not confirm at 0.05 is said to be unconfirmed."""
        if self.log_k is None:
            return "-"
        a, b = " ".join(self.a), " ".join(self.b)
        est = self.log_k
        if not est.excludes(0.0):
            return "not distinguishable from 1"
        low, high = self._end(est.low), self._end(est.high)
        span = f"k {low}" if low == high else f"k {low} to {high}"  # both ends beyond the same edge: a bound
        text = f"{b} needs {'more' if est.low > 0 else 'less'} compute than {a} ({span})"
        if p_holm is not None and not p_holm < 0.05:
            text += f"; the sign-flip test over {est.n} seeds does not reach 0.05 after Holm"
        return text

    def to_dict(self) -> dict[str, Any]:
        def num(v: float) -> float | None:
            return None if math.isnan(v) else v

        return {"a": list(self.a), "b": list(self.b), "metric": self.metric, "k": self.k,
                "log_k": self.log_k.to_dict() if self.log_k else None, "p_sign_flip": num(self.p),
                "measured_k": [num(math.exp(self.range_low)) if not math.isnan(self.range_low) else None,
                               num(math.exp(self.range_high)) if not math.isnan(self.range_high) else None],
                "bound": self.bound, "text": self.text(), "reading": self.reading(), "reason": self.reason,
                "per_seed_log_k": list(self.per_seed), "seeds_extrapolated": self.beyond}


def seed_log_k(a: SeedCurve, b: SeedCurve) -> tuple[float, bool]:
    """ln k of one seed on the common fitted range, and whether the ranges fail to overlap (extrapolated).
    Both lines must rise."""
    fa, fb = a.fit, b.fit
    assert fa is not None and fb is not None and fa.slope > 0 and fb.slope > 0
    lo_a, hi_a = fa.predict(a.x_min), fa.predict(a.x_max)
    lo_b, hi_b = fb.predict(b.x_min), fb.predict(b.x_max)
    lo, hi = max(lo_a, lo_b), min(hi_a, hi_b)
    target = (lo + hi) / 2  # the overlap's midpoint, or the gap's when lo > hi
    return fb.solve(target) - fa.solve(target), lo > hi


def multiplier(a: ArmCurve, b: ArmCurve, confidence: float = DEFAULT_CONFIDENCE,
               seed: int = DEFAULT_SEED) -> Multiplier:
    """``k(A -> B)`` over the seeds both arms have (module docstring)."""
    key_a, key_b = (a.backbone, a.objective), (b.backbone, b.objective)
    for arm in (a, b):
        if arm.reason:
            return Multiplier(key_a, key_b, a.metric, reason=f"{arm.label}: {arm.reason}")
    sa, sb = {s.seed: s for s in a.seeds}, {s.seed: s for s in b.seeds}
    common = sorted(set(sa) & set(sb))
    if len(common) < MIN_SEEDS:
        return Multiplier(key_a, key_b, a.metric, reason=f"{len(common)} paired seed(s), an interval needs {MIN_SEEDS}")
    log_k, lows, highs, beyond = [], [], [], 0
    for s in common:
        for arm, c in ((a, sa[s]), (b, sb[s])):
            if c.fit is None or c.fit.slope <= 0:
                return Multiplier(key_a, key_b, a.metric, reason=f"seed {s}: {arm.label}'s line does not rise")
        value, out = seed_log_k(sa[s], sb[s])
        log_k.append(value)
        beyond += out
        lows.append(sb[s].x_min - sa[s].x_max)
        highs.append(sb[s].x_max - sa[s].x_min)
    p, _ = sign_flip_test(log_k, seed)
    return Multiplier(key_a, key_b, a.metric, t_interval(log_k, confidence), p, max(lows), min(highs),
                      per_seed=tuple(log_k), beyond=beyond)


def multipliers(curves: Sequence[ArmCurve], confidence: float = DEFAULT_CONFIDENCE,
                allowed: Any = None) -> list[Multiplier]:
    """``k(A -> B)`` for every pair of arms in order (``allowed(a, b)`` may exclude pairs)."""
    return [multiplier(a, b, confidence) for a, b in combinations(curves, 2) if allowed is None or allowed(a, b)]


# --- from a comparison's runs ------------------------------------------------------------------------------

@dataclass
class CurveStudy:
    """Curves and multipliers of a comparison with several budgets: the whole suite, per phenomenon, and
    the held-out loss (same objective, same tokenizer family only)."""

    confidence: float
    curves: list[ArmCurve]
    pairs: list[Multiplier]
    phenomena: dict[str, list[ArmCurve]] = field(default_factory=dict)
    phenomenon_pairs: dict[str, list[Multiplier]] = field(default_factory=dict)
    loss_curves: list[ArmCurve] = field(default_factory=list)
    loss_pairs: list[Multiplier] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"confidence": self.confidence, "min_budgets": MIN_BUDGETS, "min_seeds": MIN_SEEDS,
                "curves": [c.to_dict() for c in self.curves], "pairs": [m.to_dict() for m in self.pairs],
                "phenomena": {n: {"curves": [c.to_dict() for c in cs],
                                  "pairs": [m.to_dict() for m in self.phenomenon_pairs.get(n, [])]}
                              for n, cs in self.phenomena.items()},
                "loss": {"curves": [c.to_dict() for c in self.loss_curves],
                         "pairs": [m.to_dict() for m in self.loss_pairs]}}


def budgets_per_arm(runs: Iterable[Any]) -> dict[Arm, int]:
    """The most distinct training FLOPs any seed of each arm has (finished, non-baseline runs)."""
    seen: dict[tuple[str, str, int], set[float]] = {}
    for r in runs:
        if r.status == "done" and not r.baseline and r.flops > 0:
            seen.setdefault((r.backbone, r.objective, r.seed), set()).add(float(r.flops))
    out: dict[Arm, int] = {}
    for (bb, obj, _), fl in seen.items():
        out[(bb, obj)] = max(out.get((bb, obj), 0), len(fl))
    return out


def _points(runs: Sequence[Any], value: Any) -> dict[Arm, dict[int, list[tuple[float, float]]]]:
    out: dict[Arm, dict[int, list[tuple[float, float]]]] = {}
    for r in runs:
        v = value(r)
        if v is not None and math.isfinite(v):
            out.setdefault((r.backbone, r.objective), {}).setdefault(r.seed, []).append((float(r.flops), float(v)))
    return out


def study_curves(runs: Sequence[Any], tasks: Sequence[str], phenomena: dict[str, list[str]] | None = None,
                 families: dict[str, str] | None = None, confidence: float = DEFAULT_CONFIDENCE) -> CurveStudy:
    """Curves and multipliers from a comparison's runs (``RunInfo``: grouped by backbone, objective and seed,
    ``flops`` as x). Score: the mean over ``tasks`` (a minimal-pair suite's macro average over paradigms);
    per phenomenon the mean over its paradigms; loss: the final validation loss, compared only between
    arms with the same objective on backbones of the same tokenizer family (``families``: backbone ->
    family; without it, no loss multipliers)."""
    done = [r for r in runs if r.status == "done" and not r.baseline and r.flops > 0]
    whole = _points(done, lambda r: r.average(list(tasks)))
    curves = [arm_curve(bb, obj, pts, "accuracy", confidence) for (bb, obj), pts in whole.items()]
    study = CurveStudy(confidence, curves, multipliers(curves, confidence))
    for name, ps in (phenomena or {}).items():
        pts = _points(done, lambda r, ps=ps: r.average(list(ps)))
        per_paradigm = {p: _points(done, lambda r, p=p: r.scores.get(p)) for p in ps}
        cs = [arm_curve(bb, obj, seeds, "accuracy", confidence,
                        {p: per_paradigm[p].get((bb, obj), {}) for p in ps if per_paradigm[p].get((bb, obj))})
              for (bb, obj), seeds in pts.items()]
        study.phenomena[name] = cs
        study.phenomenon_pairs[name] = multipliers(cs, confidence)
    loss = _points(done, lambda r: r.final_eval_loss())
    study.loss_curves = [arm_curve(bb, obj, pts, "loss", confidence) for (bb, obj), pts in loss.items()]
    if families:
        same = lambda a, b: (a.objective == b.objective and families.get(a.backbone) is not None  # noqa: E731
                             and families.get(a.backbone) == families.get(b.backbone))
        study.loss_pairs = multipliers(study.loss_curves, confidence, same)
    return study


def method_note(confidence: float = DEFAULT_CONFIDENCE) -> str:
    """How the multipliers are computed, for the report."""
    return (f"Per (arm, pretraining seed), the score is fitted as a straight line in log training FLOPs by least "
            f"squares (accuracy on the logit scale). k(A -> B) is, per seed, the ratio of the FLOPs B's line and A's "
            f"line need to reach the same score, taken at the middle of the score range both lines cover between "
            f"their smallest and largest budgets: k > 1 means B needs k times A's compute to reach A's score. Seed s "
            f"of A is paired with seed s of B (same data order and initial seed); the brackets are the "
            f"{format_level(confidence)} Student t interval of the mean of the per-seed ln k, exponentiated, and p "
            f"is the exact sign-flip test of ln k = 0. The budgets can measure k only between B's smallest budget "
            f"over A's largest and B's largest over A's smallest; a value beyond is extrapolation and is shown only "
            f"as a bound (> or <). Not applicable: fewer than {MIN_BUDGETS} budgets or {MIN_SEEDS} seeds, a curve "
            f"that does not rise measurably (the t interval of the per-seed slopes includes 0), or a curve whose "
            f"mean over seeds falls between two budgets (not monotone: a line misdescribes it). \"Not "
            f"distinguishable from 1\" means the interval contains k = 1; a direction is claimed only when it does "
            f"not.")


def slope_per_decade(curve: ArmCurve) -> Estimate | None:
    """The arm's slope per factor 10 of compute (fitted scale), with its interval."""
    s = curve.slope
    if s is None:
        return None
    f = math.log(10)
    return Estimate(s.point * f, s.low * f, s.high * f, s.n, tuple(v * f for v in s.values), s.statistic,
                    s.confidence, s.method)


def band(curve: ArmCurve) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(median FLOPs, mean, min, max) of the measured scores over seeds, budget by budget (the common number)."""
    n = min((len(s.flops) for s in curve.seeds), default=0)
    f = np.array([s.flops[:n] for s in curve.seeds], dtype=np.float64)
    v = np.array([s.scores[:n] for s in curve.seeds], dtype=np.float64)
    return np.median(f, axis=0), v.mean(axis=0), v.min(axis=0), v.max(axis=0)


def fitted_curve(curve: ArmCurve, flops: np.ndarray) -> np.ndarray | None:
    """The mean over seeds of the fitted lines at ``flops``, back on the measured scale."""
    fits = [s.fit for s in curve.seeds if s.fit is not None]
    if not fits:
        return None
    z = np.mean([[f.predict(float(x)) for x in np.log(flops)] for f in fits], axis=0)
    return np.array([expit(v) for v in z]) if curve.metric == "accuracy" else -z



def backbone_families(backbones: Iterable[str]) -> dict[str, str]:
    """backbone -> tokenizer family ('encoder' / 'decoder'), for the backbones the registry knows."""
    from zoo import registry
    from zoo.errors import ZooError

    out = {}
    for name in dict.fromkeys(backbones):
        try:
            out[name] = registry.load("backbone", name).family
        except ZooError:
            continue
    return out


def curves_for(result: Any, loss: bool = True) -> CurveStudy | None:
    """The curves of a comparison (``ComparisonResult``) when an arm has at least 2 budgets, else None.
    Scores only for a minimal-pair suite (an accuracy, fitted on the logit scale; a fine-tuning suite's
    average mixes metrics such as MCC that have no logit); the held-out loss when ``loss``."""
    counts = budgets_per_arm(result.runs)
    if not counts or max(counts.values()) < 2:
        return None
    pairs_suite = result.bench.get("kind") == "minimal-pairs"
    runs = result.runs
    study = study_curves(runs if pairs_suite else [], result.tasks,
                         result.bench.get("groups") or {} if pairs_suite else {}, None, result.confidence)
    if loss:
        lossy = study_curves(runs, [], None, backbone_families(r.backbone for r in runs), result.confidence)
        study.loss_curves, study.loss_pairs = lossy.loss_curves, lossy.loss_pairs
    return study
