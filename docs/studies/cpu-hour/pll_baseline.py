"""The masked-LM rows of the cpu-hour study against random inits scored with *their* scorer.

The study's BLiMP baseline of seed s is scored with the causal scorer (the first objective of the
grid is clm); a masked-LM run is scored with pseudo-log-likelihood, which is biased differently on a
random init. This scores each seed's random init with PLL-word-l2r on the same 50 pairs per paradigm
and compares it with that seed's mlm run, pair by pair:

    python docs/studies/cpu-hour/pll_baseline.py studies/cpu-hour > docs/studies/cpu-hour/pll_baseline.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from zoo.benchmarks.zeroshot import flags, run_minimal_pairs

study = Path(sys.argv[1])
rows, pooled = [], {"model": [], "scratch": []}
for seed in range(5):
    run = study / "runs" / f"gpt-mlm-seed{seed}"
    res = run_minimal_pairs([run], "blimp", "../shared/data/blimp", max_eval_examples=50, from_scratch=True,
                            scratch_seed=seed, write_reports=False)
    model, scratch = res.models
    ok = {name: np.concatenate([flags(m.correct["pll-word-l2r"][p]) for p in res.paradigms])
          for name, m in (("model", model), ("scratch", scratch))}
    for k in ok:
        pooled[k].append(ok[k])
    rows.append({"seed": seed, "mlm": round(100 * model.average(), 2), "scratch_pll": round(100 * scratch.average(), 2)})
x, y = np.concatenate(pooled["model"]), np.concatenate(pooled["scratch"])
wins, losses = int((x & ~y).sum()), int((~x & y).sum())
diffs = [r["mlm"] - r["scratch_pll"] for r in rows]
print(json.dumps({"scorer": "pll-word-l2r", "pairs_per_paradigm": 50, "seeds": rows,
                  "macro_difference_per_seed": [round(d, 2) for d in diffs],
                  "macro_difference_mean": round(float(np.mean(diffs)), 2),
                  "pooled_items": int(x.size), "mlm_right_scratch_wrong": wins, "scratch_right_mlm_wrong": losses,
                  "exact_binomial_p": binomtest(wins, wins + losses).pvalue}, indent=1))
