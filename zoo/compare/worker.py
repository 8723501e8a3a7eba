"""One training job of a study in its own process, on a set number of threads.

``python -m zoo.compare.worker train CONFIG.json THREADS`` trains the run config (``to_dict`` of a
``RunConfig``) exactly as ``zoo.train.trainer.train`` does in process; ``probe`` trains each of
several configs for a few steps and prints the measured training FLOP/s of each (after the first
step, excluded) as one JSON line per config.
The parent sets ``OMP_NUM_THREADS`` too, so that libraries read it before torch starts.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

EXIT_FAILED = 3  # the run failed with a ZooError (its message is the last line of stderr)


def _config(path: str) -> Any:
    from zoo.train.resolve import resolve

    return resolve(json.loads(Path(path).read_text(encoding="utf-8")))


def train_job(config: str, threads: int) -> int:
    import torch

    from zoo.errors import ZooError
    from zoo.train.trainer import train

    torch.set_num_threads(threads)
    try:
        train(_config(config))
    except ZooError as exc:
        print(f"zoo-error: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    return 0


def probe_job(configs: str, threads: int) -> int:
    """Train each config's budget (a few steps; ``configs``: paths joined by ``os.pathsep``) with a record
    per step; print the FLOP/s of steps 2.. of each, one JSON line per config."""
    import torch

    torch.set_num_threads(threads)
    for config in configs.split(os.pathsep):
        _probe(config)
    return 0


def _probe(config: str) -> None:
    from zoo.train.trainer import train

    records: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    train(_config(config), callback=lambda r: records.append(dict(r)) if r.get("kind") == "train" else None)
    first, last = records[0], records[-1]
    seconds = float(last["elapsed_s"]) - float(first["elapsed_s"])
    flops = float(last["flops"]) - float(first["flops"])
    steps = int(last["step"]) - int(first["step"])
    wall = time.perf_counter() - t0
    # set-up, warm-up step, final evaluation and checkpoint: what a run costs besides its timed steps
    print(json.dumps({"flops_per_s": flops / seconds if seconds > 0 else 0.0, "steps": steps, "seconds": seconds,
                      "setup_s": max(0.0, wall - seconds),
                      "flops_per_step": flops / max(steps, 1), "tokens_per_step":
                      (int(last["tokens"]) - int(first["tokens"])) / max(steps, 1)}), flush=True)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    kind, config, threads = argv[0], argv[1], int(argv[2])
    return {"train": train_job, "probe": probe_job}[kind](config, threads)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
