"""Shared set-up of the reliability suites: a small corpus, tiny ``zoo train`` command lines, the
CLI run in-process (``CliRunner``) and as real processes that can be killed.

Every comparison of two runs is made single-threaded (``torch.set_num_threads(1)`` here,
``OMP_NUM_THREADS=1`` in child processes), so a run continued in another process is bitwise
comparable, and several children can share the two CI cores without oversubscription.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from zoo.cli import cli
from zoo.train import checkpoint as ckpt
from zoo.train.metrics import TIMING_FIELDS, read_records

REPO = Path(__file__).resolve().parents[2]
STEPS = 7  # optimiser steps of every tiny run
CKPT_EVERY = 3  # checkpoints at steps 3, 6 and 7 (the end)
# Trainer state that measures the machine, not the computation.
TIMING_STATE = ("train_time_s", "interval_time")

TINY = [
    "--size", "tiny", "--seq-len", "32", "--batch-size", "4", "--vocab-size", "400",
    "--set", "model.hidden_size=32", "--set", "model.num_layers=2", "--set", "model.num_heads=2",
    "--set", "model.intermediate_size=64", "--set", "tokenizer.num_sentinels=20",
    "--set", "optim.lr=1e-3", "--set", "optim.warmup=0.1",
    "--set", "train.log_every=1", "--set", "train.eval_every=3", "--set", "train.eval_batches=2",
    "--set", "train.device=cpu",  # bitwise comparisons are a CPU property, also on machines with a GPU
]


def train_args(out: Path, corpus: Path, objective: str = "mlm", backbone: str = "bert", steps: int = STEPS,
               every: int = CKPT_EVERY, *extra: str) -> list[str]:
    """``zoo train`` arguments (without the program name) of a tiny run."""
    return ["train", "--objective", objective, "--backbone", backbone, "--data", str(corpus),
            "--budget", f"{steps}steps", "--checkpoint-every", str(every), "--out", str(out), *TINY, *extra]


def invoke(args: list[str]) -> tuple[int, str]:
    """The CLI in this process: exit code and everything it printed (stdout and stderr)."""
    from zoo import console

    widths = console.console.width, console.err_console.width
    console.console.width = console.err_console.width = 400  # log lines unwrapped: paths and hashes stay whole
    try:
        result = CliRunner().invoke(cli, args)
    finally:
        console.console.width, console.err_console.width = widths
    out = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        out += f"\n[uncaught {type(result.exception).__name__}: {result.exception}]"
    return result.exit_code, out


def train_in_process(out: Path, corpus: Path, cache_dir: Path, *args: object) -> Path:
    """``zoo train`` in this process on the shared cache (module fixtures run before the autouse
    fixture that points ``ZOO_CACHE_DIR`` at it); ``args`` go to ``train_args``. Must succeed."""
    with pytest.MonkeyPatch.context() as m:
        m.setenv("ZOO_CACHE_DIR", str(cache_dir))
        code, text = invoke(train_args(out, corpus, *args))
    assert code == 0, text
    return out


def flat(text: str) -> str:
    """Output with rich's line wrapping undone (messages are matched as one line)."""
    return " ".join(text.split())


def assert_user_error(code: int, out: str, *needles: str) -> str:
    """Exit code 2, an ``error:`` line holding every needle, no traceback."""
    text = flat(out)
    assert code == 2, f"exit code {code}, expected 2:\n{out}"
    assert "error:" in text, out
    assert "Traceback" not in out and "[uncaught" not in out, out
    for needle in needles:
        assert needle in text, f"{needle!r} not in:\n{text}"
    return text


# --- comparing runs -----------------------------------------------------------------------------

def final_step(run: Path) -> Path:
    found = ckpt.steps(run)
    assert found, f"{run} has no checkpoint"
    return found[-1][1]


def deterministic_records(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in read_records(run / "metrics.jsonl")]


def trainer_state(step_dir: Path) -> dict:
    state = json.loads((step_dir / "trainer.json").read_text())
    return {k: v for k, v in state.items() if k not in (*TIMING_STATE, "config")}  # config names its --out


