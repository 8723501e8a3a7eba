"""GPU throughput and MFU: objective-zoo (SDPA vs xformers attention, eager vs torch.compile, bf16)
against the transformers reference, for BERT-base (seq 128 and 512) and GPT-2 124M (seq 1024).

    bash perf/gpu.sh RESULTS_DIR                 # on a CUDA machine (what to run there)
    python perf/gpu.py --out DIR [--deadline S]  # the driver itself
    python perf/gpu.py --smoke --out DIR         # tiny models on CPU: checks the script's logic

Not part of the test suite. Every configuration runs in a try block: a kernel that is not
installed (xformers) or fails is recorded as skipped / failed with the reason, and the next one
runs. Runs are ordered by priority and none starts after ``--deadline`` seconds, so the whole
script fits a short machine lease. Batches are synthetic (the corpus need not be on the GPU
machine): BERT gets sentence pairs with MLM + NSP targets, GPT packed documents with next-token
targets, prepared by the objectives themselves. The zoo step is the trainer's: autocast forward,
backward, gradient clipping, fused AdamW, and a loss read back to the host every step.
MFU = model FLOPs (the trainer's accounting: 3 x forward FLOPs of backbone and heads) / time / peak.
Writes gpu.json and gpu.md (a summary table) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the checkout, installed or not

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402


@dataclass
class Config:
    name: str
    model: str  # bert | gpt
    layers: int
    hidden: int
    heads: int
    seq_len: int
    batch: int
    vocab: int
    impl: str  # zoo | hf
    attention: str = "sdpa"  # zoo: sdpa | xformers; hf: sdpa | eager
    compile: bool = False
    precision: str = "bf16"


def configs(smoke: bool) -> list[Config]:
    if smoke:
        bert = dict(model="bert", layers=2, hidden=64, heads=2, vocab=1000)
        gpt = dict(model="gpt", layers=2, hidden=64, heads=2, vocab=1000)
        shapes = [("gpt-tiny-64", gpt, 64, 4), ("bert-tiny-32", bert, 32, 8), ("bert-tiny-64", bert, 64, 4)]
    else:
        bert = dict(model="bert", layers=12, hidden=768, heads=12, vocab=30522)
        gpt = dict(model="gpt", layers=12, hidden=768, heads=12, vocab=50257)
        shapes = [("gpt2-124m-1024", gpt, 1024, 16), ("bert-base-128", bert, 128, 128), ("bert-base-512", bert, 512, 32)]
    out: list[Config] = []
    for name, m, seq, batch in shapes:  # priority 1: zoo sdpa and the reference, eager
        out.append(Config(name, seq_len=seq, batch=batch, impl="zoo", attention="sdpa", **m))
        out.append(Config(name, seq_len=seq, batch=batch, impl="hf", attention="sdpa", **m))
    for name, m, seq, batch in shapes:  # priority 2: xformers
        out.append(Config(name, seq_len=seq, batch=batch, impl="zoo", attention="xformers", **m))
    for name, m, seq, batch in shapes:  # priority 3: compiled (slow to start)
        out.append(Config(name, seq_len=seq, batch=batch, impl="zoo", attention="sdpa", compile=True, **m))
    return out


def peak_flops(device: torch.device) -> float:
    if device.type != "cuda":
        return 0.0
    from zoo.train.trainer import PEAK_FLOPS  # the trainer's table, so MFU here means what it means there

    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), 0.0)


def batches(cfg: Config, objective: Any, n: int, seed: int = 0) -> list[Any]:
    from zoo.testing import special_tokens_for_tests, synthetic_rows, synthetic_segments

    tokens = special_tokens_for_tests(vocab_size=cfg.vocab)
    out = []
    for k in range(n):
        rng = np.random.default_rng([seed, k])
        if cfg.model == "bert":
            data = synthetic_segments(tokens, batch_size=cfg.batch, seq_len=cfg.seq_len, seed=seed + k)
        else:
            data = synthetic_rows(tokens, "decoder", batch_size=cfg.batch, seq_len=cfg.seq_len, seed=seed + k,
                                  pad_last=False)
        out.append(objective.prepare(data, rng))
    return out


def build_zoo(cfg: Config, device: torch.device) -> tuple[Any, Any, list[Any], Any]:
    from zoo import registry
    from zoo.objectives.compose import build_objective
    from zoo.objectives.spec import parse_spec
    from zoo.testing import special_tokens_for_tests
    from zoo.train.config import OptimConfig
    from zoo.train.optim import build_optimizer
    from zoo.zoo_model import ZooModel

    bcls = registry.load("backbone", cfg.model)
    backbone = bcls(bcls.Config(vocab_size=cfg.vocab, hidden_size=cfg.hidden, num_layers=cfg.layers,
                                num_heads=cfg.heads, intermediate_size=4 * cfg.hidden,
                                max_positions=max(cfg.seq_len, 512), attention=cfg.attention))
    objective = build_objective(parse_spec("mlm+nsp" if cfg.model == "bert" else "clm"), {},
                                special_tokens_for_tests(vocab_size=cfg.vocab), backbone.spec)
    model = ZooModel(backbone, objective).to(device).train()
    optimizer = build_optimizer(model, OptimConfig(), device)
    return model, optimizer, batches(cfg, objective, 4), objective


def hf_inputs(cfg: Config, batch: Any) -> dict[str, torch.Tensor]:
    ids = batch.input_ids
    if cfg.model == "bert":
        mlm = batch.targets["mlm"]
        labels = torch.full_like(ids, -100)
        keep = mlm["labels"] != -100
        rows = torch.arange(ids.shape[0], device=ids.device)[:, None].expand_as(mlm["positions"])
        labels[rows[keep], mlm["positions"][keep]] = mlm["labels"][keep]
        return {"input_ids": ids, "attention_mask": (batch.doc_ids >= 0).long(), "token_type_ids": batch.token_type_ids,
                "labels": labels, "next_sentence_label": batch.targets["nsp"]["labels"]}
    lab = batch.targets["clm"]["labels"]
    return {"input_ids": ids, "labels": torch.cat([torch.full_like(lab[:, :1], -100), lab[:, :-1]], dim=1)}


def run_one(cfg: Config, device: torch.device, warmup: int, steps: int) -> dict[str, Any]:
    """Tokens/s, MFU and peak memory of one configuration."""
    from zoo.models.attention import xformers_available

    if cfg.impl == "zoo" and cfg.attention == "xformers" and not xformers_available():
        return {"status": "skipped", "reason": "xformers with CUDA kernels is not installed here"}
    dtype = torch.bfloat16 if cfg.precision == "bf16" else None
    model, optimizer, cpu_batches, objective = build_zoo(cfg, device)
    flops = [3.0 * (model.backbone.flops_per_token(cfg.seq_len) * cfg.batch * cfg.seq_len + objective.head_flops(b))
             for b in cpu_batches]
    dev_batches = [b.to(device) for b in cpu_batches]
    if cfg.impl == "zoo":
        forward = torch.compile(model) if cfg.compile else model
        params = [p for p in model.parameters() if p.requires_grad]

        def step(k: int) -> None:
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                out = forward(dev_batches[k % len(dev_batches)])
            float(out.loss.detach())  # the trainer reads the loss every step
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    else:
        import transformers

        hf_config = model.backbone.hf_config()
        hf_config._attn_implementation = cfg.attention
        ref = (transformers.BertForPreTraining if cfg.model == "bert" else transformers.GPT2LMHeadModel)(hf_config)
        ref = ref.to(device).train()
        del model, optimizer
        hf_opt = torch.optim.AdamW(ref.parameters(), lr=5e-4)
        inputs = [hf_inputs(cfg, b) for b in dev_batches]

        def step(k: int) -> None:
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = ref(**inputs[k % len(inputs)]).loss
            loss.backward()
            hf_opt.step()
            hf_opt.zero_grad()

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    for k in range(warmup):
        step(k)
    sync()
    warm_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for k in range(steps):
        step(warmup + k)
    sync()
    dt = (time.perf_counter() - t0) / steps
    tokens = cfg.batch * cfg.seq_len
    peak = peak_flops(device)
    step_flops = float(np.mean(flops))
    return {"status": "ok", "step_ms": dt * 1000, "tokens_per_s": tokens / dt, "warmup_s": warm_s,
            "model_tflops_per_step": step_flops / 1e12, "achieved_tflops": step_flops / dt / 1e12,
            "mfu": step_flops / dt / peak if peak else None,
            "peak_mem_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None}


def label(cfg: Config) -> str:
    if cfg.impl == "hf":
        return f"transformers {cfg.attention}"
    return f"zoo {cfg.attention}" + (" +compile" if cfg.compile else "")


def summary_table(results: list[dict[str, Any]]) -> str:
    lines = ["| config | implementation | tokens/s | step ms | MFU | TFLOP/s | peak GB | note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        c = r["config"]
        if r["status"] == "ok":
            mfu = f"{r['mfu']:.1%}" if r.get("mfu") else "n/a"
            mem = f"{r['peak_mem_gb']:.1f}" if r.get("peak_mem_gb") is not None else "n/a"
            lines.append(f"| {c['name']} b{c['batch']} | {r['label']} | {r['tokens_per_s']:,.0f} | {r['step_ms']:.1f} | "
                         f"{mfu} | {r['achieved_tflops']:.1f} | {mem} | warm-up {r['warmup_s']:.0f}s |")
        else:
            lines.append(f"| {c['name']} b{c['batch']} | {r['label']} | | | | | | {r['status']}: "
                         f"{r.get('reason', '')[:80]} |")
    return "\n".join(lines)


def environment(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__, "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["peak_bf16_flops"] = peak_flops(device)
    for mod in ("transformers", "xformers"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception as exc:
            info[mod] = f"not available ({type(exc).__name__})"
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path(os.environ.get("ZOO_PERF_OUT", "perf/results/gpu")))
    p.add_argument("--smoke", action="store_true", help="tiny models on CPU (checks the script, measures nothing)")
    p.add_argument("--smoke-compile", action="store_true", help="with --smoke: also run the compiled variants")
    p.add_argument("--deadline", type=float, default=420.0, help="start no configuration after this many seconds")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--only", default="", help="comma-separated config names to run (default: all)")
    args = p.parse_args(argv)
    start = time.perf_counter()
    if args.smoke:
        device = torch.device("cpu")
        args.warmup, args.steps = min(args.warmup, 1), min(args.steps, 2)
    elif torch.cuda.is_available():
        device = torch.device("cuda")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        print("no CUDA device here: run with --smoke to check the script on CPU", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    env = environment(device)
    print(json.dumps(env))
    results: list[dict[str, Any]] = []
    only = {s for s in args.only.split(",") if s}
    for cfg in configs(args.smoke):
        if only and cfg.name not in only:
            continue
        rec: dict[str, Any] = {"config": asdict(cfg), "label": label(cfg)}
        elapsed = time.perf_counter() - start
        if elapsed > args.deadline:
            rec.update(status="skipped", reason=f"deadline ({elapsed:.0f}s > {args.deadline:.0f}s)")
        elif cfg.compile and args.smoke and not args.smoke_compile:
            rec.update(status="skipped", reason="compile skipped in --smoke (add --smoke-compile)")
        else:
            try:
                rec.update(run_one(cfg, device, args.warmup, args.steps))
            except Exception as exc:  # one failing configuration must not lose the others
                rec.update(status="failed", reason=f"{type(exc).__name__}: {exc}".replace("\n", " "),
                           traceback=traceback.format_exc(limit=6))
            finally:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        results.append(rec)
        shown = (f"{rec['tokens_per_s']:,.0f} tokens/s, MFU {rec['mfu']:.1%}" if rec.get("mfu") else
                 f"{rec['tokens_per_s']:,.0f} tokens/s") if rec["status"] == "ok" else \
            f"{rec['status']}: {rec.get('reason', '')[:100]}"
        print(f"[{time.perf_counter() - start:6.0f}s] {cfg.name} {rec['label']}: {shown}", flush=True)
        (args.out / "gpu.json").write_text(json.dumps({"environment": env, "results": results}, indent=1))
    table = summary_table(results)
    header = f"GPU run on {env.get('gpu', env['device'])} (torch {env['torch']}, total {time.perf_counter() - start:.0f}s)"
    (args.out / "gpu.md").write_text(f"{header}\n\n{table}\n")
    print(f"\n{header}\n\n{table}")
    failed = [r for r in results if r["status"] == "failed"]
    return 1 if failed and len(failed) == len(results) else 0


if __name__ == "__main__":
    sys.exit(main())
