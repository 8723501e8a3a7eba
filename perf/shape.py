"""Model shape for a CPU budget: the output layer's share of training FLOPs, measured throughput, and the
tokenizer's tokens per word, over vocabulary size and width/depth.

FLOPs are the zoo's own accounting (``Backbone.flops_per_token`` times the objective's backbone passes,
plus ``Objective.head_flops`` of a real prepared batch, all times 3 for forward + backward), the
numbers the trainer charges against a FLOPs budget. A mixture is charged per part, weighted by its
share, as the trainer charges the part that ran. Throughput times real optimiser steps (the objective's
loss, backward, AdamW) of ``clm`` on gpt with the cpu-hour recipe's model settings (no dropout, no
biases, bf16 autocast where the CPU has it) on one thread unless ``OMP_NUM_THREADS`` says otherwise.

    OMP_NUM_THREADS=1 python perf/shape.py --out docs/results/shape
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.objectives.compose import build_objective
from zoo.objectives.mixture import Mixture
from zoo.objectives.spec import parse_spec
from zoo.sizes import SIZES
from zoo.testing import special_tokens_for_tests, synthetic_rows, tiny_backbone
from zoo.zoo_model import ZooModel

SEQ = 128
ROWS = 16
OBJECTIVES = ("clm", "mlm", "mntp:15|clm:1")
VOCABS = (2048, 4096, 8192, 16384)
# name -> (layers, hidden): the size presets plus shapes between tiny and mini (heads = hidden / 64)
SHAPES: dict[str, tuple[int, int]] = {
    "tiny": SIZES["tiny"],
    "4x128": (4, 128),
    "3x192": (3, 192),
    "mini-192": SIZES["mini-192"],
    "mini": SIZES["mini"],
}
HOUR_FLOPS = 1e15  # about what 2 CPU cores train in an hour at the tiny shape


def _backbone(layers: int, hidden: int, vocab: int) -> Any:
    return tiny_backbone("gpt", vocab, hidden_size=hidden, num_layers=layers, num_heads=hidden // 64,
                         intermediate_size=4 * hidden, max_positions=SEQ, bias=False)


def _parts(objective: Any) -> list[tuple[float, Any]]:
    if isinstance(objective, Mixture):
        return [(float(q), m.objective) for q, m in zip(objective.probabilities, objective.members, strict=True)]
    return [(1.0, objective)]


def step_flops(layers: int, hidden: int, vocab: int, spec: str) -> dict[str, float]:
    """Training FLOPs of one ROWS x SEQ micro-batch, backbone and head apart, as the trainer counts them."""
    tokens = special_tokens_for_tests(vocab)
    backbone = _backbone(layers, hidden, vocab)
    objective = build_objective(parse_spec(spec), {}, tokens, backbone.spec)
    rows = synthetic_rows(tokens, "decoder", batch_size=ROWS, seq_len=SEQ, seed=0, pad_last=False)
    per_token = backbone.flops_per_token(SEQ)
    body = head = 0.0
    for share, part in _parts(objective):
        batch = part.prepare(rows, np.random.default_rng(0))
        body += share * 3.0 * per_token * ROWS * SEQ * part.backbone_passes()
        head += share * 3.0 * part.head_flops(batch)
    params = sum(p.numel() for p in backbone.parameters())
    embedding = backbone.input_embedding().weight.numel()
    return {"backbone": body, "head": head, "total": body + head, "head_share": head / (body + head),
            "params": params, "non_embedding_params": params - embedding}


def flops_table() -> list[dict[str, Any]]:
    out = []
    for (name, (layers, hidden)), vocab in itertools.product(SHAPES.items(), VOCABS):
        row: dict[str, Any] = {"shape": name, "layers": layers, "hidden": hidden, "vocab": vocab}
        for spec in OBJECTIVES:
            f = step_flops(layers, hidden, vocab, spec)
            row[f"head_share[{spec}]"] = round(f["head_share"], 4)
            row[f"flops_per_token[{spec}]"] = f["total"] / (ROWS * SEQ)
            if spec == "clm":
                row["params"] = f["params"]
                row["non_embedding_params"] = f["non_embedding_params"]
                row["clm_flops_per_token"] = f["total"] / (ROWS * SEQ)
        row["mlm_tokens_per_clm_token"] = row["clm_flops_per_token"] / row["flops_per_token[mlm]"]
        row["clm_tokens_per_hour_budget"] = HOUR_FLOPS / row["clm_flops_per_token"]
        row["tokens_per_param_1h"] = row["clm_tokens_per_hour_budget"] / row["params"]
        out.append(row)
    return out


class _Timed:
    """One shape's clm training step on a fixed ROWS x SEQ micro-batch, ready to be timed."""

    def __init__(self, layers: int, hidden: int, vocab: int, warmup: int = 2) -> None:
        tokens = special_tokens_for_tests(vocab)
        backbone = _backbone(layers, hidden, vocab)
        objective = build_objective(parse_spec("clm"), {}, tokens, backbone.spec)
        self.model = ZooModel(backbone, objective)
        self.model.train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=0.0)
        rows = synthetic_rows(tokens, "decoder", batch_size=ROWS, seq_len=SEQ, seed=0, pad_last=False)
        self.batch = objective.prepare(rows, np.random.default_rng(0)).to("cpu")
        self.flops = 3.0 * (backbone.flops_per_token(SEQ) * ROWS * SEQ + objective.head_flops(self.batch))
        self.bf16 = "avx512_bf16" in _cpu_flags()
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []  # process CPU time: what the step costs whatever the load
        for _ in range(warmup):
            self.step()

    def step(self) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out = self.model(self.batch)
        self.opt.zero_grad(set_to_none=True)
        out.loss.backward()
        self.opt.step()

    def time(self, steps: int) -> None:
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            self.step()
        self.seconds.append((time.perf_counter() - start) / steps)
        self.cpu_seconds.append((time.process_time() - cpu) / steps)

    def result(self) -> dict[str, Any]:
        seconds, cpu = float(np.median(self.seconds)), float(np.median(self.cpu_seconds))
        return {"seconds_per_step": seconds, "tokens_per_s": ROWS * SEQ / seconds, "flops_per_s": self.flops / seconds,
                "cpu_seconds_per_step": cpu, "tokens_per_cpu_s": ROWS * SEQ / cpu, "flops_per_cpu_s": self.flops / cpu,
                "bf16": self.bf16, "rounds": len(self.seconds)}


