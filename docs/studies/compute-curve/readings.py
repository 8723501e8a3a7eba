"""The readings docs/compare.md quotes from this study beyond the report's own tables: per-paradigm medians
equal to the unigram count model's, held-out losses, tokens per parameter and the LM head's share of the
FLOPs per arm and budget, and each
phenomenon's change from the smallest to the largest budget. Reads the committed report.md and study.json:

    python docs/studies/compute-curve/readings.py docs/studies/compute-curve
"""

import json
import sys
from pathlib import Path

here = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
report = (here / "report.md").read_text(encoding="utf-8")
study = json.loads((here / "study.json").read_text(encoding="utf-8"))
budgets = sorted({r["budget"] for r in study["runs"].values()}, key=lambda b: float(b.removesuffix("flops")))


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


# Per paradigm: one row per model, "| gpt | clm | ..." in the order of the budgets (as the phenomenon table's
# columns), then the count models ("| - | unigram | ...").
block = report.split("Per paradigm:", 1)[1].strip().split("\n\n", 1)[0].splitlines()
header, rows = cells(block[0]), [cells(line) for line in block[2:]]
paradigms = [h for h in header[2:] if h in study["runs"][next(iter(study["runs"]))]["scores"]]


def medians(row: list[str]) -> dict[str, str]:
    return {h: c.split(" ")[0] for h, c in zip(header, row, strict=True) if h in paradigms}


unigram = medians(next(r for r in rows if r[1] == "unigram"))
seen: dict[str, int] = {}
print(f"paradigm medians equal to the unigram count model's (of {len(paradigms)} paradigms):")
for row in rows:
    if row[0] != "gpt" or row[1] == "from scratch":
        continue
    k = seen[row[1]] = seen.get(row[1], -1) + 1
    equal = sum(m == unigram[h] for h, m in medians(row).items())
    print(f"  {row[1]} @ {budgets[k]}: {equal}")

print("held-out loss at the end of training (nats, min-max over seeds); tokens per parameter; LM head share:")
for objective in ("clm", "mlm"):
    for budget in budgets:
        runs = [r["counters"] for r in study["runs"].values() if r["objective"] == objective and r["budget"] == budget]
        losses = sorted(c["final_loss"] for c in runs)
        tokens = max(c["tokens"] for c in runs)
        head = sum(c["head_flops"] for c in runs) / sum(c["flops"] for c in runs)
        print(f"  {objective} @ {budget}: {losses[0]:.2f}-{losses[-1]:.2f}; {tokens / 1e6:.1f}M tokens, "
              f"{tokens / runs[0]['params']:.0f} per parameter; head {head:.0%} of the FLOPs")

print("phenomena: change of the median from the smallest to the largest budget (x100):")
table = report.split("| phenomenon |", 1)[1].splitlines()
header = cells("| phenomenon |" + table[0])
for line in table[2:]:
    if not line.startswith("|") or line.startswith("| macro") or line.startswith("| equal"):
        break
    row = dict(zip(header, cells(line), strict=True))
    changes = []
    for objective in ("clm", "mlm"):
        low, high = (float(row[f"gpt {objective} @ {b}"]) for b in (budgets[0], budgets[-1]))
        changes.append(f"{objective} {high - low:+.1f} (to {high:.1f})")
    counts = ", ".join(f"{m} {row[m]}" for m in ("unigram", "bigram", "trigram"))
    print(f"  {row['phenomenon']}: {'; '.join(changes)}; from scratch {row['gpt from scratch']}; {counts}")
