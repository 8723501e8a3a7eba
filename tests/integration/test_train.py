"""The shared trainer end to end on tiny settings: demo command, exact resume, non-finite loss,
config errors, resuming from an older step, damaged runs, evaluation, two processes with gloo."""

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
from zoo.errors import CheckpointError, NonFiniteLossError
from zoo.listing import compatibility
from zoo.train import checkpoint as ckpt
from zoo.train import faults
from zoo.train.metrics import TIMING_FIELDS, Sinks, read_records
from zoo.train.resolve import resolve
from zoo.train.trainer import Trainer, train

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
    """Every registered objective once, on the architecture whose own attention it uses (bert for
    bidirectional objectives, gpt for causal and prefix ones), plus both across architectures."""
    out = []
    for obj in registry.names("objective"):
        cls = registry.load("objective", obj)
        native = {bb: registry.load("backbone", bb) for bb in registry.names("backbone")
                  if compatibility(obj, bb) is None}
        fits = [bb for bb, b in native.items() if (cls.layout_for(b.family) == "bidirectional") == (b.family == "encoder")]
        out.extend((obj, bb) for bb in (fits or list(native))[:1])
    return out + [("mlm+nsp", "bert"), ("clm", "bert"), ("mlm", "gpt")]


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
        (["--objective", "nsp", "--backbone", "gpt"], "nsp needs segment embeddings"),
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
    code, out = _cli(["train", "--objective", "nsp", "--backbone", "gpt", "--out", str(tmp_path / "r")])
    assert code == 2 and "nsp" in out and "gpt" in out and "segment embeddings" in out
    assert not (tmp_path / "r").exists()


