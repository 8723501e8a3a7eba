"""Time zero-shot scoring of a whole minimal-pair suite (BLiMP: 67,000 pairs, 134,000 sentences).

    python perf/minimal_pairs.py runs/bert-mlm                    # the run's model, randomly initialised
    python perf/minimal_pairs.py runs/gpt-clm --threads 2

The model is the run's architecture and tokenizer with seed-0 random weights (scoring time does not
depend on the weights, and the run needs no checkpoint yet), scored exactly as ``zoo bench --suite
blimp`` scores it. Prints one JSON line: scorer, sentences, wall and CPU seconds, threads, load average
before/after.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="run directory (config.json, tokenizer.json)")
    p.add_argument("--suite", default="blimp", choices=["blimp", "climp"])
    p.add_argument("--data-dir", default="../shared/data/blimp")
    p.add_argument("--max-pairs", type=int, default=None, help="first N pairs per paradigm (default: all)")
    p.add_argument("--pll", default="word-l2r", choices=["word-l2r", "original"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-tokens", type=int, default=16384)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from zoo.benchmarks.lm_scoring import score_sentences, scorers_for
    from zoo.benchmarks.minimal_pairs import load_suite
    from zoo.runs import open_run

    run = open_run(args.run)
    torch.manual_seed(0)
    model = run.build_model()
    heads = dict(model.heads.items())
    paradigms = load_suite(args.suite, args.data_dir, args.max_pairs)
    sentences = [s for par in paradigms for x in par.pairs for s in (x.good, x.bad)]
    load_before = os.getloadavg()
    out = []
    for scorer in scorers_for(run.objective_name, model.backbone.spec.family, heads, args.pll,
                              run.config.data.doc_start):
        t0, c0 = time.perf_counter(), time.process_time()
        score_sentences(scorer, model.backbone, heads, run.tokenizer(), run.special_tokens(), sentences,
                        args.batch_tokens, args.precision)
        # CPU seconds of all threads: on a shared machine wall time measures the neighbours too
        out.append({"scorer": scorer.name, "seconds": round(time.perf_counter() - t0, 1),
                    "cpu_seconds": round(time.process_time() - c0, 1)})
    print(json.dumps({"run": args.run, "objective": run.objective_name, "backbone": run.backbone_name,
                      "size": run.config.size, "suite": args.suite, "pairs": len(sentences) // 2,
                      "sentences": len(sentences), "precision": args.precision, "threads": args.threads, "scorers": out,
                      "loadavg_before": [round(x, 1) for x in load_before],
                      "loadavg_after": [round(x, 1) for x in os.getloadavg()], "cpus": os.cpu_count()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
