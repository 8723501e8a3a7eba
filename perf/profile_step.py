"""Where the time of one training step goes: a torch.profiler op table.

    python perf/profile_step.py --model bert --variant zoo-bf16
    python perf/profile_step.py --model gpt --variant hf-eager-bf16     # the reference, for comparison

Profiles ``--steps`` steps after ``--warmup`` steps of the chosen variant (see train_step.py) on
the same batches, prints the top ops by self CPU time and a coarse breakdown (matmuls, softmax /
cross-entropy, dropout, optimizer, ...), and writes perf/results/profile-<model>-<variant>.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

# op-name fragments -> category (first match wins)
CATEGORIES = [
    ("matmul", ("mm", "bmm", "addmm", "matmul", "linear", "baddbmm")),
    ("softmax / cross-entropy", ("softmax", "log_softmax", "nll_loss", "cross_entropy", "logsumexp", "gather",
                                 "scatter", "max", "argmax")),
    ("attention kernels", ("scaled_dot_product", "flash_attention")),
    ("dropout / random", ("dropout", "bernoulli", "rand", "uniform")),
    ("optimizer", ("adam", "adamw", "_fused_adamw_", "_foreach", "lerp", "addcmul", "addcdiv", "sqrt")),
    ("norm / activation", ("layer_norm", "gelu", "tanh")),
    ("embedding", ("embedding",)),
    ("casts and copies", ("copy_", "to_copy", "_to_copy", "contiguous", "clone")),
]


def category(name: str) -> str:
    op = name.split("::")[-1]
    for cat, frags in CATEGORIES:
        if any(op == f or op.startswith(f + "_") or op.endswith("_" + f) or f in op.split("_") for f in frags):
            return cat
    return "other elementwise / bookkeeping"


def main(argv: list[str] | None = None) -> int:
    import torch
    from torch.profiler import ProfilerActivity, profile

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_setup_args(p)
    p.add_argument("--variant", default="zoo-bf16", help="zoo-fp32 | zoo-bf16 | hf-<eager|sdpa>-<fp32|bf16>")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    common.set_threads(args.threads)
    setup = common.setup_from_args(args)
    scratch = common.Scratch()
    try:
        steps, info = common.build_variants(setup, [args.variant], scratch.path, num_batches=2)
        step = steps[args.variant]
        for _ in range(args.warmup):
            step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                step()
    finally:
        scratch.cleanup()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    table = events.table(sort_by="self_cpu_time_total", row_limit=args.top, max_name_column_width=40)
    cats: dict[str, float] = defaultdict(float)
    for e in events:
        cats[category(e.key)] += e.self_cpu_time_total
    rows = [[c, t / 1e3 / args.steps, 100.0 * t / total] for c, t in sorted(cats.items(), key=lambda kv: -kv[1])]
    breakdown = common.markdown_table(["category", "ms per step (self CPU)", "% of step"], rows)
    top = [[e.key, e.count // args.steps, e.self_cpu_time_total / 1e3 / args.steps,
            100.0 * e.self_cpu_time_total / total]
           for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:args.top]]
    top_md = common.markdown_table(["op", "calls per step", "self ms per step", "%"], top)
    md = (f"**{setup.label()}, {args.variant}**: {total / 1e3 / args.steps:,.0f} ms self CPU per step "
          f"(threads {torch.get_num_threads()})\n\n{breakdown}\n\n{top_md}")
    print(table)
    print(md)
    payload = {"setup": common.setup_dict(setup), "variant": args.variant, "info": info, "machine": common.machine(),
               "steps": args.steps, "self_cpu_ms_per_step": total / 1e3 / args.steps,
               "categories_ms_per_step": {r[0]: r[1] for r in rows},
               "top_ops": [{"op": r[0], "calls": r[1], "self_ms": r[2], "percent": r[3]} for r in top]}
    path = common.write_results(f"profile-{setup.model}-{args.variant}", payload, md, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
