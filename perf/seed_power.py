"""Seeds a study needs, from the spread of an existing study's per-seed paired differences.

For each suite of the study, the standard deviation of the per-seed differences of the average score
between two objectives (every pair of pretrained arms; the from-scratch rows left out), and its median
over pairs; then, for 2 and 3 arms compared pairwise (1 and 3 contrasts, Holm's first step at
0.05 / m), the seeds a paired t test needs for 80% power at a few true differences
(``zoo.compare.stats.seeds_needed``: noncentral t, at least the sign-flip test's floor), with the
simulated power of the exact sign-flip test the zoo runs at that many seeds, and the seeds at which
that simulated power reaches 80%.

    python perf/seed_power.py docs/studies/six-objectives-4e12 --out docs/results/shape
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from zoo.compare.reload import report_from_study
from zoo.compare.stats import (
    EXACT_MAX,
    contrasts,
    paired_t_power,
    seeds_needed,
    sign_flip_min_seeds,
    sign_flip_power,
)
from zoo.compare.study import BASELINE

ALPHA, POWER = 0.05, 0.8
MAX_SIMULATED = min(EXACT_MAX, 16)  # 2^16 sign patterns per simulated study at most


def pair_sds(study: Path) -> dict[str, dict[str, float]]:
    """suite -> "a - b" -> sd of the per-seed differences of the average score (score units, 0-1)."""
    with tempfile.TemporaryDirectory() as tmp:  # the study directory is only read
        shutil.copy(study / "study.json", tmp)
        result = report_from_study(tmp, count_models=False)
    out: dict[str, dict[str, float]] = {}
    for res in (result, *result.others):
        out[res.suite] = {f"{p.a} - {p.b}": float(p.seeds.sd) for p in res.pairs
                          if p.seeds.sd is not None and BASELINE not in (p.a, p.b)}
    return out


def _sign_flip_seeds(effect: float, start: int, level: float, sims: int) -> int | None:
    """The fewest seeds from ``start`` at which the sign-flip test's simulated power reaches POWER."""
    for n in range(start, MAX_SIMULATED + 1):
        if sign_flip_power(effect, n, level, sims=sims) >= POWER:
            return n
    return None


def plan(sd: float, effects: list[float], arms: list[int], sims: int) -> list[dict[str, Any]]:
    rows = []
    for k in arms:
        m = contrasts(k)
        level = ALPHA / m
        for effect in effects:
            n = seeds_needed(effect, sd, alpha=ALPHA, power=POWER, tests=m)
            row: dict[str, Any] = {"arms": k, "contrasts": m, "level": level, "effect": effect,
                                   "effect_in_sd": effect / sd, "seeds": n,
                                   "sign_flip_floor": sign_flip_min_seeds(ALPHA, m)}
            if n is not None:
                row["t_power"] = paired_t_power(effect / sd, n, level)
                if n <= MAX_SIMULATED:
                    row["sign_flip_power"] = sign_flip_power(effect / sd, n, level, sims=sims)
                    row["sign_flip_seeds"] = _sign_flip_seeds(effect / sd, n, level, sims)
            rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("study", type=Path, help="a study directory holding study.json")
    p.add_argument("--effects", default="0.01,0.02,0.03", help="true differences to detect (score units)")
    p.add_argument("--arms", default="2,3", help="arms compared pairwise")
    p.add_argument("--sims", type=int, default=4000, help="simulated studies per sign-flip power")
    p.add_argument("--out", type=Path, help="directory for seed_power.json and seed_power.md")
    args = p.parse_args()
    effects = [float(x) for x in args.effects.split(",")]
    arms = [int(x) for x in args.arms.split(",")]
    sds = pair_sds(args.study)
    result: dict[str, Any] = {"study": str(args.study), "alpha": ALPHA, "power": POWER, "suites": {}}
    lines = [f"# Seeds for 80% power from {args.study}", "",
             f"`python perf/seed_power.py {args.study}`: per suite, the median over objective pairs of the sd of "
             "the per-seed differences of the average score; seeds a paired t test at 0.05/m needs (noncentral t, "
             "at least the sign-flip floor 2/2^n <= 0.05/m), the exact sign-flip test's simulated power at "
             f"that n ({args.sims} simulated normal studies), and the seeds at which that simulated power "
             f"reaches 0.8 (searched up to {MAX_SIMULATED}).", ""]
    for suite, by_pair in sds.items():
        if not by_pair:
            continue
        sd = statistics.median(by_pair.values())
        rows = plan(sd, effects, arms, args.sims)
        result["suites"][suite] = {"pair_sds": by_pair, "median_sd": sd, "min_sd": min(by_pair.values()),
                                   "max_sd": max(by_pair.values()), "plan": rows}
        lines += [f"## {suite}", "",
                  f"sd of per-seed differences over {len(by_pair)} pairs: median {100 * sd:.2f} points "
                  f"(range {100 * min(by_pair.values()):.2f}-{100 * max(by_pair.values()):.2f}).", "",
                  "| arms | contrasts | level | difference (points) | in sd | seeds (t) | t power | sign-flip power "
                  "| seeds (sign-flip, simulated) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            sf = f"{r['sign_flip_power']:.2f}" if "sign_flip_power" in r else "-"
            tp = f"{r['t_power']:.2f}" if "t_power" in r else "-"
            lines.append(f"| {r['arms']} | {r['contrasts']} | {r['level']:.4f} | {100 * r['effect']:g} | "
                         f"{r['effect_in_sd']:.2f} | {r['seeds'] if r['seeds'] is not None else '> 10,000'} | "
                         f"{tp} | {sf} | {r.get('sign_flip_seeds') or '-'} |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "seed_power.json").write_text(json.dumps(result, indent=1) + "\n")
        (args.out / "seed_power.md").write_text(text)


if __name__ == "__main__":
    main()