def assert_same_run(a: Path, b: Path) -> None:
    """Final weights, optimiser state, trainer state and metrics lines (minus timings) are equal."""
    sa, sb = final_step(a), final_step(b)
    assert sa.name == sb.name, (sa, sb)
    for name, what in (("model.safetensors", "weights"), ("optimizer.safetensors", "optimizer state")):
        ta, tb = load_file(str(sa / name)), load_file(str(sb / name))
        assert ta.keys() == tb.keys(), f"{what}: different keys"
        for k in ta:
            assert torch.equal(ta[k], tb[k]), f"{what} differ: {k}"
    assert trainer_state(sa) == trainer_state(sb), "trainer state differs"
    ra, rb = deterministic_records(a), deterministic_records(b)
    assert len(ra) == len(rb), f"metrics: {len(ra)} vs {len(rb)} records"
    for x, y in zip(ra, rb, strict=True):
        assert x == y, f"metrics differ:\n{x}\n{y}"


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def edited_copy(src: Path, dst: Path, **config: object) -> Path:
    """A copy of the run ``src`` whose ``config.json`` has the given top-level values."""
    run = copy_run(src, dst)
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, **config}))
    return run


def tiny_glue(tmp: Path) -> Path:
    """A GLUE data folder under ``tmp`` holding a two-row SST-2 (train and dev); returns the folder."""
    glue = tmp / "glue" / "SST-2"
    glue.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev"):
        (glue / f"{split}.tsv").write_text("sentence\tlabel\ngood\t1\nbad\t0\n")
    return glue.parent


def bench_sst2(run: Path, tmp: Path) -> tuple[int, str]:
    """``zoo bench RUN --tasks sst2`` on a two-row SST-2 written under ``tmp``."""
    return invoke(["bench", str(run), "--tasks", "sst2", "--data-dir", str(tiny_glue(tmp)), "--device", "cpu"])


# --- real processes --------------------------------------------------------------------------------

@dataclass
class Child:
    """A ``python -m zoo ...`` child process with its output in a file."""

    args: list[str]
    proc: subprocess.Popen
    log: Path

    def wait(self, timeout: float = 240) -> tuple[int, str]:
        rc = self.proc.wait(timeout=timeout)
        return rc, self.log.read_text(errors="replace")

    def kill(self) -> None:
        """Stop the child and anything it started (its own session), if still running."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def child_env(cache: Path, fault: str | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_FAULT")}
    env.update({"ZOO_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                "COLUMNS": "200"})
    if fault:
        env["ZOO_FAULT"] = fault
    env.update(extra or {})
    return env


def spawn(args: list[str], log: Path, cache: Path, fault: str | None = None,
          extra_env: dict[str, str] | None = None) -> Child:
    """Start ``python -m zoo *args`` (with ``ZOO_FAULT=fault``) without waiting for it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "zoo", *args], stdout=out, stderr=subprocess.STDOUT,
                                env=child_env(cache, fault, extra_env), cwd=REPO, start_new_session=True)
    return Child(args, proc, log)


# --- fixtures ----------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shard / tokenizer cache the root conftest points ``ZOO_CACHE_DIR`` at."""
    return tmp_path_factory.getbasetemp() / "zoo-cache"


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """A small English corpus (stdlib docs), blank-line separated; its tokenizers and token stores
    are built once here so that child processes find them cached."""
    from pydoc_data.topics import topics

    from zoo.data import DataConfig, TokenizerConfig, build_datasets

    path = tmp_path_factory.mktemp("corpus") / "docs.txt"
    texts = [topics[k].strip() for k in sorted(topics)][:40]
    path.write_text("\n\n".join(t.replace("\n\n", "\n") for t in texts), encoding="utf-8")
    with pytest.MonkeyPatch.context() as m:
        m.setenv("ZOO_CACHE_DIR", str(cache_dir))
        for family in ("encoder", "decoder"):
            build_datasets(DataConfig(source=str(path)), TokenizerConfig(vocab_size=400, num_sentinels=20),
                           family, None)
    return path


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
