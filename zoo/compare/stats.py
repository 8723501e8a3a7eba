"""Statistics of a comparison, each interval labelled with the confidence it actually has.

Over pretraining seeds (few values, 5 by default):

- **mean**: Student t interval ``mean +- t(n-1, (1+c)/2) s / sqrt(n)`` (exact for normal scores).
- **median**: the distribution-free order-statistic interval ``[x(k), x(n+1-k)]``, whose coverage
  is ``1 - 2 P(Binomial(n, 1/2) <= k - 1)`` for any continuous distribution. ``k`` is the largest
  order whose coverage reaches the requested level; when even ``[min, max]`` falls short (n <= 5
  at 95%: 3 seeds give 75.0%, 5 give 93.8%) the interval is ``[min, max]`` labelled with its real
  level. A percentile bootstrap of the median would give the same ``[min, max]`` and call it 95%.
- **paired difference** of two objectives (seed s of both shares its initial weights): the mean of
  the per-seed differences with its t interval, and the exact sign-flip permutation test: under no
  difference each per-seed difference is as likely positive as negative, so all ``2^n`` sign
  patterns are equally likely; p is the share of patterns whose ``|mean|`` reaches the observed
  one (enumerated, not sampled, up to ``EXACT_MAX`` seeds; beyond, a Monte-Carlo p ``(hits + 1) / (R + 1)``
  over ``R`` seeded random patterns, never 0). Its smallest possible p is ``2 / 2^n``: 0.0625 with 5
  seeds, so seed-level significance at 0.05 needs 6 or more, and 10 after Holm over 21 pairs.
- **seeds needed**: the smallest n at which a two-sided paired t test at ``alpha / tests`` detects a
  true mean difference ``delta`` with ``power``, given the standard deviation ``sd`` of per-seed
  differences: ``P(|T| > t(n-1, 1-alpha/(2 tests))) >= power`` with ``T ~ noncentral t(n-1, delta
  sqrt(n)/sd)``, and at least the n where the sign-flip test can reach that level at all
  (``2 / 2^n <= alpha / tests``). ``alpha / tests`` is the level Holm's first step applies to a
  family of ``tests`` comparisons (over 21 pairs: 0.0024, which the sign-flip test reaches only
  from 10 seeds); planning at it is the conservative choice.

Over evaluation items (hundreds or thousands of GLUE dev examples or BLiMP pairs), for the same
seeds (``(seeds, items)`` arrays, or ``(seeds, fine-tunes, items)``), the difference is
``d = mean_s d_s`` with ``d_s = metric(A_s) - metric(B_s)`` on the same items. With seeds and items
both random (crossed), ``Var(d) = s2_seed / S + s2_item / N + s2_res / (S N)``. The test studentizes
``d`` with the standard error of both levels (``seed_item_test``):

- the seed part ``var(d_s) / S`` (it holds ``s2_seed / S + s2_res / (S N)``: the spread of the
  per-seed differences, as the paired t test over seeds uses it);
- the item part ``s2_item / N``, which ``var(d_s)`` cannot see (every seed is scored on the same
  items): from a bootstrap of the items with the seeds held fixed (items drawn with replacement
  within each stratum, e.g. a BLiMP paradigm, the same draw for A, B and every seed), as
  ``(S V_mean - V_each) / (S - 1)``, where ``V_mean`` is the bootstrap variance of ``d`` and
  ``V_each`` the mean over seeds of that of ``d_s``: their difference removes ``s2_res`` which the
  seed part already holds. Any metric works (accuracy, F1, MCC), as the bootstrap recomputes it.

``t = d / SE`` is referred to Student t with the Welch-Satterthwaite degrees of freedom of the two
parts: ``S - 1`` when seeds dominate, towards ``N - 1`` when items do; the interval is
``d +- t(df) SE``. The same per-seed differences get the exact sign-flip test (``p_seeds``), and a
winner is named only when both tests agree. With one seed there is no seed part: the p is then
conditional on that seed (``conditional``), a statement about these items for this one model pair.
(The earlier pigeonhole bootstrap over seeds and items with a normal reference made p far too small
when the seed spread dominates: with 5 seeds the normal approximation ignores that the seed part is
estimated from 4 degrees of freedom.)

Many pairs: Holm's step-down adjustment of the p values (``holm``).
Every random quantity comes from a seeded generator, so a report is reproducible.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.stats

STATISTICS = ("median", "mean")
DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0
EXACT_MAX = 20  # sign patterns enumerated up to 2^20; beyond, 2^20 seeded random patterns
ITEM_METRICS = ("mean", "f1", "mcc", "accuracy_f1")


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval; ``confidence`` is the interval's actual level.

    ``method``: ``t`` (Student t interval of the mean), ``order`` (order-statistic interval of the
    median), ``bootstrap`` (percentile bootstrap), ``seed-item t`` (``seed_item_test``). ``low``/``high`` are NaN for a single value.
    """

    point: float
    low: float
    high: float
    n: int
    values: tuple[float, ...] = field(default=())
    statistic: str = "median"
    confidence: float = DEFAULT_CONFIDENCE
    method: str = "t"

    @property
    def has_interval(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    def excludes(self, value: float = 0.0) -> bool:
        """Whether the interval lies entirely above or below ``value``."""
        return self.has_interval and (self.low > value or self.high < value)

    @property
    def label(self) -> str:
        """``95% t``, ``93.8% order-statistic``, ``95% bootstrap``: what the brackets are."""
        name = {"t": "t", "order": "order-statistic", "bootstrap": "bootstrap",
                "seed-item t": "t (seeds and items)"}.get(self.method, self.method)
        return f"{format_level(self.confidence)} {name}"

    def to_dict(self) -> dict[str, object]:
        return {"point": self.point, "low": None if math.isnan(self.low) else self.low,
                "high": None if math.isnan(self.high) else self.high, "n": self.n, "values": list(self.values),
                "statistic": self.statistic, "confidence": self.confidence, "method": self.method}


def format_level(confidence: float) -> str:
    """0.95 -> ``95%``, 0.9375 -> ``93.8%``."""
    pct = 100 * confidence
    return f"{pct:.0f}%" if abs(pct - round(pct)) < 1e-9 else f"{pct:.1f}%"


def _check(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{what}: need at least one value")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what}: values must be finite, got {x.tolist()}")
    return x


def _check_level(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


# --- over seeds --------------------------------------------------------------------------------------------

def t_interval(values: Sequence[float], confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
    """The mean of ``values`` with its Student t interval."""
    _check_level(confidence)
    x = _check(values, "t_interval")
    point = float(x.mean())
    vals = tuple(float(v) for v in x)
    if x.size == 1:
        return Estimate(point, math.nan, math.nan, 1, vals, "mean", confidence, "t")
    half = float(scipy.stats.t.ppf((1 + confidence) / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return Estimate(point, point - half, point + half, int(x.size), vals, "mean", confidence, "t")


@functools.lru_cache(maxsize=256)
def order_coverage(n: int, k: int) -> float:
    """Coverage of ``[x(k), x(n+1-k)]`` (1-based order statistics) for the median of a continuous distribution."""
    if not 1 <= k <= (n + 1) // 2:
        raise ValueError(f"order k must be in [1, {(n + 1) // 2}] for n = {n}, got {k}")
    return float(1 - 2 * scipy.stats.binom.cdf(k - 1, n, 0.5))


def median_interval(values: Sequence[float], confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
    """The median of ``values`` with the narrowest symmetric order-statistic interval reaching
    ``confidence``, or ``[min, max]`` with its (lower) actual level when none does."""
    _check_level(confidence)
    x = np.sort(_check(values, "median_interval"))
    point = float(np.median(x))
    vals = tuple(float(v) for v in _check(values, "median_interval"))
    n = int(x.size)
    if n == 1:
        return Estimate(point, math.nan, math.nan, 1, vals, "median", confidence, "order")
    k = 1
    while k + 1 <= (n + 1) // 2 and order_coverage(n, k + 1) >= confidence:
        k += 1
    return Estimate(point, float(x[k - 1]), float(x[n - k]), n, vals, "median", order_coverage(n, k), "order")


def seed_estimate(values: Sequence[float], statistic: str = "median",
                  confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
    """``statistic`` over pretraining seeds with the interval that has the stated coverage."""
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; expected one of {', '.join(STATISTICS)}")
    return t_interval(values, confidence) if statistic == "mean" else median_interval(values, confidence)


def sign_flip_test(diffs: Sequence[float], seed: int = DEFAULT_SEED) -> tuple[float, bool]:
    """Two-sided p of the sign-flip permutation test of mean(diffs) = 0, and whether it is exact
    (all ``2^n`` sign patterns; above ``EXACT_MAX`` values, ``2^EXACT_MAX`` seeded random ones, with the
    Monte-Carlo p ``(hits + 1) / (R + 1)``: the observed pattern counts as one of them)."""
    d = _check(diffs, "sign_flip_test")
    n = d.size
    observed = abs(d.mean())
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))  # equal means computed in another order still count
    exact = n <= EXACT_MAX
    total = 2**n if exact else 2**EXACT_MAX
    rng = np.random.default_rng(seed)
    hits, block = 0, 2**16
    bits = np.arange(n)
    for start in range(0, total, block):
        if exact:
            codes = np.arange(start, min(start + block, total))[:, None]  # (P, 1)
            signs = 1.0 - 2.0 * ((codes >> bits) & 1)  # (P, n): every pattern once
        else:
            signs = rng.choice([-1.0, 1.0], size=(min(block, total - start), n))
        hits += int(np.count_nonzero(np.abs(signs @ d) / n >= observed - tol))
    return (hits / total if exact else (hits + 1) / (total + 1)), exact


def sign_flip_min_seeds(alpha: float = 0.05, tests: int = 1) -> int:
    """The fewest seeds at which the sign-flip test can reach ``alpha / tests`` at all (``2 / 2^n``)."""
    return max(2, math.ceil(math.log2(2 * tests / alpha) - 1e-12))


def contrasts(arms: int) -> int:
    """Pairwise comparisons among ``arms`` arms (the ``tests`` of a study that compares every pair)."""
    if arms < 2:
        raise ValueError(f"a comparison needs at least 2 arms, got {arms}")
    return arms * (arms - 1) // 2


def paired_t_power(effect: float, n: int, level: float) -> float:
    """Power of a two-sided paired t test at ``level`` with ``n`` seeds when the true mean difference is
    ``effect`` standard deviations of the per-seed differences (noncentral t with ``n - 1`` df)."""
    if n < 2:
        raise ValueError(f"a t test needs at least 2 seeds, got {n}")
    crit = scipy.stats.t.ppf(1 - level / 2, n - 1)
    nc = abs(effect) * math.sqrt(n)
    lower = scipy.stats.nct.cdf(-crit, n - 1, nc)  # NaN far in the tail (scipy): there it is 0
    return float(scipy.stats.nct.sf(crit, n - 1, nc) + (lower if math.isfinite(lower) else 0.0))


def sign_flip_power(effect: float, n: int, level: float, sims: int = 2000, seed: int = DEFAULT_SEED) -> float:
    """Monte-Carlo power of the exact two-sided sign-flip test (``sign_flip_test``) at ``level`` with
    ``n <= EXACT_MAX`` seeds, for normal per-seed differences of mean ``effect`` (in their sd): the share
    of ``sims`` seeded simulated studies whose exact p is at most ``level``. It is 0 below
    ``sign_flip_min_seeds``, where no p can reach ``level``."""
    if not 1 <= n <= EXACT_MAX:
        raise ValueError(f"n must be between 1 and {EXACT_MAX} for the exact test, got {n}")
    rng = np.random.default_rng(seed)
    d = rng.normal(effect, 1.0, size=(sims, n))
    codes = np.arange(2**n)[:, None]
    signs = 1.0 - 2.0 * ((codes >> np.arange(n)) & 1)  # (2^n, n): every pattern once
    observed = np.abs(d.mean(1))  # (sims,)
    tol = 1e-12 * np.maximum(1.0, np.abs(d).max(1))
    rejected, rows = 0, max(1, 2**22 // 2**n)
    for start in range(0, sims, rows):  # (rows, 2^n) pattern means at a time
        block = slice(start, start + rows)
        means = np.abs(d[block] @ signs.T) / n
        p = (means >= (observed[block] - tol[block])[:, None]).mean(1)
        rejected += int(np.count_nonzero(p <= level + 1e-12))
    return rejected / sims


def seeds_needed(delta: float, sd: float, alpha: float = 0.05, power: float = 0.8, max_n: int = 10_000,
                 tests: int = 1) -> int | None:
    """Seeds for a paired two-sided t test at ``alpha / tests`` (Holm's first step over ``tests``
    comparisons) to detect ``delta`` with ``power`` (noncentral t, ``paired_t_power``), and at least as
    many as the sign-flip test needs to reach that level; None beyond ``max_n`` or when ``delta`` is 0.
    ``sd``: the standard deviation of the per-seed paired differences (a pilot's, or a study's)."""
    if tests < 1:
        raise ValueError(f"tests must be at least 1, got {tests}")
    level = alpha / tests
    floor = sign_flip_min_seeds(alpha, tests)
    if delta == 0 or not math.isfinite(delta):
        return None
    if sd <= 0:
        return floor
    effect = abs(delta) / sd
    for n in range(2, max_n + 1):
        if paired_t_power(effect, n, level) >= power:
            return max(n, floor)
    return None


@dataclass(frozen=True)
class SeedComparison:
    """``a - b`` over pretraining seeds: effect with interval, p, and what more seeds would buy."""

    diff: Estimate  # mean difference with its t interval (Welch's when unpaired)
    p: float
    test: str  # "sign-flip" (exact) | "sign-flip (2^20 random patterns)" | "welch"
    paired: bool
    wins: int | None  # seeds where a beat b (paired only)
    d_z: float | None  # standardised effect: mean / sd of the paired differences
    sd: float | None  # sd of the paired differences
    seeds_needed: int | None  # for 80% power at 0.05 / tests if the true difference were the observed one
    p_holm: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {"difference": self.diff.to_dict(), "p": self.p, "test": self.test, "paired": self.paired,
                "wins": self.wins, "d_z": self.d_z, "sd": self.sd, "seeds_needed": self.seeds_needed,
                "p_holm": self.p_holm}


def compare_seeds(a: Sequence[float], b: Sequence[float], paired: bool,
                  confidence: float = DEFAULT_CONFIDENCE, seed: int = DEFAULT_SEED, tests: int = 1) -> SeedComparison:
    """``a - b``: paired by seed (``a[i]``, ``b[i]`` share seed i) with the exact sign-flip test and a t
    interval of the mean difference; unpaired with Welch's t interval and test. ``seeds_needed`` plans
    for ``tests`` comparisons (Holm's first step, ``0.05 / tests``)."""
    xa, xb = _check(a, "compare_seeds (a)"), _check(b, "compare_seeds (b)")
    if paired:
        if xa.size != xb.size:
            raise ValueError(f"paired samples need equal sizes, got {xa.size} and {xb.size}")
        d = xa - xb
        est = t_interval(d, confidence)
        p, exact = sign_flip_test(d, seed)
        sd = float(d.std(ddof=1)) if d.size > 1 else None
        d_z = (float(d.mean()) / sd) if sd else None
        need = seeds_needed(float(d.mean()), sd, tests=tests) if sd is not None else None
        return SeedComparison(est, p, "sign-flip" if exact else f"sign-flip (2^{EXACT_MAX} random patterns)", True,
                              int(np.sum(d > 0)), d_z, sd, need)
    point = float(xa.mean() - xb.mean())
    if xa.size < 2 or xb.size < 2:
        return SeedComparison(Estimate(point, math.nan, math.nan, int(min(xa.size, xb.size)), (), "mean",
                                       confidence, "t"), math.nan, "welch", False, None, None, None, None)
    va, vb = xa.var(ddof=1) / xa.size, xb.var(ddof=1) / xb.size
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (xa.size - 1) + vb**2 / (xb.size - 1)) if se > 0 else xa.size + xb.size - 2
    half = float(scipy.stats.t.ppf((1 + confidence) / 2, df) * se)
    p = float(2 * scipy.stats.t.sf(abs(point) / se, df)) if se > 0 else (1.0 if point == 0 else 0.0)
    est = Estimate(point, point - half, point + half, int(min(xa.size, xb.size)), (), "mean", confidence, "t")
    return SeedComparison(est, p, "welch", False, None, None, None, None)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p values (same order as given): the i-th smallest p times
    ``m - i + 1``, made monotone, capped at 1. NaN entries stay NaN and do not count in m."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    running = 0.0
    for rank, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


# --- over items ----------------------------------------------------------------------------------------------

# An item metric is computed from weighted sums over items: ``sums(weights, values)`` gives, for
# item multiplicities ``weights`` (..., N) (ones for the data itself, bootstrap counts for a
# resample), the sums a metric needs; ``finish`` turns them into the metric.

def _confusion_sums(w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """TN, FP, FN, TP counts of binary confusion codes ``2 * label + prediction``: (R, K, 4) for
    weights (R, N) and codes (K, N)."""
    return np.stack([w @ (v == c).T.astype(np.float64) for c in range(4)], axis=-1)


def _f1(c: np.ndarray) -> np.ndarray:
    _, fp, fn, tp = np.moveaxis(c, -1, 0)
    den = 2 * tp + fp + fn
    return np.divide(2 * tp, den, out=np.zeros_like(den), where=den > 0)


def _mcc(c: np.ndarray) -> np.ndarray:
    tn, fp, fn, tp = np.moveaxis(c, -1, 0)
    den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return np.divide(tp * tn - fp * fn, den, out=np.zeros_like(den), where=den > 0)  # sklearn's 0 convention


def _accuracy_f1(c: np.ndarray) -> np.ndarray:
    """GLUE's MRPC / QQP task score: the mean of accuracy and F1."""
    return 0.5 * ((c[..., 0] + c[..., 3]) / c.sum(-1) + _f1(c))


def _mean_sums(w: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.stack([w @ v.T, np.broadcast_to(w.sum(-1, keepdims=True), (w.shape[0], v.shape[0]))], axis=-1)


# metric -> (sums, finish)
_ITEM_METRICS: dict[str, tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    "mean": (_mean_sums, lambda c: c[..., 0] / c[..., 1]),
    "f1": (_confusion_sums, _f1), "mcc": (_confusion_sums, _mcc), "accuracy_f1": (_confusion_sums, _accuracy_f1),
}


def _metric_fns(metric: str) -> tuple[Callable, Callable]:
    if metric not in _ITEM_METRICS:
        raise ValueError(f"unknown item metric {metric!r}; expected one of {', '.join(ITEM_METRICS)}")
    return _ITEM_METRICS[metric]


def item_metric(values: np.ndarray, metric: str = "mean") -> np.ndarray:
    """``metric`` over the last (items) axis of per-item values."""
    sums, finish = _metric_fns(metric)
    v = np.asarray(values, dtype=np.float64)
    flat = v.reshape(-1, v.shape[-1])  # (K, N)
    return finish(sums(np.ones((1, v.shape[-1])), flat))[0].reshape(v.shape[:-1])


def _items_array(x: Sequence | np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[:, None, :]  # (S, 1, N)
    if arr.ndim != 3 or 0 in arr.shape:
        raise ValueError(f"{what}: expected per-item values shaped (seeds, items) or (seeds, fine-tunes, items), "
                         f"got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: per-item values must be finite")
    return arr


@dataclass(frozen=True)
class ItemComparison:
    """``metric(a) - metric(b)`` over evaluation items and seeds (``seed_item_test``).

    ``p``: the studentized test with the standard error of both levels (``conditional`` when there is
    one seed: then it holds for these items given that seed only); ``p_seeds``: the exact sign-flip
    test of the per-seed differences on these items (NaN with one seed). ``df``: the t reference's
    degrees of freedom; ``se_seeds``, ``se_items``: the two parts of the standard error.
    """

    diff: Estimate  # point: the mean over seeds of the per-seed differences; interval: d +- t(df) SE
    p: float
    metric: str
    seeds: int
    items: int
    p_holm: float | None = None
    p_seeds: float = math.nan
    p_seeds_holm: float | None = None
    df: float = math.inf
    se_seeds: float = 0.0
    se_items: float = 0.0
    conditional: bool = False
    per_seed: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {"difference": self.diff.to_dict(), "p": self.p, "metric": self.metric, "seeds": self.seeds,
                "items": self.items, "p_holm": self.p_holm, "p_seeds": None if math.isnan(self.p_seeds) else self.p_seeds,
                "p_seeds_holm": self.p_seeds_holm, "df": None if math.isinf(self.df) else self.df,
                "se_seeds": self.se_seeds, "se_items": self.se_items, "conditional": self.conditional,
                "per_seed": list(self.per_seed)}


def _strata_index(strata: Sequence | np.ndarray | None, items: int) -> list[np.ndarray]:
    if strata is None:
        return [np.arange(items)]
    labels = np.asarray(strata)
    if labels.shape != (items,):
        raise ValueError(f"strata: expected one label per item ({items}), got shape {labels.shape}")
    return [np.flatnonzero(labels == u) for u in dict.fromkeys(labels.tolist())]


def _item_weights(rng: np.random.Generator, groups: list[np.ndarray], r: int, items: int) -> np.ndarray:
    """(r, items) multiplicities of ``r`` bootstrap draws of the items, with replacement within each group."""
    idx = np.concatenate([g[rng.integers(0, g.size, (r, g.size))] for g in groups], axis=1)
    idx = idx + items * np.arange(r)[:, None]
    return np.bincount(idx.ravel(), minlength=r * items).reshape(r, items).astype(np.float64)


def seed_item_test(a: Sequence | np.ndarray, b: Sequence | np.ndarray, metric: str = "mean",
                   confidence: float = DEFAULT_CONFIDENCE, n_resamples: int = 2_000, seed: int = DEFAULT_SEED,
                   strata: Sequence | np.ndarray | None = None) -> ItemComparison:
    """``metric(a) - metric(b)`` over seeds and items, studentized with both levels' standard error.

    ``a`` and ``b``: per-item values, ``(seeds, items)`` or ``(seeds, fine-tunes, items)``, row s of
    both from pretraining seed s and column i the same item. The metric is computed per (seed,
    fine-tune) and averaged over fine-tunes. ``strata``: one label per item (e.g. its paradigm); items
    are resampled within their stratum. See the module docstring for the standard error and the test.
    """
    _check_level(confidence)
    xa, xb = _items_array(a, "seed_item_test (a)"), _items_array(b, "seed_item_test (b)")
    if xa.shape[0] != xb.shape[0] or xa.shape[2] != xb.shape[2]:
        raise ValueError(f"paired per-item values need the same seeds and items, got shapes {xa.shape} and {xb.shape}")
    sums, finish = _metric_fns(metric)
    seeds, items = xa.shape[0], xa.shape[2]
    groups = _strata_index(strata, items)
    va, vb = xa.reshape(-1, items), xb.reshape(-1, items)  # (S * F, N), seed-major
    shape_a, shape_b = (seeds, xa.shape[1]), (seeds, xb.shape[1])

    def per_seed(w: np.ndarray) -> np.ndarray:  # (R, N) item weights -> (R, S): metric(a) - metric(b) per seed
        ma = finish(sums(w, va)).reshape(-1, *shape_a).mean(-1)  # mean over fine-tunes
        mb = finish(sums(w, vb)).reshape(-1, *shape_b).mean(-1)
        return ma - mb

    d_s = per_seed(np.ones((1, items)))[0]
    point = float(d_s.mean())
    rng = np.random.default_rng(seed)
    dist = np.empty((n_resamples, seeds))
    chunk = max(1, 4_000_000 // items)
    for start in range(0, n_resamples, chunk):
        r = min(chunk, n_resamples - start)
        dist[start:start + r] = per_seed(_item_weights(rng, groups, r, items))  # seeds held fixed
    v_mean = float(dist.mean(-1).var(ddof=1))
    if seeds > 1:
        v_each = float(dist.var(axis=0, ddof=1).mean())
        part_seeds = float(d_s.var(ddof=1)) / seeds
        part_items = max(0.0, (seeds * v_mean - v_each) / (seeds - 1))
        total = part_seeds + part_items
        den = part_seeds**2 / (seeds - 1) + part_items**2 / max(1, items - 1)
        df = total**2 / den if den > 0 else float(seeds - 1)
        p_seeds, _ = sign_flip_test(d_s, seed)
    else:  # one seed: the items' sampling alone, given this seed
        part_seeds, part_items, total, df, p_seeds = 0.0, v_mean, v_mean, math.inf, math.nan
    se = math.sqrt(total)
    if se > 0:
        p = float(2 * scipy.stats.t.sf(abs(point) / se, df))
        half = float(scipy.stats.t.ppf((1 + confidence) / 2, df) * se)
    else:
        p, half = (1.0 if point == 0 else 0.0), 0.0
    est = Estimate(point, point - half, point + half, seeds, (), metric, confidence, "seed-item t")
    return ItemComparison(est, p, metric, seeds, items, p_seeds=p_seeds, df=df, se_seeds=math.sqrt(part_seeds),
                          se_items=math.sqrt(part_items), conditional=seeds == 1,
                          per_seed=tuple(float(x) for x in d_s))


# --- one-level percentile bootstrap (kept for item-level descriptions and the scipy check) -------------------

def bootstrap_ci(values: Sequence[float], statistic: str = "mean", confidence: float = DEFAULT_CONFIDENCE,
                 n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> Estimate:
    """``statistic`` of ``values`` with its percentile bootstrap interval, resampling as
    ``scipy.stats.bootstrap(method="percentile")`` does. For many values (items), not for a few
    seeds: at small n it under-covers (3 values: the median's interval is [min, max], ~75%)."""
    _check_level(confidence)
    x = _check(values, "bootstrap_ci")
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; expected one of {', '.join(STATISTICS)}")
    fn = np.median if statistic == "median" else np.mean
    point = float(fn(x))
    vals = tuple(float(v) for v in x)
    if x.size == 1:
        return Estimate(point, math.nan, math.nan, 1, vals, statistic, confidence, "bootstrap")
    rng = np.random.default_rng(seed)
    dist = fn(x[rng.integers(0, x.size, (n_resamples, x.size))], axis=-1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(dist, [alpha, 1 - alpha])
    return Estimate(point, float(low), float(high), int(x.size), vals, statistic, confidence, "bootstrap")
