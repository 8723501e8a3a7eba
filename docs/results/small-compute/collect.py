"""Gather the numbers behind "A recipe for small compute" in docs/training.md: run from the
repository root after the commands there (runs in RUNS, default runs/small-compute). Writes runs.json
(settings, eval curves, BLiMP averages from each run's bench.json) and loss.png (eval loss against FLOPs: defaults, the recipe at batch 32, and at batch 16)."""

import json
import os
from pathlib import Path

OUT = Path(__file__).parent
RUNS = Path(os.environ.get("RUNS", "runs/small-compute"))

runs = {}
for r in sorted(p for p in RUNS.iterdir() if (p / "metrics.jsonl").is_file() and (p / "config.json").is_file()):
    cfg = json.loads((r / "config.json").read_text())
    records = [json.loads(line) for line in (r / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evals = [e for e in records if e["kind"] == "eval"]
    if not evals:
        continue
    objectives = cfg.get("objectives", {})
    row = {"objective": cfg["objective"], "size": cfg["size"], "budget": cfg["train"]["budget"],
           "lr": cfg["optim"]["lr"], "warmup": cfg["optim"]["warmup"], "schedule": cfg["optim"]["schedule"],
           "dropout": cfg["model"].get("dropout"), "attention_dropout": cfg["model"].get("attention_dropout"),
           "bias": cfg["model"].get("bias"), "batch_size": cfg["train"]["batch_size"],
           "mlm_rate": objectives.get("mlm", {}).get("rate"),
           "steps": evals[-1]["step"], "tokens": evals[-1]["tokens"], "flops": evals[-1]["flops"],
           "evals": [{k: e.get(k) for k in ("step", "flops", "loss", "acc")} for e in evals]}
    bench = r / "bench.json"
    if bench.is_file():
        b = json.loads(bench.read_text())["suites"]["blimp"]
        row["blimp"] = {"pairs_per_paradigm": b["max_eval_examples"],
                        **{("scratch" if m["from_scratch"] else "model"): {k: v["average"] for k, v in m["scorers"].items()}
                           for m in b["models"]}}
    runs[r.name] = row
(OUT / "runs.json").write_text(json.dumps(runs, indent=1) + "\n")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

pairs = [(n[: -len("-base")], n) for n in runs if n.endswith("-base")]
fig, axes = plt.subplots(1, len(pairs), figsize=(3.2 * len(pairs), 2.8), squeeze=False)
for ax, (obj, base) in zip(axes[0], pairs, strict=True):
    for name, style in ((base, "--"), (f"{obj}-recipe", "-"), (f"{obj}-batch16", ":")):
        if name in runs:
            ev = runs[name]["evals"]
            ax.plot([e["flops"] for e in ev], [e["loss"] for e in ev], style, marker=".", label=name)
    ax.set_title(runs[base]["objective"], fontsize=9)
    ax.set_xlabel("training FLOPs", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
axes[0][0].set_ylabel("held-out loss", fontsize=8)
fig.tight_layout()
fig.savefig(OUT / "loss.png", dpi=80)
print(json.dumps({k: round(v["evals"][-1]["loss"], 3) for k, v in runs.items()}))