def throughput(items: list[tuple[str, int]], steps: int, rounds: int) -> list[dict[str, Any]]:
    """clm steps of each (shape, vocab), timed in ``rounds`` interleaved rounds of ``steps`` steps
    (a shared machine's load drifts; interleaving spreads it over the shapes): the median round."""
    timed = [_Timed(*SHAPES[name], vocab) for name, vocab in items]
    for _ in range(rounds):
        for t in timed:
            t.time(steps)
    return [{"shape": name, "vocab": vocab, **t.result()} for (name, vocab), t in zip(items, timed, strict=True)]


def tokens_per_word(corpus: Path, vocabs: tuple[int, ...], train_lines: int, test_lines: int) -> dict[str, Any]:
    """BPE (the decoder tokenizer) trained on the first ``train_lines`` lines of the corpus's first file,
    tokens per whitespace-separated word on ``test_lines`` lines of its last file."""
    from zoo.data.tokenizer import train_tokenizer

    files = sorted(p for p in corpus.iterdir() if p.is_file())
    if len(files) < 2:
        raise SystemExit(f"{corpus}: expected at least two files (train on the first, measure on the last)")

    def lines(path: Path, n: int) -> list[str]:
        with path.open(encoding="utf-8", errors="replace") as f:
            return [line.strip() for line, _ in zip(f, range(n), strict=False) if line.strip()]

    def pieces(texts: list[str], size: int = 2000) -> list[str]:
        return [t[i:i + size] for t in texts for i in range(0, len(t), size)]

    train_texts, test = lines(files[0], train_lines), lines(files[-1], test_lines)
    train = pieces(train_texts)
    words = sum(len(t.split()) for t in test)
    out: dict[str, Any] = {"train_lines": len(train_texts), "test_lines": len(test), "test_words": words, "by_vocab": {}}
    for vocab in vocabs:
        tok = train_tokenizer(train, "bpe", vocab_size=vocab)
        n = sum(len(e.ids) for e in tok.encode_batch(test, add_special_tokens=False))
        out["by_vocab"][vocab] = n / words
    return out


def _cpu_flags() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _cpu_name() -> str:
    m = re.search(r"model name\s*:\s*(.+)", _cpu_flags())
    return m.group(1).strip() if m else platform.processor()


