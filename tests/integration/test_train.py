"""The shared trainer end to end on tiny settings: demo command, exact resume, non-finite loss,
config errors, two processes with gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from zoo import registry
from zoo.cli import cli
from zoo.errors import NonFiniteLossError
from zoo.plugins import compatibility
from zoo.train import checkpoint as ckpt
from zoo.train import faults
from zoo.train.config import resolve
from zoo.train.metrics import TIMING_FIELDS, read_records
from zoo.train.trainer import train

TINY_MODEL = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64}



def tiny_config(out: Path, corpus: Path, objective: str, backbone: str, steps: int, **train: object) -> dict:
    return {
        "objective": objective, "backbone": backbone, "size": "tiny", "out": str(out),
        "model": dict(TINY_MODEL),
        "data": {"source": str(corpus), "doc_boundary": "blank-line"},
        "tokenizer": {"vocab_size": 400, "num_sentinels": 20},
        "optim": {"lr": 1e-3, "warmup": 0.1},
        "train": {"budget": f"{steps}steps", "seq_len": 32, "batch_size": 4, "log_every": 2, "eval_every": 4,
                  "eval_batches": 2, "prefetch": True, **train},
    }


def pairs() -> list[tuple[str, str]]:
    out = []
    for obj in registry.names("objective"):
        for bb in registry.names("backbone"):
            if compatibility(obj, bb) is None:
                out.append((obj, bb))
    return out + [("mlm+nsp", "bert")]


def final_state(run: Path) -> tuple[dict, dict]:
    step = ckpt.steps(run)[-1][1]
    return load_file(str(step / "model.safetensors")), load_file(str(step / "optimizer.safetensors"))


def deterministic_records(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in read_records(run / "metrics.jsonl")]


def assert_same_run(a: Path, b: Path) -> None:
    (ma, oa), (mb, ob) = final_state(a), final_state(b)
    assert ma.keys() == mb.keys() and oa.keys() == ob.keys()
    for k in ma:
        assert torch.equal(ma[k], mb[k]), f"weights differ: {k}"
    for k in oa:
        assert torch.equal(oa[k], ob[k]), f"optimizer state differs: {k}"
    assert deterministic_records(a) == deterministic_records(b)


class Killed(Exception):
    """Stands in for SIGKILL in-process (tests/reliability kills real processes)."""


def interrupted(monkeypatch: pytest.MonkeyPatch, config: dict, at_step: int) -> None:
    """Run ``config`` until the process 'dies' right after step ``at_step``."""

    def die(step: int, rank: int = 0) -> None:
        if step == at_step:
            raise Killed

    with monkeypatch.context() as m:
        m.setattr(faults, "maybe_kill_at_step", die)
        with pytest.raises(Killed):
            train(resolve(config))


@pytest.mark.parametrize(("objective", "backbone"), pairs())
def test_resume_is_bitwise_identical(tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch,
                                     objective: str, backbone: str) -> None:
    """8 steps uninterrupted == killed after step 6 (checkpoint at 4) + the same command again."""
    full = tmp_path / "full"
    train(resolve(tiny_config(full, corpus, objective, backbone, 8, checkpoint_every=4)))
    part = tmp_path / "part"
    interrupted(monkeypatch, tiny_config(part, corpus, objective, backbone, 8, checkpoint_every=4), at_step=6)
    assert [s for s, _ in ckpt.steps(part)] == [4]
    result = train(resolve(tiny_config(part, corpus, objective, backbone, 8, checkpoint_every=4)))
    assert result.step == 8
    assert_same_run(full, part)


@pytest.mark.parametrize("broken", ["rng", "sampler"])
def test_resume_negative_control(tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch, broken: str) -> None:
    """Without restoring RNG (dropout) or sampler state, the resumed run must differ."""
    full = tmp_path / "full"
    train(resolve(tiny_config(full, corpus, "mlm", "bert", 8, checkpoint_every=4)))
    part = tmp_path / "part"
    interrupted(monkeypatch, tiny_config(part, corpus, "mlm", "bert", 8, checkpoint_every=4), at_step=5)
    if broken == "rng":
        monkeypatch.setattr(torch, "set_rng_state", lambda state: None)
    else:
        from zoo import data

        monkeypatch.setattr(data.Sampler, "load_state_dict", lambda self, state: None)
    train(resolve(tiny_config(part, corpus, "mlm", "bert", 8, checkpoint_every=4)))
    with pytest.raises(AssertionError, match="weights differ"):
        assert_same_run(full, part)


def test_run_directory_contents(tmp_path: Path, corpus: Path) -> None:
    run = tmp_path / "run"
    result = train(resolve(tiny_config(run, corpus, "mlm+nsp", "bert", 6, checkpoint_every=2, keep_last=2)))
    assert result.step == 6
    for name in ("config.toml", "config.json", "run.json", "tokenizer.json", "metrics.jsonl", "latest"):
        assert (run / name).is_file(), name
    assert [s for s, _ in ckpt.steps(run)] == [4, 6]  # keep_last = 2
    assert (run / "latest").read_text().strip() == "step-000006"
    manifest = ckpt.verify(run / "step-000006")
    assert set(manifest["files"]) == {"model.safetensors", "optimizer.safetensors", "rng.safetensors", "trainer.json"}
    weights = load_file(str(run / "step-000006" / "model.safetensors"))
    assert any(k.startswith("heads.mlm.") for k in weights) and any(k.startswith("heads.nsp.") for k in weights)
    assert all(k.startswith(("backbone.", "heads.")) for k in weights)
    train_recs = read_records(run / "metrics.jsonl", "train")
    assert [r["step"] for r in train_recs] == [2, 4, 6]
    for rec in train_recs:
        for key in ("step", "loss", "tokens_per_s", "flops", "elapsed_s", "mlm/acc", "nsp/acc", "lr"):
            assert key in rec, key
    flops = [r["flops"] for r in train_recs]
    assert flops == sorted(flops) and flops[0] > 0
    evals = read_records(run / "metrics.jsonl", "eval")
    assert [r["step"] for r in evals] == [4, 6] and all("nsp/acc" in r for r in evals)
    info = json.loads((run / "run.json").read_text())
    assert info["objective"] == "mlm+nsp" and info["plugins"]["objective:mlm"]


def test_non_finite_loss_stops_without_bad_checkpoint(tmp_path: Path, corpus: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOO_FAULT", "nan@step=3")
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss nan at step 3, objective clm.*batch of training rows \["):
        train(resolve(tiny_config(run, corpus, "clm", "gpt", 6, checkpoint_every=2)))
    assert [s for s, _ in ckpt.steps(run)] == [2]
    for _, path in ckpt.steps(run):
        for t in load_file(str(path / "model.safetensors")).values():
            assert torch.isfinite(t).all()


def _cli(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "train.bugdet=3"], "unknown config key 'train.bugdet'"),
        (["--set", "train.seq_len=abc"], "train.seq_len must be an integer, got 'abc'"),
        (["--budget", "-5steps"], "budget '-5steps' not understood"),
        (["--budget", "0steps"], "must be positive"),
        (["--set", "optim.schedule=exp"], "optim.schedule = 'exp' is not allowed; allowed values: 'linear', 'cosine', 'constant'"),
        (["--backbone", "bertt"], "unknown backbone 'bertt'"),
        (["--objective", "mlmm"], "unknown objective 'mlmm'"),
        (["--objective", "clm"], "clm"),
        (["--set", "model.hidden=3"], "hidden"),
    ],
)
def test_config_errors_are_clear(tmp_path: Path, args: list[str], message: str) -> None:
    base = ["train", "--objective", "mlm", "--backbone", "bert", "--out", str(tmp_path / "r"), "--dry-run"]
    for flag in ("--objective", "--backbone"):
        if flag in args:
            i = base.index(flag)
            del base[i:i + 2]
    code, out = _cli(base + args)
    assert code == 2, out
    assert "error:" in out and message in " ".join(out.split()), out
    assert "Traceback" not in out


def test_incompatible_pair_fails_before_allocation(tmp_path: Path) -> None:
    code, out = _cli(["train", "--objective", "clm", "--backbone", "bert", "--out", str(tmp_path / "r")])
    assert code == 2 and "clm" in out and "bert" in out
    assert not (tmp_path / "r").exists()


def test_demo_command_and_dry_run(tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "demo"
    common = ["--objective", "mlm+nsp", "--backbone", "bert", "--size", "tiny", "--data", str(corpus),
              "--budget", "4steps", "--seq-len", "32", "--batch-size", "4", "--vocab-size", "400",
              "--out", str(out), "--set", "model.hidden_size=32", "--set", "model.num_heads=2"]
    code, text = _cli(["train", *common, "--dry-run"])
    assert code == 0, text
    assert "parameters" in text and "FLOPs per step" in text and 'objective = "mlm+nsp"' in text
    assert not out.exists()
    code, text = _cli(["train", *common])
    assert code == 0, text
    assert "Run summary" in text and (out / "step-000004" / "manifest.json").is_file()
    # Re-running the same command finds the budget reached and leaves the run as it is.
    code, text = _cli(["train", *common])
    assert code == 0, text
    assert [s for s, _ in ckpt.steps(out)] == [4]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one_process(tmp_path: Path, corpus: Path, strategy: str) -> None:
    """2 ranks (gloo) x 1 micro-batch == 1 rank x 2 accumulated micro-batches, same global batch."""
    base = ["--objective", "mlm", "--backbone", "bert", "--size", "tiny", "--data", str(corpus),
            "--budget", "3steps", "--seq-len", "32", "--batch-size", "2", "--vocab-size", "400",
            "--set", "model.hidden_size=32", "--set", "model.num_heads=2", "--set", "model.dropout=0.0",
            "--set", "model.attention_dropout=0.0", "--set", "train.prefetch=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = tmp_path / "one"
    subprocess.run([sys.executable, "-m", "zoo", "train", *base, "--out", str(one),
                    "--set", "train.batch_tokens=128"], check=True, env=env, capture_output=True, timeout=300)
    two = tmp_path / "two"
    proc = subprocess.run([sys.executable, "-m", "zoo", "train", *base, "--out", str(two), "--nproc", "2",
                           "--strategy", strategy],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (ma, _), (mb, _) = final_state(one), final_state(two)
    for k in ma:
        assert torch.allclose(ma[k], mb[k], atol=1e-5, rtol=1e-4), k
    ra, rb = read_records(one / "metrics.jsonl", "train"), read_records(two / "metrics.jsonl", "train")
    assert [r["tokens"] for r in ra] == [r["tokens"] for r in rb]
