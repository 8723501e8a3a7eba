"""Coverage of the compute multiplier's interval on simulated studies with a known multiplier.

    OMP_NUM_THREADS=1 python perf/multiplier_coverage.py

Per simulated study, arms A and B have, per seed, accuracies at 5 budgets spanning 16x whose logit is
a line in log FLOPs; B's line is A's shifted right by ln k, so B needs exactly k times A's compute at
every score. Seed s shares an effect in both arms (N(0, 0.1) on the logit), each (arm, seed) has its
own intercept (N(0, sd_seed)) and each point its own noise (N(0, sd_point)). Prints, per setting, how
often the 95% interval of ``zoo.compare.curves.multiplier`` covered the true k among the studies where
it applies, and how many it did not apply to. Seeded: the numbers are the same on every machine.
"""

from __future__ import annotations

import math

import numpy as np

from zoo.compare.curves import arm_curve, expit, multiplier

BUDGETS = [1e13 * 2**i for i in range(5)]
SETTINGS = [  # (label, k, seeds, slope, sd_seed, sd_point, studies, rng seed)
    ("k = 2, 5 seeds", 2.0, 5, 0.3, 0.05, 0.02, 200, 1),
    ("k = 1, 5 seeds", 1.0, 5, 0.3, 0.05, 0.02, 200, 2),
    ("k = 2, 3 seeds", 2.0, 3, 0.3, 0.05, 0.02, 200, 3),
    ("k = 2, 2 seeds", 2.0, 2, 0.3, 0.05, 0.02, 200, 3),
    ("k = 2, 5 seeds, shallow noisy curves", 2.0, 5, 0.15, 0.1, 0.02, 400, 11),
    ("k = 2, 3 seeds, shallower noisier curves", 2.0, 3, 0.1, 0.1, 0.03, 400, 11),
]


def study(rng: np.random.Generator, k: float, seeds: int, slope: float, sd_seed: float, sd_point: float
          ) -> tuple[dict[int, list[tuple[float, float]]], dict[int, list[tuple[float, float]]]]:
    x = np.log(BUDGETS) - math.log(BUDGETS[0])
    a, b = {}, {}
    for s in range(seeds):
        shared = rng.normal(0, 0.1)
        ia, ib = 0.2 + shared + rng.normal(0, sd_seed), 0.2 + shared + rng.normal(0, sd_seed)
        za = ia + slope * x + rng.normal(0, sd_point, x.size)
        zb = ib + slope * (x - math.log(k)) + rng.normal(0, sd_point, x.size)
        a[s] = [(f, expit(v)) for f, v in zip(BUDGETS, za, strict=True)]
        b[s] = [(f, expit(v)) for f, v in zip(BUDGETS, zb, strict=True)]
    return a, b


def main() -> None:
    print(f"{'setting':45s} {'coverage':>9s} {'studies':>8s} {'not applicable':>15s}")
    for label, k, seeds, slope, sd_seed, sd_point, n, seed in SETTINGS:
        rng = np.random.default_rng(seed)
        hits = used = 0
        for _ in range(n):
            a, b = study(rng, k, seeds, slope, sd_seed, sd_point)
            m = multiplier(arm_curve("gpt", "a", a), arm_curve("gpt", "b", b))
            if m.log_k is None:
                continue
            used += 1
            hits += m.log_k.low <= math.log(k) <= m.log_k.high
        print(f"{label:45s} {100 * hits / max(used, 1):8.1f}% {used:8d} {n - used:15d}")


if __name__ == "__main__":
    main()