def _markdown(result: dict[str, Any]) -> str:
    lines = ["# Model shape: the output layer's share of training FLOPs", "",
             f"`{result['command']}` on {result['machine']['cpu']} "
             f"({result['machine']['threads']} thread(s), load average {result['machine']['load_before']} before "
             f"and {result['machine']['load_after']} after).", "",
             f"Head share of training FLOPs (the zoo's accounting), gpt, seq {SEQ}, {ROWS} rows; "
             f"mlm tokens per clm token: what equal FLOPs buy mlm (15% of positions predicted) over clm; "
             f"tokens per parameter: a {HOUR_FLOPS:.0e}-FLOP clm budget over all parameters.", "",
             "| shape | vocab | params | clm FLOPs/token | clm head | mlm head | mntp:15\\|clm:1 head | "
             "mlm tokens per clm token | tokens/param at 1e15 |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["flops"]:
        lines.append(f"| {r['shape']} ({r['layers']}x{r['hidden']}) | {r['vocab']} | {r['params'] / 1e6:.2f}M | "
                     f"{r['clm_flops_per_token']:.3g} | {100 * r['head_share[clm]']:.0f}% | "
                     f"{100 * r['head_share[mlm]']:.0f}% | {100 * r['head_share[mntp:15|clm:1]']:.0f}% | "
                     f"{r['mlm_tokens_per_clm_token']:.2f} | {r['tokens_per_param_1h']:.0f} |")
    if result["throughput"]:
        lines += ["", "Measured clm training throughput (one micro-batch per step; wall clock, which the load "
                  "shares out, and process CPU time, which it does not; median of the interleaved rounds):", "",
                  "| shape | vocab | tokens/s | GFLOP/s | tokens per CPU s | GFLOP per CPU s | CPU h per 1e15 FLOPs |",
                  "|---|---|---|---|---|---|---|"]
        for r in result["throughput"]:
            lines.append(f"| {r['shape']} | {r['vocab']} | {r['tokens_per_s']:.0f} | {r['flops_per_s'] / 1e9:.1f} | "
                         f"{r['tokens_per_cpu_s']:.0f} | {r['flops_per_cpu_s'] / 1e9:.1f} | "
                         f"{HOUR_FLOPS / r['flops_per_cpu_s'] / 3600:.2f} |")
    if result["tokens_per_word"]:
        tpw = result["tokens_per_word"]
        lines += ["", f"BPE tokens per word ({tpw['corpus']}: trained on {tpw['train_lines']} lines of the first "
                  f"file, measured on {tpw['test_lines']} lines ({tpw['test_words']:,} words) of the last):", "",
                  "| vocab | tokens/word |", "|---|---|"]
        lines += [f"| {v} | {x:.3f} |" for v, x in tpw["by_vocab"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="directory for shape.json and shape.md")
    p.add_argument("--measure", nargs="*", default=["tiny:8192", "tiny:4096", "4x128:2048", "3x192:2048",
                                                     "mini-192:4096"], help="SHAPE:VOCAB pairs to time")
    p.add_argument("--steps", type=int, default=2, help="timed steps per shape and round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (the median is kept)")
    p.add_argument("--corpus", type=Path, default=Path("../shared/data/corpus/en-wiki"))
    p.add_argument("--train-lines", type=int, default=20000)
    p.add_argument("--test-lines", type=int, default=2000)
    p.add_argument("--no-tokenizer", action="store_true", help="skip the tokens-per-word measurement")
    args = p.parse_args()

    torch.manual_seed(0)
    load_before = os.getloadavg()[0]
    result: dict[str, Any] = {"command": "python perf/shape.py " + " ".join(os.sys.argv[1:]),
                              "flops": flops_table(), "throughput": [], "tokens_per_word": None}
    items = [(name, int(vocab)) for name, vocab in (item.split(":") for item in args.measure)]
    result["throughput"] = throughput(items, args.steps, args.rounds)
    if not args.no_tokenizer and args.corpus.is_dir():
        result["tokens_per_word"] = {"corpus": str(args.corpus),
                                     **tokens_per_word(args.corpus, VOCABS, args.train_lines, args.test_lines)}
    result["machine"] = {"cpu": _cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                         "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}
    text = _markdown(result)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "shape.json").write_text(json.dumps(result, indent=1) + "\n")
        (args.out / "shape.md").write_text(text)


if __name__ == "__main__":
    main()
