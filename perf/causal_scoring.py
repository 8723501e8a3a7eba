"""Measure the causal scorer's readings on BLiMP and cross-check them against lm-evaluation-harness.

    python perf/causal_scoring.py runs/gpt-clm --max-pairs 50 --out docs/results/causal-scoring/clm.json
    python perf/causal_scoring.py runs/gpt-clm-start exports/gpt-clm-start --lm-eval --max-pairs 50 \
        --out docs/results/causal-scoring/clm-start.json      # --lm-eval needs `pip install -e '.[lm-eval]'`

Every model (a run directory or a directory exported with ``zoo export --to hf``) is scored with each
registered causal reading (``zoo.benchmarks.lm_scoring.causal_readings``) (``causal``, ``causal-unigram`` where the
run's training store is at hand, ``causal-start``), each on the sentences as BLiMP writes them and
with a leading space (the form a sentence takes inside a document, and the one lm-evaluation-harness
scores). With ``--lm-eval``, every exported directory is also scored by lm-evaluation-harness's
``hf`` model on the BLiMP task configuration pointed at the local ``<UID>.jsonl`` files
(``HF_DATASETS_OFFLINE=1``), and its per-pair decisions and log-likelihoods are compared with the
zoo's ``causal-start`` reading of the leading-space sentences, which is what lm-evaluation-harness
computes (see docs/benchmarks.md). Writes one JSON file; prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

READINGS = ("causal", "causal-unigram", "causal-start")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def zoo_scores(sm: Any, paradigms: list[Any], reading: str, space: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """(good, bad) sentence scores of every pair under the opened model ``sm`` (``zeroshot.ScoringModel``), in
    paradigm order; None where the reading does not apply."""
    from zoo.benchmarks.lm_scoring import score_sentences, scorers_for
    from zoo.errors import ConfigError

    (scorer,) = scorers_for(sm.objective, sm.backbone.spec.family, sm.heads, causal=reading)
    lead = " " if space else ""
    good = [lead + x.good for p in paradigms for x in p.pairs]
    bad = [lead + x.bad for p in paradigms for x in p.pairs]
    try:
        unigram = sm.unigram() if scorer.unigram else None
    except ConfigError:
        return None
    s = score_sentences(scorer, sm.backbone, sm.heads, sm.source.tokenizer, sm.source.special, good + bad,
                        unigram=unigram)[scorer.name]
    return s[:len(good)], s[len(good):]


def accuracies(paradigms: list[Any], good: np.ndarray, bad: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    ok = good > bad
    out, i = {}, 0
    for p in paradigms:
        out[p.name] = float(ok[i:i + len(p.pairs)].mean())
        i += len(p.pairs)
    return out, ok


def paired(a: str, b: str) -> dict[str, float]:
    """Difference b - a in accuracy over the same pairs (x100), its 95% interval from the discordant
    pairs (the paired normal approximation), and the discordant counts."""
    x = np.frombuffer(a.encode(), np.uint8) == ord("1")
    y = np.frombuffer(b.encode(), np.uint8) == ord("1")
    n, gain, loss = len(x), int((~x & y).sum()), int((x & ~y).sum())
    d = (gain - loss) / n
    se = np.sqrt(max(gain + loss - n * d * d, 0.0)) / n
    return {"difference": round(100 * d, 2), "ci95": [round(float(100 * (d - 1.96 * se)), 2), round(float(100 * (d + 1.96 * se)), 2)],
            "only_this_right": gain, "only_causal_right": loss}


def first_token_differs(tok: Any, paradigms: list[Any], space: bool) -> dict[str, float]:
    lead = " " if space else ""
    out = {}
    for p in paradigms:
        g = tok.encode_batch([lead + x.good for x in p.pairs], add_special_tokens=False)
        b = tok.encode_batch([lead + x.bad for x in p.pairs], add_special_tokens=False)
        out[p.name] = float(np.mean([a.ids[:1] != c.ids[:1] for a, c in zip(g, b, strict=True)]))
    return out


def lm_eval_scores(export: Path, data_dir: Path, paradigms: list[Any], limit: int | None,
                   batch_size: int) -> dict[str, Any]:
    """lm-evaluation-harness on the local BLiMP files: per paradigm, the per-pair (ll_good, ll_bad)."""
    import lm_eval

    tasks = []
    for p in paradigms:
        tasks.append({
            "task": f"blimp_local_{p.name}", "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"train": str(data_dir / f"{p.name}.jsonl")}},
            "output_type": "multiple_choice", "validation_split": "train", "doc_to_text": "", "doc_to_target": 0,
            "doc_to_choice": "{{[sentence_good, sentence_bad]}}", "num_fewshot": 0,
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
            "metadata": {"version": 1.0}})
    t0 = time.perf_counter()
    res = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={export},dtype=float32", tasks=tasks,
                                  device="cpu", batch_size=batch_size, limit=limit, log_samples=True)
    seconds = time.perf_counter() - t0
    out: dict[str, Any] = {"version": lm_eval.__version__, "seconds": seconds, "paradigms": {}}
    for p in paradigms:
        name = f"blimp_local_{p.name}"
        samples = sorted(res["samples"][name], key=lambda s: s["doc_id"])
        ll = np.asarray([[float(r[0][0]) for r in s["resps"]] for s in samples])  # (pairs, 2): good, bad
        out["paradigms"][p.name] = {"acc": float(res["results"][name]["acc,none"]), "ll": ll.tolist()}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", type=Path, help="run directories or exported transformers directories")
    ap.add_argument("--data-dir", type=Path, default=Path("../shared/data/blimp"))
    ap.add_argument("--max-pairs", type=int, default=50, help="first N pairs per paradigm (0: all)")
    ap.add_argument("--lm-eval", action="store_true", help="also run lm-evaluation-harness on exported directories")
    ap.add_argument("--batch-size", type=int, default=64, help="lm-evaluation-harness batch size")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="write the results here (JSON)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from zoo.benchmarks.minimal_pairs import load_suite
    from zoo.benchmarks.source import open_source
    from zoo.benchmarks.zeroshot import open_scoring_model

    paradigms = load_suite("blimp", args.data_dir, args.max_pairs or None)
    load0 = os.getloadavg()[0]
    report: dict[str, Any] = {
        "suite": "blimp", "data": str(args.data_dir), "max_pairs": args.max_pairs or None,
        "pairs": sum(len(p.pairs) for p in paradigms), "paradigms": [p.name for p in paradigms],
        "cpu": _cpu(), "threads": args.threads, "models": {}}
    for model in args.models:
        hf = (model / "zoo_export.json").is_file() or not (model / "run.json").is_file()
        entry: dict[str, Any] = {"path": str(model), "exported": hf, "readings": {},
                                 "first_token_differs": {}}
        sm = open_scoring_model(open_source(model))  # once per model, for every reading
        for space in (False, True):
            key = "space" if space else "plain"
            differs = first_token_differs(sm.source.tokenizer, paradigms, space)
            entry["first_token_differs"][key] = {"pairs": float(np.mean(list(differs.values()))),
                                                 ">=0.96": sorted(k for k, v in differs.items() if v >= 0.96)}
            for reading in READINGS:
                scores = zoo_scores(sm, paradigms, reading, space)
                if scores is None:
                    continue
                acc, ok = accuracies(paradigms, *scores)
                entry["readings"][f"{reading}{'+space' if space else ''}"] = {
                    "macro": float(np.mean(list(acc.values()))), "paradigms": acc,
                    "correct": "".join("1" if x else "0" for x in ok)}
                if reading == "causal-start" and space:
                    entry["_start_space"] = scores
        if args.lm_eval and hf:
            le = lm_eval_scores(model, args.data_dir, paradigms, args.max_pairs or None, args.batch_size)
            good, bad = entry["_start_space"]
            ll = np.concatenate([np.asarray(le["paradigms"][p.name]["ll"]) for p in paradigms])
            theirs_ok = ll[:, 0] > ll[:, 1]
            ours_acc = entry["readings"]["causal-start+space"]["paradigms"]
            diffs = {p.name: le["paradigms"][p.name]["acc"] - ours_acc[p.name] for p in paradigms}
            entry["lm_eval"] = {
                "version": le["version"], "seconds": le["seconds"],
                "macro": float(np.mean([le["paradigms"][p.name]["acc"] for p in paradigms])),
                "paradigms": {p.name: le["paradigms"][p.name]["acc"] for p in paradigms},
                "compared_with": "causal-start+space",
                "macro_difference": float(np.mean(list(diffs.values()))),
                "largest_paradigm_difference": float(max(abs(v) for v in diffs.values())),
                "pairs_decided_differently": int((theirs_ok != (good > bad)).sum()),
                "max_abs_loglik_difference": float(np.abs(ll - np.stack([good, bad], 1)).max())}
        entry.pop("_start_space", None)
        base = entry["readings"].get("causal")
        for name, r in entry["readings"].items():  # paired against the default reading, on the same pairs
            if base is not None and name != "causal":
                r["vs_causal"] = paired(base["correct"], r["correct"])
        report["models"][str(model)] = entry
        print(json.dumps({"model": str(model), **{k: round(100 * v["macro"], 1) for k, v in entry["readings"].items()},
                          **({"lm_eval": round(100 * entry["lm_eval"]["macro"], 1),
                              "lm_eval_decided_differently": entry["lm_eval"]["pairs_decided_differently"],
                              "lm_eval_max_abs_loglik_difference": entry["lm_eval"]["max_abs_loglik_difference"]}
                             if "lm_eval" in entry else {})}), flush=True)
    report["loadavg"] = [round(load0, 1), round(os.getloadavg()[0], 1)]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
