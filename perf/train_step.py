"""Training-step throughput and memory: objective-zoo's trainer vs a plain transformers loop.

    python perf/train_step.py --model bert          # mlm+nsp vs BertForPreTraining
    python perf/train_step.py --model gpt           # clm vs GPT2LMHeadModel

Both sides get identical batches from the zoo data pipeline on the real corpus and start from the
same weights. Variants: zoo fp32 / bf16 autocast, and transformers with eager / sdpa attention in
fp32 / bf16 autocast. Rounds are interleaved (every variant once per round, order rotated) and the
median step time is reported. Peak memory is measured in a fresh process per variant: the growth
of the peak resident set (VmHWM) over a few training steps, from the state after building.
Writes perf/results/train_step-<model>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_setup_args(p)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=2, help="steps per round")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--variants", default=",".join(common.ZOO_VARIANTS + common.HF_VARIANTS))
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall time (default) or process CPU time (steadier on a busy machine)")
    p.add_argument("--memory-steps", type=int, default=3, help="steps per memory probe (0: skip the probes)")
    p.add_argument("--probe", help=argparse.SUPPRESS)  # internal: memory probe of one variant
    p.add_argument("--out", type=Path, default=None, help="results directory (default perf/results)")
    p.add_argument("--tag", default="", help="suffix of the result file names")
    args = p.parse_args(argv)
    common.set_threads(args.threads)
    setup = common.setup_from_args(args)
    scratch = common.Scratch()
    try:
        if args.probe:
            steps, _ = common.build_variants(setup, [args.probe], scratch.path, num_batches=2)
            print(json.dumps(common.memory_probe(steps[args.probe], args.memory_steps)))
            return 0
        return run(args, setup, scratch)
    finally:
        scratch.cleanup()


def run(args: argparse.Namespace, setup: common.Setup, scratch: common.Scratch) -> int:
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    print(f"{setup.label()}: building {', '.join(names)}", flush=True)
    steps, info = common.build_variants(setup, names, scratch.path)
    print(f"vocab {info['vocab']}, {info['params'] / 1e6:.1f}M parameters, padding in these batches "
          f"{info['padding_fraction']:.1%}; {args.rounds} rounds x {args.steps} steps", flush=True)
    times = common.interleaved(steps, args.rounds, args.steps, args.warmup, args.clock)
    summary = common.summarize(times, setup.tokens_per_step)
    del steps
    memory = {}
    if args.memory_steps > 0:
        forward = ["--model", setup.model, "--hidden", str(setup.hidden), "--layers", str(setup.layers),
                   "--heads", str(setup.heads), "--ffn", str(setup.ffn), "--seq-len", str(setup.seq_len),
                   "--batch-size", str(setup.batch_size), "--vocab", str(setup.vocab), "--data", setup.data,
                   "--threads", str(args.threads), "--memory-steps", str(args.memory_steps),
                   f"--runtime={args.runtime}"]
        for name in names:
            print(f"  memory probe {name} ...", flush=True)
            memory[name] = common.run_probe(Path(__file__), [*forward, "--probe", name])
    hf_name, hf_tps = common.best(summary, "hf-")
    zoo_name, zoo_tps = common.best(summary, "zoo-")
    rows = []
    for name in names:
        s, m = summary[name], memory.get(name, {})
        rows.append([name, s["tokens_per_s"], s["step_s"] * 1000, m.get("peak_growth_mb", float("nan")),
                     m.get("peak_rss_mb", float("nan")), s["tokens_per_s"] / hf_tps])
    table = common.markdown_table(["variant", "tokens/s (median)", "step ms", "peak RSS growth MB",
                                   "peak RSS MB", "x best HF"], rows)
    ratio = zoo_tps / hf_tps
    mem_ratio = (memory.get(zoo_name, {}).get("peak_growth_mb", float("nan"))
                 / memory.get(hf_name, {}).get("peak_growth_mb", float("nan"))) if memory else float("nan")
    headline = (f"**{setup.label()}**: best zoo ({zoo_name}) {zoo_tps:,.0f} tokens/s vs best HF ({hf_name}) "
                f"{hf_tps:,.0f} tokens/s = **{ratio:.2f}x**; peak RSS growth zoo/HF = {mem_ratio:.2f}")
    md = f"{headline}\n\n{table}\n\nvocab {info['vocab']}, padding {info['padding_fraction']:.1%}, clock {args.clock}"
    print("\n" + md, flush=True)
    payload = {"setup": common.setup_dict(setup), "info": info, "machine": common.machine(), "clock": args.clock,
               "rounds": args.rounds, "steps_per_round": args.steps, "times_s": times, "summary": summary,
               "memory": memory, "best_zoo": zoo_name, "best_hf": hf_name, "ratio": ratio,
               "memory_ratio": mem_ratio}
    path = common.write_results(f"train_step-{setup.model}{args.tag}", payload, md, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