def test_demo_command_and_dry_run(tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "demo"
    common = ["--objective", "mlm+nsp", "--backbone", "bert", "--size", "tiny", "--data", str(corpus),
              "--budget", "4steps", "--seq-len", "32", "--batch-size", "4", "--vocab-size", "400",
              "--out", str(out), "--set", "model.hidden_size=32", "--set", "model.num_heads=2"]
    code, text = _cli(["train", *common, "--dry-run"])
    assert code == 0, text
    assert "parameters" in text and "FLOPs per step" in text and 'objective = "mlm+nsp"' in text
    assert "precision" in text and "auto:" in text  # what auto resolved to here, and why
    assert not out.exists()
    code, text = _cli(["train", *common])
    assert code == 0, text
    assert "Run summary" in text and (out / "step-000004" / "manifest.json").is_file()
    # Re-running the same command finds the budget reached and leaves the run as it is.
    code, text = _cli(["train", *common])
    assert code == 0, text
    assert [s for s, _ in ckpt.steps(out)] == [4]


@pytest.mark.slow
@pytest.mark.parametrize("strategy,objective,backbone", [
    ("ddp", "mlm", "bert"), ("fsdp", "mlm", "bert"),
    # A mixture under FSDP: every rank must draw the same part each step, and the parts' heads (mntp and
    # clm share the LM head) must be sharded and gathered like any other parameter.
    ("fsdp", "mntp|clm", "gpt")])
def test_two_processes_match_one_process(tmp_path: Path, corpus: Path, strategy: str, objective: str,
                                         backbone: str) -> None:
    """2 ranks (gloo) x 1 micro-batch == 1 rank x 2 accumulated micro-batches, same global batch."""
    base = ["--objective", objective, "--backbone", backbone, "--size", "tiny", "--data", str(corpus),
            "--budget", "4steps", "--seq-len", "32", "--batch-size", "2", "--vocab-size", "400",
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
    assert proc.stdout.count("Run summary") == 1, proc.stdout  # rank 0 alone prints the summary
    assert proc.stdout.count(f"| run | {two} |") == 1, proc.stdout
    (ma, _), (mb, _) = final_state(one), final_state(two)
    for k in ma:
        assert torch.allclose(ma[k], mb[k], atol=1e-5, rtol=1e-4), k
    ra, rb = read_records(one / "metrics.jsonl", "train"), read_records(two / "metrics.jsonl", "train")
    assert [r["tokens"] for r in ra] == [r["tokens"] for r in rb]
    assert [r.get("parts") for r in ra] == [r.get("parts") for r in rb]
    if "|" in objective:
        ran = {p for r in rb for p in r["parts"]}
        assert ran == set(objective.split("|")), f"both parts must run in the 4 steps, ran {ran}"
    # Adam's update hardly depends on the gradient's scale (nor does a clipped one): compare the gradients
    # themselves, whose global norm (before clipping) each step logs, so that summing the ranks' gradients
    # instead of averaging them (a norm twice as large) fails here.
    norms_one, norms_two = [r["grad_norm"] for r in ra], [r["grad_norm"] for r in rb]
    assert norms_two == pytest.approx(norms_one, rel=1e-4), (norms_one, norms_two)


def test_lr_per_step_follows_transformers_schedule(tmp_path: Path, corpus: Path) -> None:
    """A 10-step run logs, at every step, the lr of transformers' linear schedule with 1 warmup step."""
    from transformers import get_linear_schedule_with_warmup

    train(resolve(tiny_config(tmp_path / "run", corpus, "clm", "gpt", 10, log_every=1, eval_every=0)))
    logged = [r["lr"] for r in read_records(tmp_path / "run" / "metrics.jsonl", "train")]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=1, num_training_steps=10)
    expected = []
    for _ in range(10):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert logged == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert logged[-1] > 0


def test_resume_from_an_older_step_abandons_the_newer_branch(tmp_path: Path, corpus: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    run = tmp_path / "run"

    def config(steps: int) -> dict:  # budgets 4, 3, then 5: a schedule whose finished budget may be extended
        return {**tiny_config(run, corpus, "clm", "gpt", steps, checkpoint_every=2),
                "optim": {"lr": 1e-3, "warmup": 0.1, "schedule": "trapezoid"}}

    train(resolve(config(4)))
    assert [s for s, _ in ckpt.steps(run)] == [2, 4]
    with caplog.at_level("WARNING"):
        result = train(resolve(config(3)),
                       resume_from="step-000002")
    assert result.step == 3
    abandoned = sorted(run.glob("abandoned-step-000004-*"))
    assert len(abandoned) == 1 and ckpt.verify(abandoned[0])  # kept intact, with its metrics
    assert abandoned[0].name in caplog.text and "moved the newer checkpoints aside" in caplog.text
    assert max(r["step"] for r in read_records(abandoned[0] / "metrics.jsonl")) == 4
    assert [s for s, _ in ckpt.steps(run)] == [2, 3]
    assert (run / "latest").read_text().strip() == "step-000003"
    # The next automatic resume continues the new branch, not the abandoned step 4.
    caplog.clear()
    with caplog.at_level("INFO"):
        assert train(resolve(config(5))).step == 5
    assert "resuming from step-000003" in caplog.text
    # log_every 2 and each run's last step; step 4 of the abandoned branch is not among them twice
    assert [r["step"] for r in read_records(run / "metrics.jsonl", "train")] == [2, 3, 4, 5]


def test_all_checkpoints_damaged_is_refused(tmp_path: Path, corpus: Path) -> None:
    run = tmp_path / "run"
    train(resolve(tiny_config(run, corpus, "clm", "gpt", 2, checkpoint_every=1)))
    before = (run / "metrics.jsonl").read_text()
    for _, path in ckpt.steps(run):
        (path / "model.safetensors").write_bytes(b"damaged")
    code, out = _cli(["train", "--config", str(run / "config.toml"), "--budget", "3steps"])
    text = " ".join(out.split())
    assert code == 2, out
    assert f"every checkpoint in {run} is damaged (step-000001, step-000002)" in text, out
    assert "file model.safetensors has 7 bytes" in text and "choose another --out or remove" in text
    assert (run / "metrics.jsonl").read_text() == before  # nothing cleared


def test_bad_run_files_are_named(tmp_path: Path, corpus: Path) -> None:
    run = tmp_path / "run"
    config = tiny_config(run, corpus, "clm", "gpt", 2, checkpoint_every=2)
    train(resolve(config))
    (run / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=rf"{run / 'config.json'}: unreadable"):
        train(resolve({**config, "train": {**config["train"], "budget": "3steps"}}))
    (run / "config.json").unlink()  # an old run without it: the state is what is checked next
    step = run / "step-000002"
    state = json.loads((step / "trainer.json").read_text())
    del state["sampler"]
    (step / "trainer.json").write_text(json.dumps(state))
    manifest = json.loads((step / "manifest.json").read_text())
    manifest["files"]["trainer.json"] = {"sha256": ckpt.sha256_file(step / "trainer.json"),
                                         "bytes": (step / "trainer.json").stat().st_size}
    (step / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=rf"{step / 'trainer.json'}: missing sampler"):
        train(resolve({**config, "train": {**config["train"], "budget": "3steps"}}))


def test_bad_device_is_a_config_error(tmp_path: Path) -> None:
    code, out = _cli(["train", "--objective", "mlm", "--backbone", "bert", "--out", str(tmp_path / "r"),
                      "--set", "train.device=gpu", "--dry-run"])
    assert code == 2 and "train.device = 'gpu' is not a device; allowed values: auto, cpu, cuda, cuda:N" in out, out


def test_evaluation_uses_each_row_once(tmp_path: Path, corpus: Path) -> None:
    trainer = Trainer(resolve(tiny_config(tmp_path / "run", corpus, "clm", "gpt", 2, batch_size=4, eval_batches=5)))
    trainer.setup()
    part = trainer.parts.parts[0]
    assert len(part.valid) >= 3
    requested: list[int] = []
    source = part.valid

    class Few:  # a validation split of 3 rows, smaller than one batch
        def __len__(self) -> int:
            return 3

        def get(self, ids):  # noqa: ANN001, ANN202
            requested.extend(int(i) for i in ids)
            return source.get(ids)

    part.valid = Few()
    trainer.sinks = Sinks([], None)
    trainer.evaluate()
    assert requested == [0, 1, 2]
    requested.clear()
    Few.__len__ = lambda self: 10  # 4 + 4 + 2 rows, then the split is exhausted
    trainer.evaluate()
    assert requested == list(range(10))


@pytest.mark.slow
def test_non_finite_loss_on_one_rank_stops_every_rank(tmp_path: Path, corpus: Path) -> None:
    """Rank 1's loss is NaN at step 2: rank 1 names the batch, rank 0 stops at the same step saying why
    (instead of waiting in DDP's backward for the collective timeout)."""
    args = ["train", "--objective", "mlm", "--backbone", "bert", "--size", "tiny", "--data", str(corpus),
            "--budget", "4steps", "--seq-len", "32", "--batch-size", "2", "--vocab-size", "400",
            "--set", "model.hidden_size=32", "--set", "model.num_heads=2", "--set", "train.prefetch=false",
            "--set", "train.device=cpu", "--out", str(tmp_path / "run"), "--nproc", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ZOO_FAULT": "nan@step=2,nan@rank=1", "COLUMNS": "400"}
    proc = subprocess.run([sys.executable, "-m", "zoo", *args], env=env, capture_output=True, text=True, timeout=300)
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 2, out[-3000:]
    assert "non-finite loss nan at step 2, objective mlm" in out, out[-3000:]
    assert "non-finite loss at step 2 on rank 1 (its error is printed above); rank 0 stops too" in out, out[-3000:]
    assert ckpt.steps(tmp_path / "run") == []


def test_extending_a_finished_budget_is_said_recorded_and_resumes_bitwise(tmp_path: Path, corpus: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    """10 steps, then the same command with 20: the trapezoid schedule returns to the peak and cools down
    again over steps 17-20 (never a silent restart); resuming the extended run from step 15 gives the
    same step 20; a linear schedule that has finished is refused with its alternatives."""
    def config(steps: int, schedule: str = "trapezoid", out: str = "run") -> dict:
        c = tiny_config(tmp_path / out, corpus, "clm", "gpt", steps, log_every=1, eval_every=0, checkpoint_every=5)
        c["optim"] = {"lr": 1e-3, "warmup": 0.1, "schedule": schedule, "cooldown": 0.2}
        return c

    run = tmp_path / "run"
    train(resolve(config(10)))
    with caplog.at_level("INFO"):
        assert train(resolve(config(20))).step == 20
    assert "budget 10 steps -> 20 steps" in caplog.text and "back to the peak" in caplog.text
    lrs = [r["lr"] for r in read_records(run / "metrics.jsonl", "train")]
    assert lrs[10:16] == [1e-3] * 6 and lrs[16:] == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4], rel=1e-12)
    state = json.loads((ckpt.steps(run)[-1][1] / "trainer.json").read_text())
    assert state["schedule"]["extensions"] == [{"at": 10.0, "lr": 0.0, "budget": 20.0}]
    assert json.loads((run / "run.json").read_text())["schedule"] == state["schedule"]
    before = final_state(run)
    assert train(resolve(config(20)), resume_from="step-000015").step == 20
    after = final_state(run)
    for a, b in zip(before, after, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)

    train(resolve(config(10, "linear", "lin")))
    code, out = _cli(["train", "--config", str(tmp_path / "lin" / "config.toml"), "--budget", "20steps"])
    assert code == 2 and "finished its budget of 10 steps" in out and "--init" in out
    assert json.loads((tmp_path / "lin" / "config.json").read_text())["train"]["budget"] == "10steps"


@pytest.mark.parametrize("objective", ["span-lm", "prefix", "clm", "ul2"])
def test_t5_trains_and_resumes_bitwise(tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch,
                                       objective: str) -> None:
    """Encoder-decoder runs end to end: T5 span corruption (fixed widths), the prefix LM (packed
    pieces, widths per batch), clm (an empty encoder input) and UL2 (a seeded mixture of R/S/X
    denoisers, mode token leading the encoder input) on t5 resume exactly."""
    full = tmp_path / "full"
    result = train(resolve(tiny_config(full, corpus, objective, "t5", 8, checkpoint_every=4)))
    part = tmp_path / "part"
    interrupted(monkeypatch, tiny_config(part, corpus, objective, "t5", 8, checkpoint_every=4), at_step=6)
    train(resolve(tiny_config(part, corpus, objective, "t5", 8, checkpoint_every=4)))
    assert_same_run(full, part)
    assert result.step == 8
