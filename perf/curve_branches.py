"""Wall time of the models of a 4-budget curve (one arm, one seed): one trapezoid trunk with a cooldown
branch per shorter budget (``zoo.train.branch``) against four separately trained runs; checks that each
branch's final weights equal the separate run's.

    OMP_NUM_THREADS=1 python perf/curve_branches.py --out /tmp/curve [--budgets 50,100,200,400]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from zoo.train import checkpoint as ckpt
from zoo.train.branch import latest_before_cooldown
from zoo.train.config import Budget
from zoo.train.resolve import resolve
from zoo.train.trainer import train


def config(out: Path, budget: str, cooldown: float, **train_kw: object) -> dict:
    return {"objective": "mlm", "backbone": "bert", "size": "tiny", "out": str(out),
            "model": {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "intermediate_size": 128},
            "tokenizer": {"vocab_size": 2000},
            "optim": {"lr": 1e-3, "warmup_steps": 10, "schedule": "trapezoid", "cooldown": cooldown},
            "train": {"budget": budget, "seq_len": 64, "batch_size": 8, "log_every": 10, "eval_every": 0,
                      "eval_batches": 2, "checkpoint_minutes": 0, **train_kw}}


CPU: dict[str, float] = {}


def timed(cfg: dict) -> float:
    """Wall seconds of one training call (its process CPU seconds go to ``CPU``, keyed by run directory)."""
    t0, c0 = time.perf_counter(), time.process_time()
    train(resolve(cfg))
    CPU[str(cfg["out"])] = time.process_time() - c0
    return time.perf_counter() - t0


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(ckpt.steps(run)[-1][1] / "model.safetensors"))


def _cpu() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--budgets", default="50,100,200,400")
    ap.add_argument("--cooldown", type=float, default=0.2)
    args = ap.parse_args()
    out = Path(args.out)
    load_before = os.getloadavg()
    shutil.rmtree(out, ignore_errors=True)
    budgets = [f"{int(b)}steps" for b in args.budgets.split(",")]
    # the tokenizer and token stores are built (and cached) once, outside the timings
    train(resolve(config(out / "warm", "20steps", args.cooldown)))
    # separate runs first, then the curve (the trunk, then its branches)
    separate = {b: timed(config(out / "separate" / b, b, args.cooldown)) for b in budgets}
    trunk = out / "curve" / budgets[-1]
    curve = {budgets[-1]: timed(config(trunk, budgets[-1], args.cooldown, branch_budgets=budgets))}
    for b in budgets[:-1]:
        step = latest_before_cooldown(trunk, Budget.parse(b), args.cooldown)
        curve[b] = timed({"out": str(out / "curve" / b), "branch": {"source": str(trunk), "step": step},
                          "train": {"budget": b}})
    equal = {b: all(torch.equal(x, y) for x, y in zip(weights(out / "curve" / b).values(),
                                                      weights(out / "separate" / b).values(), strict=True))
             for b in budgets}
    result = {"budgets": budgets, "cooldown": args.cooldown, "curve_s": curve, "separate_s": separate,
              "curve_total_s": sum(curve.values()), "separate_total_s": sum(separate.values()),
              "curve_cpu_s": sum(v for k, v in CPU.items() if "/curve/" in k),
              "separate_cpu_s": sum(v for k, v in CPU.items() if "/separate/" in k),
              "steps_curve": int(Budget.parse(budgets[-1]).value + sum(args.cooldown * Budget.parse(b).value
                                                                       for b in budgets[:-1])),
              "steps_separate": int(sum(Budget.parse(b).value for b in budgets)), "bitwise_equal": equal,
              "cpu": _cpu(), "cores": os.cpu_count(), "omp_threads": os.environ.get("OMP_NUM_THREADS"),
              "loadavg_1m_before_after": [load_before[0], os.getloadavg()[0]], "torch": torch.__version__}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
