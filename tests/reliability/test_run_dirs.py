"""Pointing ``zoo train`` at the wrong place or asking the impossible: refused in one line before any
data or model work, and nothing already there is touched."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from .conftest import assert_user_error, bench_sst2, edited_copy, invoke, train_args, train_in_process


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, corpus: Path, cache_dir: Path) -> Path:
    """A Hugging Face directory written by ``zoo export`` (it has config.json and tokenizer.json)."""
    base = tmp_path_factory.mktemp("exported")
    run = train_in_process(base / "run", corpus, cache_dir, "mlm", "bert", 1, 1)
    code, out = invoke(["export", str(run), str(base / "hf")])
    assert code == 0, out
    return base / "hf"


def test_out_into_an_exported_transformers_directory_is_refused(exported: Path, corpus: Path) -> None:
    before = _snapshot(exported)
    code, out = invoke(train_args(exported, corpus))
    assert_user_error(code, out, f"--out {exported} is not a zoo run directory: it holds a Hugging Face model (bert",
                      "choose a new or empty directory")
    assert _snapshot(exported) == before and not (exported / ".lock").exists()  # untouched


def test_out_into_a_non_empty_folder_or_a_file_is_refused(tmp_path: Path, corpus: Path) -> None:
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    (folder / "tokenizer.json").write_text("{}")
    code, out = invoke(train_args(folder, corpus))
    assert_user_error(code, out, f"--out {folder} is not empty and not a zoo run directory (it holds notes.txt, tokenizer.json)")
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "tokenizer.json"]
    file = tmp_path / "run.txt"
    file.write_text("x")
    code, out = invoke(train_args(file, corpus))
    assert_user_error(code, out, f"--out {file} is a file, not a directory")
    assert file.read_text() == "x"


def test_a_run_of_another_configuration_is_refused_with_old_and_new_values(tmp_path: Path, corpus: Path,
                                                                            cache_dir: Path) -> None:
    run = train_in_process(tmp_path / "run", corpus, cache_dir, "mlm", "bert", 2, 2)
    before = _snapshot(run)
    code, out = invoke(train_args(run, corpus, "mlm", "bert", 2, 2, "--seed", "1", "--set", "optim.lr=2e-3"))
    assert_user_error(code, out, f"{run} holds a run with a different configuration (optim.lr 0.001 -> 0.002, "
                                 "train.seed 0 -> 1)", "choose another --out")
    assert _snapshot(run) == before


def test_a_failed_new_run_leaves_no_directory(tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "runs" / "new"
    code, text = invoke(train_args(out, tmp_path / "nowhere.txt"))
    assert_user_error(code, text, "corpus path not found")
    assert not out.exists()
    # An empty directory made beforehand stays empty (its lock file aside), so the corrected command
    # is not refused as "another configuration".
    out.mkdir(parents=True)
    code, text = invoke(train_args(out, tmp_path / "nowhere.txt", "mlm", "bert", 1, 1))
    assert_user_error(code, text, "corpus path not found")
    assert [p.name for p in out.iterdir()] == [".lock"]
    code, text = invoke(train_args(out, corpus, "mlm", "bert", 1, 1))
    assert code == 0, text


def test_tokenizer_files_respect_the_umask(tmp_path: Path, corpus: Path, cache_dir: Path) -> None:
    old = os.umask(0o022)
    try:
        run = train_in_process(tmp_path / "run", corpus, cache_dir, "mlm", "bert", 1, 1)
    finally:
        os.umask(old)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o644, name


@pytest.mark.parametrize(("args", "needles"), [
    (["--seq-len", "1"], ["train.seq_len = 1 (--seq-len) is too short for mlm on bert: its rows need at least 3"]),
    (["--seq-len", "4", "--objective", "mlm+nsp"],
     ["train.seq_len = 4 (--seq-len) is too short for nsp on bert: its rows need at least 5"]),
    (["--seq-len", "100000"], ["this run needs at least ~", "GB per process", "attention scores",
                               "train.seq_len = 100000", "GB of RAM here"]),
    (["--budget", "1e400flops"], ["budget '1e400flops' is not a finite number"]),
    (["--nproc", "0"], ["--nproc must be at least 1", "got 0"]),
    (["--nproc", "-2"], ["--nproc must be at least 1", "got -2"]),
    (["--batch-size", "-1"], ["batch_size must be >= 1, got -1"]),
    (["--checkpoint-every", "-3"], ["checkpoint_every must be >= 0, got -3"]),
], ids=["seq-len-1", "seq-len-4-pairs", "seq-len-100000", "infinite-budget", "nproc-0", "nproc-negative",
        "negative-batch", "negative-checkpoint-every"])
def test_impossible_settings_are_refused_before_any_data_work(tmp_path: Path, args: list[str],
                                                              needles: list[str]) -> None:
    out = tmp_path / "run"
    base = train_args(out, tmp_path / "no-corpus-yet.txt")  # reading it would fail: validation comes first
    if "--objective" in args:
        i = base.index("--objective")
        base = base[:i] + base[i + 2:]
    code, text = invoke([*base, *args])
    assert_user_error(code, text, *needles)
    assert not out.exists()


def test_memory_estimate_counts_the_real_model() -> None:
    import torch

    from zoo.train.build import build_backbone
    from zoo.train.resolve import resolve
    from zoo.train.validate import estimate_memory, machine_memory

    cfg = resolve({"size": "mini", "train": {"seq_len": 512, "batch_size": 32, "device": "cpu"}})
    est = estimate_memory(cfg, torch.device("cpu"))  # built on the meta device: nothing allocated
    real = build_backbone(cfg, cfg.tokenizer.vocab_size)
    assert est.parameters == sum(p.numel() for p in real.parameters())
    assert est.state == 16 * est.parameters  # fp32 weights, gradients, Adam moments
    spec = real.spec
    assert est.scores == 4.0 * 32 * spec.num_heads * 512 * 512 * spec.num_layers  # materialised on CPU
    assert estimate_memory(cfg, torch.device("cuda")).scores == 0  # fused kernels do not hold them
    have, what = machine_memory(torch.device("cpu"))
    assert have > 1e8 and what == "RAM"
    json.dumps(est.total)


def test_bench_and_export_refuse_a_run_naming_an_unknown_objective(exported: Path, tmp_path: Path) -> None:
    run = edited_copy(exported.parent / "run", tmp_path / "run", objective="mlm+nsq")
    code, out = bench_sst2(run, tmp_path)
    assert_user_error(code, out, f"{run / 'config.json'}: unknown objective 'nsq'")
    assert not (run / "bench.json").exists()
    code, out = invoke(["export", str(run), str(tmp_path / "hf")])
    assert_user_error(code, out, "unknown objective 'nsq'")


def test_bench_names_the_shapes_when_config_json_no_longer_matches_the_weights(exported: Path, tmp_path: Path) -> None:
    """Before, a traceback from ``load_state_dict``; now one line, as ``zoo train`` gives on resuming."""
    src = exported.parent / "run"
    saved = json.loads((src / "config.json").read_text())
    run = edited_copy(src, tmp_path / "run", model={**saved["model"], "intermediate_size": 48})
    code, out = bench_sst2(run, tmp_path)
    assert_user_error(code, out, f"the weights do not fit the model that {run / 'config.json'} describes:",
                      "backbone.layers.0.ffn_in.weight (64, 32) in the checkpoint, (48, 32) in the model",
                      "that file no longer matches the run's checkpoints")
    assert not (run / "bench.json").exists()


def test_a_dangling_out_symlink_is_named(tmp_path: Path, corpus: Path) -> None:
    """Before: "File exists" from creating the directory."""
    out = tmp_path / "run"
    out.symlink_to(tmp_path / "gone")
    code, text = invoke(train_args(out, corpus))
    assert_user_error(code, text, f"--out {out} is a symbolic link to {tmp_path / 'gone'}, which does not exist")
    assert out.is_symlink() and not (tmp_path / "gone").exists()


@pytest.mark.parametrize("mode", ["study", "plan-only", "existing-runs", "report-only"])
def test_a_dangling_compare_out_symlink_is_named(tmp_path: Path, mode: str) -> None:
    """Before: ``zoo compare`` resolved the link and created its missing target (or, elsewhere, "File
    exists"). Now it is refused as ``zoo train`` refuses it, before anything is built or trained. (A
    misspelt task makes the pre-fix code fail early too, instead of training.)"""
    out = tmp_path / "study"
    out.symlink_to(tmp_path / "gone")
    (tmp_path / "somerun").mkdir()
    train = ["--objectives", "mlm", "--backbones", "bert", "--tasks", "no-such-task"]
    args = {"study": [*train, "--budget", "1steps"], "plan-only": [*train, "--hours", "1", "--plan-only"],
            "existing-runs": [str(tmp_path / "somerun"), "--tasks", "no-such-task"], "report-only": ["--report-only"]}
    code, text = invoke(["compare", *args[mode], "--out", str(out)])
    assert_user_error(code, text, f"--out {out} is a symbolic link to {tmp_path / 'gone'}, which does not exist; "
                                  "create that directory, or remove the link or choose another --out")
    assert out.is_symlink() and not (tmp_path / "gone").exists()
