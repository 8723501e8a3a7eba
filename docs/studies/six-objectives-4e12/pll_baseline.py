"""The masked-LM rows of the cpu-hour study against random inits scored with *their* scorer.

The study's BLiMP baseline of seed s is scored with the causal scorer (the first objective of the
grid is clm); a masked-LM run is scored with pseudo-log-likelihood, which is biased differently on a
random init. This scores each seed's random init with PLL-word-l2r on the same 50 pairs per paradigm
and compares it with that seed's mlm run:

    python docs/studies/six-objectives-4e12/pll_baseline.py studies/cpu-hour > docs/studies/six-objectives-4e12/pll_baseline.json

The seed is the unit of replication: the test is over the 5 per-seed differences (exact sign-flip,
with the t interval of their mean), and over seeds and pairs together with ``seed_item_test`` (pairs
drawn within their paradigm); never over the 5 x 3,350 seed-pairs pooled as if independent.
``--from FILE`` recomputes the seed-level statistics from the per-seed values stored in FILE.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from zoo.compare.stats import seed_item_test, sign_flip_test, t_interval


def seed_level(rows: list[dict[str, float]]) -> dict[str, object]:
    diffs = [r["mlm"] - r["scratch_pll"] for r in rows]
    est = t_interval([d / 100 for d in diffs])
    p, _ = sign_flip_test(diffs)
    return {"macro_difference_per_seed": [round(d, 2) for d in diffs],
            "macro_difference_mean": round(float(np.mean(diffs)), 2),
            "macro_difference_t95": [round(100 * est.low, 2), round(100 * est.high, 2)],
            "sign_flip_p": p, "seeds_ahead": int(sum(d > 0 for d in diffs))}


def main(argv: list[str]) -> dict[str, object]:
    if argv[:1] == ["--from"]:
        stored = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
        rows = stored["seeds"]
        return {"scorer": stored["scorer"], "pairs_per_paradigm": stored["pairs_per_paradigm"], "seeds": rows,
                **seed_level(rows), "item_level": stored.get("item_level")}
    from zoo.benchmarks.pairs_results import flags
    from zoo.benchmarks.zeroshot import run_minimal_pairs

    study = Path(argv[0])
    rows, model_ok, scratch_ok, strata = [], [], [], None
    for seed in range(5):
        run = study / "runs" / f"gpt-mlm-seed{seed}"
        res = run_minimal_pairs([run], "blimp", "../shared/data/blimp", max_eval_examples=50, from_scratch=True,
                                scratch_seed=seed, write_reports=False, baselines=False)
        model, scratch = res.models
        for m, out in ((model, model_ok), (scratch, scratch_ok)):
            out.append(np.concatenate([flags(m.correct["pll-word-l2r"][p]) for p in res.paradigms]).astype(float))
        strata = [p for p in res.paradigms for _ in model.correct["pll-word-l2r"][p]]
        rows.append({"seed": seed, "mlm": round(100 * model.average(), 2), "scratch_pll": round(100 * scratch.average(), 2)})
    items = seed_item_test(np.stack(model_ok), np.stack(scratch_ok), strata=strata)
    return {"scorer": "pll-word-l2r", "pairs_per_paradigm": 50, "seeds": rows, **seed_level(rows),
            "item_level": {"difference": round(100 * items.diff.point, 2),
                           "t95": [round(100 * items.diff.low, 2), round(100 * items.diff.high, 2)],
                           "df": items.df, "p": items.p, "p_sign_flip_seeds": items.p_seeds}}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), indent=1))
