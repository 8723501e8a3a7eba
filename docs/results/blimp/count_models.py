"""Count models and the length heuristic beside the two `mini` models of docs/benchmarks.md, on all 67,000
BLiMP pairs, with each run's tokenizer recipe rebuilt from the same corpus (the runs' own tokenizer
files are not committed), and each model's accuracy on the pairs of equal token length:

    python docs/results/blimp/count_models.py > docs/results/blimp/count_models.json
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from zoo.benchmarks.minimal_pairs import load_suite
from zoo.benchmarks.ngram import equal_length_accuracy, score_pair_baselines
from zoo.benchmarks.pairs_results import correctness
from zoo.data import build_datasets
from zoo.train.build import tokenizer_config
from zoo.train.resolve import resolve

HERE = Path(__file__).resolve().parent
CORPUS, BLIMP = "../shared/data/corpus/en", "../shared/data/blimp"

paradigms = load_suite("blimp", BLIMP)
pairs = {p.name: ([x.good for x in p.pairs], [x.bad for x in p.pairs]) for p in paradigms}
out = {}
for name, backbone, objective, family in (("bert-mlm", "bert", "mlm", "encoder"), ("gpt-clm", "gpt", "clm", "decoder")):
    cfg = resolve({"backbone": backbone, "objective": objective, "size": "mini", "tokenizer": {"vocab_size": 30522},
                   "data": {"source": CORPUS, "on_decode_error": "replace"}})
    with tempfile.TemporaryDirectory() as tmp:
        bundle = build_datasets(cfg.data, tokenizer_config(cfg), family, Path(tmp))
    base = score_pair_baselines(bundle.tokenizer, pairs, np.asarray(bundle.train.tokens),
                                np.asarray(bundle.train.sent_offsets))
    equal = base.equal_length()
    blimp = json.loads((HERE / f"{name}.bench.json").read_text())["suites"]["blimp"]
    accuracy = {n: base.accuracy(n) for n in base.names}
    out[name] = {
        "tokenizer": {k: bundle.stats[k] for k in ("tokenizer_kind", "tokenizer_hash", "vocab_size")},
        "train_sentences": base.train_sentences, "train_tokens": base.train_tokens,
        "equal_length_pairs": sum(int(m.sum()) for m in equal.values()),
        "baselines": {n: {"macro": float(np.mean(list(accuracy[n].values()))),
                          "equal_length": equal_length_accuracy(base.outcomes[n], equal)[0],
                          "groups": {g: float(np.mean([accuracy[n][p] for p in ps]))
                                     for g, ps in blimp["groups"].items()}}
                      for n in base.names},
        "models_equal_length": {("from scratch" if m["from_scratch"] else "model"):
                                equal_length_accuracy(correctness(m), equal)[0] for m in blimp["models"]},
    }
print(json.dumps(out, indent=1))
