"""Differences between the three families of the three-families study (unpaired, over seeds).

The study's report pairs each run only with its own architecture's from-scratch baseline: runs on
different backbones share no initial weights, so seed s of ``gpt clm`` and seed s of ``bert mlm`` are
not a pair. This compares the families' BLiMP macro averages (each run's mean over the 67 paradigms,
x100) with Welch's t interval and test (``zoo.compare.stats.compare_seeds`` unpaired), Holm-adjusted
over the three differences; each difference mixes the objective with the architecture:

    python docs/studies/three-families/families.py docs/studies/three-families/study.json \
        > docs/studies/three-families/families.json
"""

from __future__ import annotations

import json
import sys
from itertools import combinations
from pathlib import Path

import numpy as np

from zoo.compare.stats import compare_seeds, holm


def run_averages(study: dict, suite: str = "blimp") -> dict[str, list[float]]:
    """'backbone objective' -> per-seed macro averages (x100), seeds ascending; from-scratch rows too."""
    tasks = study["suites"][suite] if "suites" in study else None
    out: dict[str, list[tuple[int, float]]] = {}
    for section, label in (("runs", None), ("baselines", "from scratch")):
        for run in study.get(section, {}).values():
            scores = run.get("scores", {})
            if section == "runs" and run.get("status") != "done":
                continue
            keys = tasks or list(scores)
            if not keys or any(k not in scores for k in keys):
                continue
            name = f"{run['backbone']} {label or run['objective']}"
            out.setdefault(name, []).append((int(run["seed"]), 100 * float(np.mean([scores[k] for k in keys]))))
    return {k: [v for _, v in sorted(vals)] for k, vals in out.items()}


def main(argv: list[str]) -> dict[str, object]:
    study = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    averages = run_averages(study)
    trained = [k for k in averages if not k.endswith("from scratch")]
    pairs = list(combinations(trained, 2))
    comparisons = [compare_seeds(averages[a], averages[b], paired=False) for a, b in pairs]
    adjusted = holm([c.p for c in comparisons])
    rows = []
    for (a, b), c, p_holm in zip(pairs, comparisons, adjusted, strict=True):
        rows.append({"a": a, "b": b, "difference": round(c.diff.point, 2),
                     "welch_95": [round(c.diff.low, 2), round(c.diff.high, 2)], "p": round(c.p, 4),
                     "p_holm": round(p_holm, 4),
                     "verdict": "not distinguishable" if not c.diff.excludes(0.0) or p_holm >= 0.05 else
                                (f"{a} ahead" if c.diff.point > 0 else f"{b} ahead")})
    return {"macro_average_per_seed": {k: [round(v, 2) for v in vals] for k, vals in averages.items()},
            "unpaired_differences": rows,
            "note": "Welch's t interval and test over seeds (the families share no initial weights), Holm over "
                    f"the {len(rows)} differences; each difference mixes objective and architecture."}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=1))
