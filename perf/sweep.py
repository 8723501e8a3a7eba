"""Throughput against sequence length and model size, objective-zoo vs transformers.

    python perf/sweep.py --sweep seq       # seq 128, 256, 512, 1024 at 4096 tokens per step (mini)
    python perf/sweep.py --sweep size      # tiny, mini, small at seq 128, batch 32

Each point builds both implementations at the same config (see train_step.py) and times
interleaved rounds of ``zoo-bf16`` against the transformers bf16 variants (eager and sdpa
attention; their fp32 variants are slower on this CPU at every point of train_step.py). Both
models (bert mlm+nsp, gpt clm) unless ``--models`` says otherwise.
Writes perf/results/sweep-<sweep>.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def points(sweep: str, model: str, tokens: int, seqs: list[int], sizes: list[str]) -> list[common.Setup]:
    if sweep == "seq":
        return [common.Setup.sized(model, "mini", seq_len=s, batch_size=max(1, tokens // s)) for s in seqs]
    return [common.Setup.sized(model, size) for size in sizes]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sweep", choices=["seq", "size"], required=True)
    p.add_argument("--models", default="bert,gpt")
    p.add_argument("--seqs", default="128,256,512,1024")
    p.add_argument("--sizes", default="tiny,mini,small")
    p.add_argument("--tokens", type=int, default=4096, help="tokens per step in the sequence sweep")
    p.add_argument("--variants", default="zoo-bf16,hf-eager-bf16,hf-sdpa-bf16")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--runtime", choices=["zoo", "plain"], default="zoo")
    p.add_argument("--data", choices=["corpus", "synthetic"], default="corpus" if common.CORPUS.is_dir() else "synthetic")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    common.set_threads(args.threads)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    results = []
    for model in args.models.split(","):
        for setup in points(args.sweep, model, args.tokens, [int(s) for s in args.seqs.split(",")],
                            args.sizes.split(",")):
            setup.data = args.data
            print(f"{setup.label()} ...", flush=True)
            scratch = common.Scratch()
            try:
                steps, info = common.build_variants(setup, names, scratch.path, num_batches=2)
                times = common.interleaved(steps, args.rounds, args.steps, args.warmup)
            except Exception as exc:  # one failing point must not lose the others
                print(f"  failed: {type(exc).__name__}: {exc}", flush=True)
                results.append({"setup": common.setup_dict(setup), "error": f"{type(exc).__name__}: {exc}"})
                continue
            finally:
                scratch.cleanup()
            del steps
            summary = common.summarize(times, setup.tokens_per_step)
            hf_name, hf_tps = common.best(summary, "hf-")
            zoo_name, zoo_tps = common.best(summary, "zoo-")
            results.append({"setup": common.setup_dict(setup), "info": info, "summary": summary, "best_hf": hf_name,
                            "best_zoo": zoo_name, "ratio": zoo_tps / hf_tps})
            print(f"  zoo {zoo_tps:,.0f} tokens/s, best HF ({hf_name}) {hf_tps:,.0f} -> {zoo_tps / hf_tps:.2f}x",
                  flush=True)
    rows = []
    for r in results:
        s = r["setup"]
        point = f"seq {s['seq_len']} x batch {s['batch_size']}" if args.sweep == "seq" else \
            f"L{s['layers']} h{s['hidden']}"
        if "error" in r:
            rows.append([s["model"], point, "failed", "", "", r["error"][:60]])
            continue
        z = r["summary"][r["best_zoo"]]["tokens_per_s"]
        h = r["summary"][r["best_hf"]]["tokens_per_s"]
        rows.append([s["model"], point, z, h, r["best_hf"], f"{r['ratio']:.2f}x"])
    table = common.markdown_table(["model", "point", "zoo tokens/s", "best HF tokens/s", "best HF variant",
                                   "zoo / HF"], rows)
    md = f"**{args.sweep} sweep** ({', '.join(names)}; median of {args.rounds} interleaved rounds)\n\n{table}"
    print("\n" + md)
    payload = {"sweep": args.sweep, "machine": common.machine(), "variants": names, "results": results}
    path = common.write_results(f"sweep-{args.sweep}", payload, md, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
