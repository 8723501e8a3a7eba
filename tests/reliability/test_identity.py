"""A run, a study and an export are recognised by their identity marker, never by a file name; the
lock of a directory is an OS lock that no deleted or half-written file can hand to a second writer.

Every foreign directory below is refused in one line naming what it holds, and left byte for byte
as it was."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.errors import CheckpointError
from zoo.train import checkpoint as ckpt
from zoo.train.lock import RunLock
from zoo.train.metrics import read_records

from .conftest import (
    REPO,
    assert_user_error,
    copy_run,
    flat,
    invoke,
    tiny_glue,
    train_args,
    train_in_process,
)

# A constant learning rate: the budget of a finished run can be extended (a decayed schedule cannot).
CONSTANT = ("--set", "optim.schedule=constant")


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, corpus: Path, cache_dir: Path) -> Path:
    """A finished tiny run (2 steps, a checkpoint at each)."""
    return train_in_process(tmp_path_factory.mktemp("identity") / "run", corpus, cache_dir, "mlm", "bert", 2, 1,
                            *CONSTANT)


def _compare_args(runs: list[Path], out: Path, glue: Path) -> list[str]:
    return ["compare", *map(str, runs), "--out", str(out), "--tasks", "sst2", "--data-dir", str(glue),
            "--bench-set", "epochs=1", "--bench-set", "max_length=16", "--no-baseline", "--device", "cpu"]


# --- foreign directories ---------------------------------------------------------------------------------------

def _foreign(tmp: Path, files: dict[str, str]) -> Path:
    folder = tmp / "mine"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize(("files", "named"), [
    ({"run.json": '{"experiment": "mine"}', "results.csv": "a,b\n1,2\n"}, "(it holds results.csv, run.json)"),
    ({"latest": "v2\n", "notes.md": "# notes\n"}, "(it holds latest, notes.md)"),
], ids=["run.json", "latest"])
def test_a_directory_named_like_a_run_is_not_trained_into(tmp_path: Path, corpus: Path, files: dict[str, str],
                                                          named: str) -> None:
    folder = _foreign(tmp_path, files)
    before = _snapshot(folder)
    code, out = invoke(train_args(folder, corpus, "mlm", "bert", 1, 1))
    assert_user_error(code, out, f"--out {folder} is not empty and not a zoo run directory {named}")
    assert _snapshot(folder) == before and sorted(p.name for p in folder.iterdir()) == sorted(files)


def test_a_saved_transformers_tokenizer_is_not_adopted(tmp_path: Path, corpus: Path) -> None:
    from zoo.data import save_tokenizer
    from zoo.data.tokenizer import train_tokenizer

    folder = tmp_path / "tok"
    save_tokenizer(train_tokenizer(["some words here and there"] * 50, "wordpiece", vocab_size=80), folder)
    before = _snapshot(folder)
    code, out = invoke(train_args(folder, corpus, "mlm", "bert", 1, 1))
    assert_user_error(code, out, f"--out {folder} is not empty and not a zoo run directory (it holds "
                                 "special_tokens_map.json, tokenizer.json, tokenizer_config.json, vocab.txt)")
    assert _snapshot(folder) == before


def test_compare_out_refuses_hand_written_results(tmp_path: Path, finished: Path) -> None:
    out = _foreign(tmp_path, {"report.md": "# my report\n", "results.json": '{"accuracy": 0.9}'})
    before = _snapshot(out)
    code, text = invoke(_compare_args([finished], out, tiny_glue(tmp_path)))
    assert_user_error(code, text, f"--out {out} is not a zoo study directory (it holds report.md, results.json)")
    assert _snapshot(out) == before


def test_export_force_into_a_run_or_other_files_is_refused(tmp_path: Path, finished: Path, corpus: Path,
                                                           cache_dir: Path) -> None:
    other = train_in_process(tmp_path / "other", corpus, cache_dir, "clm", "gpt", 1, 1)
    before = _snapshot(other)
    code, text = invoke(["export", str(finished), str(other), "--force"])
    assert_user_error(code, text, f"{other} is not empty and not a zoo export (it holds a zoo run)",
                      "--force replaces only an earlier export")
    assert _snapshot(other) == before
    folder = _foreign(tmp_path, {"config.json": "{}", "mine.txt": "x"})
    code, text = invoke(["export", str(finished), str(folder), "--force"])
    assert_user_error(code, text, f"{folder} is not empty and not a zoo export (it holds a config.json that is "
                                  "not a zoo run configuration)")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "mine.txt"]


def test_export_force_replaces_an_earlier_export_as_a_whole(tmp_path: Path, finished: Path) -> None:
    hf = tmp_path / "hf"
    code, text = invoke(["export", str(finished), str(hf), "--step", "1"])
    assert code == 0, text
    (hf / "bench.json").write_text('{"suites": {"glue": "scores of step 1"}}')
    (hf / "bench.md").write_text("step 1 scores\n")
    (hf / "bench-cache").mkdir()
    (hf / "bench-cache" / "sst2-seed0.json").write_text("{}")
    code, text = invoke(["export", str(finished), str(hf)])
    assert_user_error(code, text, f"{hf} is not empty: it holds a Hugging Face model (bert) exported by zoo export "
                                  f"from {finished} step 1", "pass --force to replace that export as a whole")
    code, text = invoke(["export", str(finished), str(hf), "--force"])
    assert code == 0, text
    assert f"replaced a Hugging Face model (bert) exported by zoo export from {finished} step 1 and its benchmark " \
           f"results (bench-cache, bench.json, bench.md) in {hf}" in flat(text)
    assert not {"bench.json", "bench.md", "bench-cache"} & {p.name for p in hf.iterdir()}
    assert json.loads((hf / "zoo_export.json").read_text())["step"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary directory left


# --- settings of a run whose config.json was lost ----------------------------------------------------------------

def test_a_lost_config_json_is_recovered_from_the_checkpoint_not_replaced(tmp_path: Path, finished: Path,
                                                                         corpus: Path) -> None:
    run = copy_run(finished, tmp_path / "run")
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").unlink()
    code, out = invoke(train_args(run, corpus, "mlm", "bert", 3, 1, *CONSTANT, "--set", "optim.lr=5e-3"))
    assert_user_error(code, out, f"{run} holds a run with a different configuration (optim.lr 0.001 -> 0.005)")
    assert not (run / "config.json").exists() and [s for s, _ in ckpt.steps(run)] == [1, 2]
    code, out = invoke(train_args(run, corpus, "mlm", "bert", 3, 1, *CONSTANT))  # the same settings resume
    assert code == 0, out
    recovered = json.loads((run / "config.json").read_text())
    assert recovered["optim"] == saved["optim"] and [s for s, _ in ckpt.steps(run)] == [1, 2, 3]


def test_a_checkpoint_without_recorded_settings_is_refused_when_config_json_is_lost(tmp_path: Path) -> None:
    from zoo.train.resolve import resolve
    from zoo.train.state import check_same_config

    step = tmp_path / "run" / "step-000001"
    step.mkdir(parents=True)
    (step / "trainer.json").write_text('{"step": 1}')  # as written by earlier versions
    cfg = resolve({"objective": "mlm", "backbone": "bert", "out": str(tmp_path / "run")})
    with pytest.raises(CheckpointError, match=r"config.json is missing and checkpoint .*step-000001 does not "
                                              r"record the run's settings"):
        check_same_config(cfg, step)


# --- the lock ----------------------------------------------------------------------------------------------------

def test_deleting_the_lock_file_does_not_admit_a_second_training(tmp_path: Path, finished: Path,
                                                                 corpus: Path) -> None:
    run = copy_run(finished, tmp_path / "run")
    records = read_records(run / "metrics.jsonl")
    lock = RunLock(run).acquire()
    lock.record()
    try:
        (run / ".lock").unlink()
        code, out = invoke(train_args(run, corpus, "mlm", "bert", 4, 1, *CONSTANT))
        assert_user_error(code, out, "another training holds this directory", f"{run} is being trained by another "
                                     "process")
    finally:
        lock.release()
    assert read_records(run / "metrics.jsonl") == records and [s for s, _ in ckpt.steps(run)] == [1, 2]


def test_a_start_that_meets_a_half_written_directory_is_told_it_is_held(tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from zoo.train.lock import RunLock; "
        "RunLock(sys.argv[1]).acquire().record(); Path(sys.argv[1], 'config.json').write_text('{\"objec'); "
        "print('locked', flush=True); time.sleep(600)"), str(out)], stdout=subprocess.PIPE, cwd=REPO, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, text = invoke(train_args(out, corpus, "mlm", "bert", 1, 1))
        text = assert_user_error(code, text, "another training holds this directory", f"pid {holder.pid} on")
        assert "not a zoo run directory" not in text
    finally:
        holder.kill()
        holder.wait()


def test_a_second_compare_into_one_study_is_refused(tmp_path: Path, finished: Path) -> None:
    from zoo.train.lock import StudyLock

    out = tmp_path / "study"
    out.mkdir()
    with StudyLock(out):
        code, text = invoke(_compare_args([finished], out, tiny_glue(tmp_path)))
        assert_user_error(code, text, "another zoo compare holds this study", f"{out} is being written by another "
                                      "process (pid")
    assert sorted(p.name for p in out.iterdir()) == [".lock"]


def test_report_only_into_a_study_held_by_another_compare_is_refused(tmp_path: Path) -> None:
    """``--report-only`` rewrites report.md, results.json and the figures: it takes the study's lock as
    ``zoo compare`` does, so that it never writes beside a running study."""
    from zoo.train.lock import StudyLock

    out = tmp_path / "study"
    shutil.copytree(REPO / "docs" / "studies" / "six-objectives-4e12", out)
    before = _snapshot(out)
    with StudyLock(out):
        code, text = invoke(["compare", "--out", str(out), "--report-only"])
        assert_user_error(code, text, "another zoo compare holds this study", f"{out} is being written by another "
                                      "process (pid")
    assert {k: v for k, v in _snapshot(out).items() if k != ".lock"} == before  # nothing rewritten


# --- directories of earlier versions --------------------------------------------------------------------------------

def test_a_run_of_an_earlier_version_is_recognised_and_marked(tmp_path: Path, finished: Path, corpus: Path) -> None:
    from zoo import markers

    run = copy_run(finished, tmp_path / "run")
    (run / markers.RUN_MARKER).unlink()
    (run / "bench.json").write_text("{}")  # written by zoo bench into the run
    assert markers.identify(run).kind == "legacy-run"
    code, out = invoke(train_args(run, corpus, "mlm", "bert", 3, 1, *CONSTANT))
    assert code == 0, out
    assert markers.identify(run).kind == "run" and [s for s, _ in ckpt.steps(run)] == [1, 2, 3]
    (run / markers.RUN_MARKER).unlink()
    (run / "results.csv").write_text("mine")  # not a file a run writes: no longer recognisable
    found = markers.identify(run)
    assert found.kind == "other" and found.what.endswith("beside files a run does not write (results.csv)")


def test_the_committed_study_is_recognised_as_a_study(tmp_path: Path) -> None:
    from zoo import markers

    study = tmp_path / "cpu-hour"
    shutil.copytree(REPO / "docs" / "studies" / "six-objectives-4e12", study)
    assert markers.identify(study).kind == "legacy-study"
    from zoo.compare.study import claim_study

    with claim_study(study):
        assert markers.read_marker(study, "study")["format"] == markers.MARKER_FORMAT
    assert markers.identify(study).kind == "study"


def test_a_marker_of_a_newer_format_is_refused(tmp_path: Path, corpus: Path) -> None:
    from zoo import markers

    run = tmp_path / "run"
    run.mkdir()
    (run / markers.RUN_MARKER).write_text('{"kind": "run", "format": 99}')
    code, out = invoke(train_args(run, corpus, "mlm", "bert", 1, 1))
    assert_user_error(code, out, f"{run / markers.RUN_MARKER}: a run of format 99, written by a newer objective-zoo")
