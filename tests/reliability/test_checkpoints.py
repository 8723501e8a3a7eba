"""Damaged, foreign and hostile checkpoints are never trusted.

A damaged newest checkpoint is skipped (named, with what the manifest expected and what was
found) and training resumes from the previous intact one; the same checkpoint named explicitly is
an error; ``zoo bench`` never reads it. A ``.safetensors`` file that is really a pickle, or whose
header claims to be huge, is refused by the safetensors parser, never unpickled. A run whose
tokenizer was swapped is refused before step 1 by ``zoo train`` and ``zoo bench``, naming both.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from zoo.errors import CheckpointError
from zoo.train import checkpoint as ckpt

from .conftest import (
    assert_same_run,
    assert_user_error,
    copy_run,
    deterministic_records,
    invoke,
    train_args,
    train_in_process,
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, corpus: Path, cache_dir: Path) -> Iterator[Path]:
    """A finished tiny mlm run with checkpoints at steps 3, 6 and 7."""
    out = tmp_path_factory.mktemp("ckpt") / "reference"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_in_process(out, corpus, cache_dir)
        assert [s for s, _ in ckpt.steps(out)] == [3, 6, 7]
        yield out
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def run(reference: Path, tmp_path: Path) -> Path:
    """A private copy of the reference run, to damage."""
    return copy_run(reference, tmp_path / "run")


@pytest.fixture
def glue(tmp_path: Path) -> Path:
    """A tiny SST-2 in the official layout, so that ``zoo bench`` would run if it trusted the model."""
    root = tmp_path / "glue"
    (root / "SST-2").mkdir(parents=True)
    rows = ["sentence\tlabel"] + [f"{w} film\t{i % 2}" for i, w in enumerate(["a fine", "a dull", "lovely",
                                                                             "bleak", "warm", "cold"] * 2)]
    for split in ("train", "dev"):
        (root / "SST-2" / f"{split}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def bench_args(run: Path, glue: Path) -> list[str]:
    return ["bench", str(run), "--tasks", "sst2", "--data-dir", str(glue), "--max-train-examples", "8",
            "--max-eval-examples", "8", "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--no-cache"]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest(step_dir: Path) -> dict:
    return json.loads((step_dir / "manifest.json").read_text())


# --- damage, and the exact words the manifest check must find -------------------------------------------

def truncate(step: Path) -> list[str]:
    path = step / "model.safetensors"
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[: size // 2])
    return ["file model.safetensors has", f"{size // 2} bytes, manifest expects {size} (truncated"]


def flip_byte(step: Path) -> list[str]:
    path = step / "optimizer.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    expected = manifest(step)["files"]["optimizer.safetensors"]["sha256"]
    return [f"file optimizer.safetensors sha256 {sha(path)} does not match manifest {expected}"]


def delete_rng(step: Path) -> list[str]:
    (step / "rng.safetensors").unlink()
    return ["file rng.safetensors is missing"]


def edit_trainer_state(step: Path) -> list[str]:
    path = step / "trainer.json"
    text = path.read_text()
    assert '"step": 7,' in text
    path.write_text(text.replace('"step": 7,', '"step": 8,', 1))  # same size, other content
    return ["file trainer.json sha256", "does not match manifest"]


def delete_manifest(step: Path) -> list[str]:
    (step / "manifest.json").unlink()
    return ["manifest.json is missing (incomplete or not a checkpoint)"]


def garble_manifest(step: Path) -> list[str]:
    (step / "manifest.json").write_text('{"format": 1, "files": {')
    return ["manifest.json is unreadable"]


def future_format(step: Path) -> list[str]:
    data = manifest(step)
    data["format"] = 99
    (step / "manifest.json").write_text(json.dumps(data))
    return ["format 99, this version reads format 1"]


DAMAGE: dict[str, Callable[[Path], list[str]]] = {
    "truncated": truncate, "flipped-byte": flip_byte, "missing-file": delete_rng,
    "edited-trainer-state": edit_trainer_state, "missing-manifest": delete_manifest,
    "garbled-manifest": garble_manifest, "future-format": future_format,
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_checkpoint_is_named_skipped_and_resume_falls_back(run: Path, reference: Path, corpus: Path,
                                                                    single_thread: None, damage: str) -> None:
    step7 = run / "step-000007"
    needles = DAMAGE[damage](step7)
    with pytest.raises(CheckpointError) as err:
        ckpt.verify(step7)
    message = str(err.value)
    assert str(step7) in message and all(n in message for n in needles), message

    # The same command resumes from the previous intact step and ends where the reference ended.
    code, text = invoke(train_args(run, corpus))
    assert code == 0, text
    flat = " ".join(text.split())
    assert "skipping damaged checkpoint" in flat and needles[0] in flat, text
    assert "resuming from step-000006" in flat
    assert_same_run(reference, run)
    ckpt.verify(step7)  # rewritten, intact


@pytest.mark.parametrize("damage", ["truncated", "flipped-byte", "missing-file"])
def test_explicitly_named_damaged_checkpoint_is_an_error(run: Path, corpus: Path, damage: str) -> None:
    step7 = run / "step-000007"
    needles = DAMAGE[damage](step7)
    before = deterministic_records(run)
    code, out = invoke(train_args(run, corpus, "mlm", "bert", 9, 3, "--resume-from", "step-000007"))
    assert_user_error(code, out, str(step7), *needles)
    assert deterministic_records(run) == before  # nothing trained


def test_resume_from_an_intact_checkpoint_and_from_nothing(run: Path, corpus: Path, single_thread: None,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = invoke(train_args(run, corpus, "mlm", "bert", 9, 3, "--resume-from", "step-000006"))
    assert code == 0, out
    assert "resuming from step-000006" in " ".join(out.split())
    code, out = invoke(train_args(run, corpus, "mlm", "bert", 9, 3, "--resume-from", "step-000042"))
    assert_user_error(code, out, "--resume-from step-000042: no such checkpoint directory",
                      f"checkpoints in {run}: step-000003, step-000006, step-000009")
    # A path relative to the working directory is named as given, never joined to the run directory.
    monkeypatch.chdir(run.parent)
    code, out = invoke(train_args(Path(run.name), corpus, "mlm", "bert", 9, 3, "--resume-from",
                                  f"{run.name}/step-000042"))
    text = assert_user_error(code, out, f"--resume-from {run.name}/step-000042: no such checkpoint directory")
    assert f"{run.name}/{run.name}" not in text.split("(neither")[0]


def test_checkpoint_of_another_model_is_refused(run: Path, corpus: Path, tmp_path: Path) -> None:
    """--resume-from a checkpoint whose tensors do not fit: an error naming it, not a traceback."""
    other = tmp_path / "wider"
    code, out = invoke(train_args(other, corpus, "mlm", "bert", 7, 3, "--set", "model.hidden_size=64",
                                  "--resume-from", str(run / "step-000003")))
    assert_user_error(code, out, f"checkpoint {run / 'step-000003'} does not fit this model", "size mismatch")


# --- hostile tensor files: only the safetensors parser ever sees them --------------------------------------

@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to unpickle fails the test loudly."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("something tried to unpickle a checkpoint file")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(torch, "load", forbidden)


def forge(step: Path, name: str, payload: bytes) -> Path:
    """Replace ``name`` and fix up the manifest, so that only parsing the file can catch it."""
    path = step / name
    path.write_bytes(payload)
    data = manifest(step)
    data["files"][name] = {"sha256": sha(path), "bytes": len(payload)}
    (step / "manifest.json").write_text(json.dumps(data, indent=1, sort_keys=True))
    ckpt.verify(step)  # the manifest is satisfied
    return path


HOSTILE = {
    "pickle": pickle.dumps({"backbone.tok_emb.weight": [0.0] * 4, "note": "harmless"}),
    "huge-header": struct.pack("<Q", 1 << 62) + b'{"__metadata__": {}}',
}


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_safetensors_are_refused_not_unpickled(run: Path, corpus: Path, glue: Path, no_unpickling: None,
                                                       kind: str) -> None:
    path = forge(run / "step-000007", "model.safetensors", HOSTILE[kind])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        ckpt.load_tensors(path)
    code, out = invoke(train_args(run, corpus))  # resume picks the manifest-valid step 7
    assert_user_error(code, out, f"{path}: not a readable safetensors file", "header too large")
    code, out = invoke(bench_args(run, glue))
    assert_user_error(code, out, f"{path}: not a readable safetensors file")
    assert not (run / "bench-cache").exists()


# --- tokenizer swapped under a run --------------------------------------------------------------------------

def other_tokenizer(run: Path, same_size: bool) -> tuple[str, str]:
    """Replace the run's tokenizer.json; returns (old hash, new hash) as the run computes them."""
    from tokenizers import Tokenizer

    from zoo.data import load_tokenizer, tokenizer_hash, train_tokenizer

    path = run / "tokenizer.json"
    old = load_tokenizer(path)
    if same_size:  # the same vocabulary size, one entry renamed: only the hash can tell
        data = json.loads(old.to_str())
        vocab = data["model"]["vocab"]
        victim = next(t for t in vocab if t.isalpha() and len(t) > 3)
        vocab[victim[::-1] + "zz"] = vocab.pop(victim)
        new = Tokenizer.from_str(json.dumps(data))
    else:
        new = train_tokenizer(["a small other corpus with other words"] * 20, "wordpiece", vocab_size=120,
                              num_sentinels=20)
    new.save(str(path))
    return tokenizer_hash(old), tokenizer_hash(load_tokenizer(path))


