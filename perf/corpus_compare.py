"""Two zero-shot studies that differ only in their corpus: each seed's macro-average score, and the
difference of the two means with Welch's interval and test.

Different corpora mean different tokenizers and different text, so seed s of one study shares nothing
with seed s of the other but the seed number: the comparison is unpaired. The count models of each
study (from its ``results.json``, written by ``zoo compare --report-only``; the macro average over
paradigms) are shown beside it.

    python perf/corpus_compare.py docs/results/corpus/en docs/results/corpus/en-wiki --out docs/results/corpus
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from zoo.compare.stats import compare_seeds


def per_seed(study: Path) -> dict[int, float]:
    """seed -> the run's mean score over every task of the study (BLiMP: the macro average over paradigms)."""
    data = json.loads((study / "study.json").read_text(encoding="utf-8"))
    out = {}
    for rec in data["runs"].values():
        if rec.get("status") == "done" and rec.get("scores"):
            out[int(rec["seed"])] = statistics.fmean(rec["scores"].values())
    return out


def count_models(study: Path) -> dict[str, float]:
    path = study / "results.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    out = {}
    for name, acc in ((data.get("bench") or {}).get("baselines") or {}).items():  # per paradigm: macro average
        out[name] = statistics.fmean(acc.values()) if isinstance(acc, dict) else float(acc)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("--out", type=Path, help="directory for compare.json and compare.md")
    args = p.parse_args()
    a, b = per_seed(args.a), per_seed(args.b)
    c = compare_seeds(list(a.values()), list(b.values()), paired=False)
    result: dict[str, Any] = {
        "a": str(args.a), "b": str(args.b), "seeds_a": a, "seeds_b": b,
        "mean_a": statistics.fmean(a.values()), "mean_b": statistics.fmean(b.values()),
        "comparison": c.to_dict(), "count_models_a": count_models(args.a), "count_models_b": count_models(args.b)}
    d = c.diff
    lines = [f"# {args.a.name} vs {args.b.name}", "",
             f"`python perf/corpus_compare.py {args.a} {args.b}`: each run's macro-average score (x100), "
             "per seed; the difference of the means with Welch's 95% interval and test (unpaired: different "
             "corpora and tokenizers).", "",
             "| study | seeds | per seed | mean | unigram | bigram | trigram |", "|---|---|---|---|---|---|---|"]
    for name, seeds, base in ((args.a.name, a, result["count_models_a"]), (args.b.name, b, result["count_models_b"])):
        cells = [f"{100 * base[k]:.1f}" if k in base else "-" for k in ("unigram", "bigram", "trigram")]
        lines.append(f"| {name} | {len(seeds)} | " + ", ".join(f"{100 * v:.1f}" for _, v in sorted(seeds.items()))
                     + f" | {100 * statistics.fmean(seeds.values()):.2f} | " + " | ".join(cells) + " |")
    lines += ["", f"{args.a.name} - {args.b.name}: {100 * d.point:+.2f} points, 95% interval "
              f"[{100 * d.low:+.2f}, {100 * d.high:+.2f}], p = {c.p:.3g} ({c.test})."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "compare.json").write_text(json.dumps(result, indent=1) + "\n")
        (args.out / "compare.md").write_text(text)


if __name__ == "__main__":
    main()
