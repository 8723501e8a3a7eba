"""Type-I error of the item-level comparison on simulated studies with no true difference.

    python perf/type_one_error.py                        # 300 studies per cell, as the unit test
    python perf/type_one_error.py --studies 2000 --out docs/results/stats/type_one_error.json

For 5 and 10 pretraining seeds, two kinds of data with no difference between arms A and B (the
simulation of ``tests/unit/test_compare_stats.py::_null_rate``, with its generator seeds, so that
300 studies give the rates that test asserts):

- seed-dominated: per-item scores (log-probability differences) with a seed shift of sd 1 for
  each arm and seed, shared item effects and per-(seed, item) noise of sd 1 (100 items);
- item-dominated: 0/1 correctness from item-level logits, each item favouring A or B at random,
  no seed effect (100 items).

Each study is tested at ``--alpha`` by

- ``current``: ``zoo.compare.stats.seed_item_test`` (seed-level plus item-level standard error,
  Student t with Welch-Satterthwaite degrees of freedom), with ``--resamples`` item resamples
  (100, as the unit test);
- ``old``: the test it replaced (before a1d7a48): a pigeonhole bootstrap that resamples seeds and
  items with replacement (``--old-resamples``, its default 2,000), p from a normal reference,
  ``2 (1 - Phi(|d| / sd(d*)))``.

Prints one Markdown table (rate, its binomial standard error, the studies, the seconds) and with
``--out`` writes it as JSON too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy.stats

from zoo.compare.stats import seed_item_test

KINDS = ("seed-dominated", "item-dominated")


def studies(seeds: int, kind: str, n: int, items: int = 100):
    """``n`` simulated (a, b) pairs of (seeds, items) arrays with no difference; the generator and the
    draws are those of the unit test's ``_null_rate``."""
    rng = np.random.default_rng(1000 * seeds + len(kind))
    for _ in range(n):
        if kind == "seed-dominated":
            shared = rng.normal(0.0, 1.0, items)
            a = shared + rng.normal(0, 1.0, (seeds, 1)) + rng.normal(0, 1.0, (seeds, items))
            b = shared + rng.normal(0, 1.0, (seeds, 1)) + rng.normal(0, 1.0, (seeds, items))
        else:
            z, w = rng.normal(0.5, 1.5, items), rng.normal(0, 0.6, items)
            a = (rng.random((seeds, items)) < 1 / (1 + np.exp(-(z + w)))).astype(float)
            b = (rng.random((seeds, items)) < 1 / (1 + np.exp(-(z - w)))).astype(float)
        yield a, b


def old_pigeonhole_p(a: np.ndarray, b: np.ndarray, n_resamples: int, seed: int) -> float:
    """The earlier test for the mean metric: resample items (the same for every seed and both arms), then
    seeds, both with replacement; p two-sided from a normal reference over the bootstrap standard error."""
    seeds, items = a.shape
    d = a - b  # (S, N): per-seed, per-item differences of the mean metric
    point = float(d.mean())
    rng = np.random.default_rng(seed)
    dist = np.empty(n_resamples)
    chunk = 500
    for start in range(0, n_resamples, chunk):
        r = min(chunk, n_resamples - start)
        idx = rng.integers(0, items, (r, items)) + items * np.arange(r)[:, None]
        weights = np.bincount(idx.ravel(), minlength=r * items).reshape(r, items).astype(np.float64)
        per_seed = weights @ d.T / items  # (r, S)
        s_idx = rng.integers(0, seeds, (r, seeds))
        dist[start:start + r] = np.take_along_axis(per_seed, s_idx, axis=1).mean(-1)
    se = float(dist.std(ddof=1))
    return float(2 * scipy.stats.norm.sf(abs(point) / se)) if se > 0 else (1.0 if point == 0 else 0.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--studies", type=int, default=300, help="simulated studies per (seeds, kind) cell")
    ap.add_argument("--seeds", default="5,10")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--resamples", type=int, default=100, help="item resamples of the current test")
    ap.add_argument("--old-resamples", type=int, default=2000, help="resamples of the old pigeonhole bootstrap")
    ap.add_argument("--no-old", action="store_true", help="the current test only")
    ap.add_argument("--out", type=Path, help="also write the table as JSON")
    args = ap.parse_args(argv)
    tests = ["current"] + ([] if args.no_old else ["old"])
    rows = []
    for seeds in (int(s) for s in args.seeds.split(",")):
        for kind in KINDS:
            hits = dict.fromkeys(tests, 0)
            spent = dict.fromkeys(tests, 0.0)
            for r, (a, b) in enumerate(studies(seeds, kind, args.studies)):
                t0 = time.perf_counter()
                hits["current"] += seed_item_test(a, b, n_resamples=args.resamples, seed=r).p < args.alpha
                spent["current"] += time.perf_counter() - t0
                if "old" in hits:
                    t0 = time.perf_counter()
                    hits["old"] += old_pigeonhole_p(a, b, args.old_resamples, seed=r) < args.alpha
                    spent["old"] += time.perf_counter() - t0
            for test in tests:
                rate = hits[test] / args.studies
                rows.append({"test": test, "seeds": seeds, "kind": kind, "studies": args.studies, "rejections": hits[test],
                             "rate": rate, "se": math.sqrt(rate * (1 - rate) / args.studies),
                             "seconds": round(spent[test], 2)})
            print(f"{seeds} seeds, {kind}: " + ", ".join(f"{r['test']} {r['rate']:.3f}" for r in rows[-len(tests):]),
                  file=sys.stderr, flush=True)
    lines = [f"P(p < {args.alpha}) with no true difference, {args.studies} simulated studies per row "
             f"(current: {args.resamples} item resamples; old: {args.old_resamples} seed x item resamples)", "",
             "| test | seeds | data | rejections | rate | binomial SE | seconds |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['test']} | {r['seeds']} | {r['kind']} | {r['rejections']}/{r['studies']} | {r['rate']:.3f} | "
              f"{r['se']:.3f} | {r['seconds']:.1f} |" for r in rows]
    print("\n".join(lines))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                                        "cpu": platform.processor() or platform.machine(),
                                        "loadavg": list(os.getloadavg()), "rows": rows}, indent=1) + "\n",
                            encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