@pytest.mark.parametrize("same_size", [False, True], ids=["other-vocab", "same-size-other-hash"])
def test_swapped_tokenizer_is_refused_before_step_one(run: Path, corpus: Path, glue: Path, same_size: bool) -> None:
    old, new = other_tokenizer(run, same_size)
    assert old != new
    before = deterministic_records(run)
    files = {p: sha(p) for p in run.glob("step-*/*")}

    code, out = invoke(train_args(run, corpus, "mlm", "bert", 9, 3))  # would train steps 8 and 9
    assert_user_error(code, out, old, new, str(run / "tokenizer.json"), "tokenizer_hash")
    assert deterministic_records(run) == before
    assert {p: sha(p) for p in run.glob("step-*/*")} == files

    code, out = invoke(bench_args(run, glue))
    assert_user_error(code, out, old[:12], new[:12], str(run / "tokenizer.json"))
    assert not (run / "bench-cache").exists()


# --- zoo bench and damaged checkpoints -------------------------------------------------------------------

def test_bench_runs_on_the_intact_run(reference: Path, tmp_path: Path, glue: Path) -> None:
    """The positive control for the refusals: the same bench command works on an intact copy."""
    run = copy_run(reference, tmp_path / "intact")
    code, out = invoke(bench_args(run, glue))
    assert code == 0, out
    saved = json.loads((run / "bench.json").read_text())["suites"]["glue"]["models"][0]
    assert saved["checkpoint_id"] == manifest(run / "step-000007")["files"]["model.safetensors"]["sha256"]


def test_bench_never_reads_a_damaged_checkpoint(run: Path, glue: Path, caplog: pytest.LogCaptureFixture) -> None:
    from zoo.benchmarks.source import open_source

    needles = flip_byte(run / "step-000007")
    code, out = invoke(bench_args(run, glue))  # never silently older weights: refused, naming the intact step
    assert_user_error(code, out, "newest checkpoint", needles[0], "--step 6")
    source = open_source(run, step=6)  # asked for explicitly: the intact step 6
    assert source.checkpoint_id == manifest(run / "step-000006")["files"]["model.safetensors"]["sha256"]

    for step in ("step-000003", "step-000006"):
        truncate(run / step)
    code, out = invoke(bench_args(run, glue))
    assert_user_error(code, out, "has no complete, intact checkpoint", needles[0])
    assert not (run / "bench-cache").exists()
