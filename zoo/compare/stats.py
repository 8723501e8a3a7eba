"""Percentile bootstrap confidence intervals over pretraining seeds.

The resampling follows ``scipy.stats.bootstrap(method="percentile")``: ``n_resamples`` resamples
of the ``n`` values drawn with replacement (``rng.integers(0, n, (n_resamples, n))``), the
statistic of each, and the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of that
bootstrap distribution (linear interpolation). The generator is seeded, so a report is
reproducible. With three seeds the interval of the median is essentially the range of the three
values, and any percentile bootstrap under-covers at such small ``n``: treat it as a description
of the spread, not as a guarantee.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

STATISTICS = ("median", "mean")
DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Estimate:
    """A point estimate (the statistic of the values) with its percentile bootstrap interval.

    ``low``/``high`` are NaN when there is a single value: one seed gives no interval.
    """

    point: float
    low: float
    high: float
    n: int
    values: tuple[float, ...] = field(default=())
    statistic: str = "median"
    confidence: float = 0.95

    @property
    def has_interval(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    def excludes(self, value: float = 0.0) -> bool:
        """Whether the interval lies entirely above or below ``value``."""
        return self.has_interval and (self.low > value or self.high < value)

    def to_dict(self) -> dict[str, object]:
        return {"point": self.point, "low": None if math.isnan(self.low) else self.low,
                "high": None if math.isnan(self.high) else self.high, "n": self.n, "values": list(self.values),
                "statistic": self.statistic, "confidence": self.confidence}


def _stat_fn(statistic: str):  # noqa: ANN202 - a numpy reduction
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; expected one of {', '.join(STATISTICS)}")
    return np.median if statistic == "median" else np.mean


def _check(values: Sequence[float], what: str) -> np.ndarray:
    x = np.asarray(list(values), dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{what}: need at least one value")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what}: values must be finite, got {x.tolist()}")
    return x


def _interval(dist: np.ndarray, confidence: float) -> tuple[float, float]:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    alpha = (1 - confidence) / 2
    low, high = np.quantile(dist, [alpha, 1 - alpha])
    return float(low), float(high)


def bootstrap_distribution(values: Sequence[float], statistic: str = "median",
                           n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """The statistic of each of ``n_resamples`` resamples of ``values`` (with replacement)."""
    x = _check(values, "bootstrap")
    fn = _stat_fn(statistic)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, (n_resamples, x.size))  # (R, n)
    return fn(x[idx], axis=-1)  # (R,)


def bootstrap_ci(values: Sequence[float], statistic: str = "median", confidence: float = 0.95,
                 n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> Estimate:
    """``statistic`` of ``values`` with its percentile bootstrap interval."""
    x = _check(values, "bootstrap_ci")
    point = float(_stat_fn(statistic)(x))
    if x.size == 1:
        return Estimate(point, math.nan, math.nan, 1, (point,), statistic, confidence)
    low, high = _interval(bootstrap_distribution(x, statistic, n_resamples, seed), confidence)
    return Estimate(point, low, high, int(x.size), tuple(float(v) for v in x), statistic, confidence)


def bootstrap_diff_ci(a: Sequence[float], b: Sequence[float], paired: bool, statistic: str = "median",
                      confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES,
                      seed: int = DEFAULT_SEED) -> Estimate:
    """Difference ``a - b`` with its percentile bootstrap interval.

    Paired (``a[i]`` and ``b[i]`` share seed ``i``): the statistic of the per-seed differences,
    resampling seeds. Unpaired: ``stat(a) - stat(b)``, resampling each group independently.
    """
    xa, xb = _check(a, "bootstrap_diff_ci (a)"), _check(b, "bootstrap_diff_ci (b)")
    if paired:
        if xa.size != xb.size:
            raise ValueError(f"paired samples need equal sizes, got {xa.size} and {xb.size}")
        return bootstrap_ci(xa - xb, statistic, confidence, n_resamples, seed)
    fn = _stat_fn(statistic)
    point = float(fn(xa) - fn(xb))
    values = ()
    if xa.size == 1 and xb.size == 1:
        return Estimate(point, math.nan, math.nan, 1, values, statistic, confidence)
    rng = np.random.default_rng(seed)
    da = fn(xa[rng.integers(0, xa.size, (n_resamples, xa.size))], axis=-1)
    db = fn(xb[rng.integers(0, xb.size, (n_resamples, xb.size))], axis=-1)
    low, high = _interval(da - db, confidence)
    return Estimate(point, low, high, int(min(xa.size, xb.size)), values, statistic, confidence)
