"""Gather the numbers behind the continued-pretraining example of docs/training.md (run from the
repository root after the commands there): writes runs.json, before.json, majority.json and copies
each bench.json."""

import collections
import json
import shutil
import tempfile
from pathlib import Path

from zoo.benchmarks import get_task, load_task_data
from zoo.train.resolve import resolve
from zoo.train.trainer import Trainer

OUT = Path(__file__).parent
CLUE = "../shared/data/corpus/zh/CLUECorpusSmall_sampled.txt"

runs = {}
for name in ("zh-wiki", "zh-clue", "zh-clue-lr1e-3", "zh-wiki-more"):
    r = Path("runs") / name
    cfg = json.loads((r / "config.json").read_text())
    info = json.loads((r / "run.json").read_text())
    records = [json.loads(line) for line in (r / "metrics.jsonl").read_text().splitlines() if line.strip()]
    last = [e for e in records if e["kind"] == "train"][-1]
    runs[name] = {"data": cfg["data"]["source"], "init": info.get("init"), "lr": cfg["optim"]["lr"],
                  "warmup": cfg["optim"]["warmup"], "budget": cfg["train"]["budget"], "size": cfg["size"],
                  "seq_len": cfg["train"]["seq_len"], "batch_size": cfg["train"]["batch_size"],
                  "steps": last["step"], "tokens": last["tokens"], "flops": last["flops"],
                  "final_train_loss": last["loss"],
                  "evals": [{k: e[k] for k in ("step", "loss", "acc")} for e in records if e["kind"] == "eval"]}
    if (r / "bench.json").is_file():
        shutil.copy(r / "bench.json", OUT / f"{name}.bench.json")
(OUT / "runs.json").write_text(json.dumps(runs, indent=1) + "\n")

# runs/zh-wiki before any continued step, on the CLUECorpusSmall validation batches the continued
# runs evaluate on (same rows, same seeded masking).
with tempfile.TemporaryDirectory() as tmp:
    trainer = Trainer(resolve({"objective": "mlm", "init": {"source": "runs/zh-wiki"}, "out": tmp,
                               "data": {"source": CLUE},
                               "train": {"budget": "300steps", "seq_len": 128, "batch_size": 32}}))
    trainer.setup()
    before = trainer.evaluate()
(OUT / "before.json").write_text(json.dumps({"model": "runs/zh-wiki", "data": CLUE, "eval": before}, indent=1) + "\n")
print(json.dumps({k: v["evals"][-1] for k, v in runs.items()}), before["loss"], before["acc"])

# The majority class of the same 5,000 TNEWS training examples, scored on the same 2,000 dev examples.
data = load_task_data(get_task("tnews"), "../shared/data/clue").limited(max_train=5000, max_eval=2000)
top = collections.Counter(e.label for e in data.train.examples).most_common(1)[0][0]
dev = data.evals["dev"].examples
(OUT / "majority.json").write_text(json.dumps({
    "task": "tnews", "train_examples": len(data.train.examples), "dev_examples": len(dev),
    "majority_label": data.labels[top] if data.labels else top,
    "dev_accuracy": sum(e.label == top for e in dev) / len(dev)}, indent=1) + "\n")
