"""A real ``zoo train`` run against a plain transformers loop on the same config and data.

    python perf/zoo_train.py                 # bert mlm+nsp, mini, seq 128, batch 32, vocab 30522, precision auto
    python perf/zoo_train.py --model gpt     # gpt clm, same sizes, vocab 50257

Runs ``zoo train`` on the corpus as a user would (its own process, tokenizer training cached),
reads the steady-state ``tokens_per_s`` from its ``metrics.jsonl`` (every record after the first
interval), then runs the transformers reference in a fresh process on batches from the same data
pipeline (the same tokenizer, so the same vocabulary size), every attention/precision variant, and
takes the best. Reference tokens count every token of every row, as zoo's do. Zoo and reference
runs alternate ``--repeats`` times. The reference runs under the same CPU runtime environment as
the zoo command (``--runtime zoo``, the default) and, for comparison, under the library defaults.
Writes perf/results/zoo_train-<model>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def zoo_command(args: argparse.Namespace, out: Path) -> list[str]:
    zoo = Path(sys.executable).with_name("zoo")
    return [str(zoo) if zoo.exists() else "zoo", "train", "--objective", common.OBJECTIVE[args.model],
            "--backbone", args.model, "--size", "mini", "--seq-len", str(args.seq_len),
            "--batch-size", str(args.batch_size), "--vocab-size", str(args.vocab or common.DEFAULT_VOCAB[args.model]),
            "--precision", args.precision, "--data", str(common.CORPUS), "--on-decode-error", "replace",
            "--budget", f"{args.steps}steps", "--out", str(out),
            "--set", f"train.log_every={args.log_every}", "--set", "train.eval_every=0",
            "--set", "train.eval_batches=1"]


def run_zoo(args: argparse.Namespace, scratch: Path, k: int) -> dict:
    out = scratch / f"zoo-{k}"
    cmd = zoo_command(args, out)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=common.REPO, env=os.environ.copy())
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"zoo train failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in records if r.get("kind") == "train"]
    steady = [r["tokens_per_s"] for r in train[1:]] or [train[-1]["tokens_per_s"]]
    run = json.loads((out / "run.json").read_text())
    return {"command": " ".join(cmd), "wall_s": wall, "tokens_per_s": statistics.median(steady),
            "precision": (run.get("precision") or {}).get("resolved", args.precision),
            "intervals": [r["tokens_per_s"] for r in train], "vocab_size": run["vocab_size"],
            "parameters": run["parameters"], "train_tokens": run["data"].get("train_tokens")}


def hf_loop(args: argparse.Namespace) -> int:
    """Child process: the transformers reference in a plain loop; prints one JSON line."""
    common.set_threads(args.threads)
    setup = common.Setup(model=args.model, seq_len=args.seq_len, batch_size=args.batch_size, vocab=args.vocab)
    scratch = common.Scratch()
    try:
        variants = list(common.HF_VARIANTS) if args.hf_variants == "all" else args.hf_variants.split(",")
        steps, info = common.build_variants(setup, variants, scratch.path, num_batches=8)
        times = common.interleaved(steps, args.hf_rounds, args.hf_steps, warmup=1, log=lambda _: None)
    finally:
        scratch.cleanup()
    summary = common.summarize(times, setup.tokens_per_step)
    print(json.dumps({"summary": summary, "vocab": info["vocab"], "params": info["params"]}))
    return 0


def run_hf(args: argparse.Namespace, variants: str, plain: bool) -> dict:
    env = os.environ.copy()
    if plain:
        for key in ("OMP_WAIT_POLICY", "THP_MEM_ALLOC_ENABLE"):
            env.pop(key, None)
    cmd = [sys.executable, __file__, "--hf-loop", "--model", args.model, "--seq-len", str(args.seq_len),
           "--batch-size", str(args.batch_size), "--vocab", str(args.vocab), "--threads", str(args.threads),
           "--hf-variants", variants, "--hf-rounds", str(args.hf_rounds), "--hf-steps", str(args.hf_steps)]
    if plain:
        cmd.append("--runtime=plain")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=common.REPO, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"reference loop failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=["bert", "gpt"], default="bert")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--vocab", type=int, default=0, help="tokenizer size (default 30522 bert / 50257 gpt)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="zoo train --precision (default auto, as the trainer: bf16 where the CPU computes it natively)")
    p.add_argument("--steps", type=int, default=60, help="zoo train budget in steps")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2, help="alternating zoo / reference runs")
    p.add_argument("--hf-rounds", type=int, default=3)
    p.add_argument("--hf-steps", type=int, default=2)
    p.add_argument("--hf-variants", default="all")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--runtime", choices=["zoo", "plain"], default="zoo", help=argparse.SUPPRESS)
    p.add_argument("--hf-loop", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    args.vocab = args.vocab or common.DEFAULT_VOCAB[args.model]
    if args.hf_loop:
        return hf_loop(args)
    if not common.CORPUS.is_dir():
        raise SystemExit(f"the corpus {common.CORPUS} is missing")
    scratch = common.Scratch()
    zoo_runs, hf_runs, hf_plain = [], [], []
    try:
        for k in range(args.repeats):
            zoo_runs.append(run_zoo(args, scratch.path, k))
            print(f"zoo train run {k + 1}: {zoo_runs[-1]['tokens_per_s']:,.0f} tokens/s "
                  f"(intervals {[round(x) for x in zoo_runs[-1]['intervals']]})", flush=True)
            hf_runs.append(run_hf(args, args.hf_variants, plain=False))
            best_name, best_tps = common.best(hf_runs[-1]["summary"], "hf-")
            print(f"reference run {k + 1}: best {best_name} {best_tps:,.0f} tokens/s", flush=True)
        # The best variant over all repeats (medians), then that variant under the library defaults.
        per_variant = {v: statistics.median(r["summary"][v]["tokens_per_s"] for r in hf_runs)
                       for v in hf_runs[0]["summary"]}
        best_name = max(per_variant, key=per_variant.__getitem__)
        hf_plain.append(run_hf(args, best_name, plain=True))
    finally:
        scratch.cleanup()
    zoo_tps = statistics.median(r["tokens_per_s"] for r in zoo_runs)
    hf_tps = per_variant[best_name]
    plain_tps = hf_plain[0]["summary"][best_name]["tokens_per_s"]
    vocab = zoo_runs[0]["vocab_size"]
    precision = zoo_runs[0]["precision"]
    if precision != args.precision:
        precision = f"{args.precision}: {precision}"
    rows = [["zoo train (" + precision + ")", zoo_tps, 1.0 * zoo_tps / hf_tps]]
    rows += [[f"transformers {v}", t, t / hf_tps] for v, t in per_variant.items()]
    rows.append([f"transformers {best_name}, library-default runtime env", plain_tps, plain_tps / hf_tps])
    table = common.markdown_table(["run", "tokens/s", "x best reference"], rows)
    md = (f"**zoo train {common.OBJECTIVE[args.model]} {args.model} mini, seq {args.seq_len}, batch "
          f"{args.batch_size}, vocab {vocab} ({precision})**: {zoo_tps:,.0f} tokens/s (steady state, "
          f"metrics.jsonl) vs best transformers loop ({best_name}) {hf_tps:,.0f} tokens/s = "
          f"**{zoo_tps / hf_tps:.2f}x** (vs the reference under library-default runtime settings: "
          f"{zoo_tps / plain_tps:.2f}x)\n\n{table}\n\ncommand: `{zoo_runs[0]['command']}`")
    print("\n" + md)
    payload = {"args": vars(args) | {"out": str(args.out)}, "machine": common.machine(), "zoo_runs": zoo_runs,
               "reference_runs": hf_runs, "reference_plain_runtime": hf_plain, "zoo_tokens_per_s": zoo_tps,
               "reference_tokens_per_s": hf_tps, "best_reference": best_name, "ratio": zoo_tps / hf_tps,
               "ratio_vs_plain_runtime_reference": zoo_tps / plain_tps, "vocab_size": vocab}
    path = common.write_results(f"zoo_train-{args.model}", payload, md, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
