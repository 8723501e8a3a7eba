"""Every file the zoo writes is the old version or the new one, never a third, whatever fails.

The harness runs real tiny actions (building the tokenizer and token-store caches and a run's
tokenizer, a new training, a resume that drops records of an abandoned attempt, an export
replacing an earlier one, a comparison that fine-tunes, merges into the run's ``bench.json`` and
rewrites its report and figures, a BLiMP benchmark writing its zero-shot scoring caches and
``bench.json``, a ``--resume-from`` an older step that moves the newer one aside with a copy of the
metrics and repoints ``latest``, a cooldown branch copying its trunk's history, a training
``--init`` from a zoo run) once to list every point where a file is created,
written, fsync'ed or renamed into place (``zoo.fileio``'s OS calls and the checkpoint's safetensors
writes), then once per point with a failure injected there: a full disk or a file-size limit (after
half the bytes are written) or an error raised between write and rename. After each, every file of
the action's directories must be its old bytes, its new bytes, or a complete file of its kind
(readable JSON, whole log lines without a record twice, checkpoints that verify); nothing
temporary is left, the run can still be opened, and a full disk or a size limit never ends in a
traceback.
"""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import shutil
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from zoo import fileio
from zoo.runs import open_run
from zoo.train import checkpoint as ckpt
from zoo.train.metrics import TIMING_FIELDS, read_records

from .conftest import flat, invoke, tiny_glue, train_args, train_in_process

# A constant learning rate: the budget of a finished run can be extended (a decayed schedule cannot).
CONSTANT = ("--set", "optim.schedule=constant")
# A trunk whose 2-step branch starts its cooldown after step 1 (zoo.train.branch).
TRAPEZOID = ("--set", "optim.schedule=trapezoid", "--set", "optim.warmup=0", "--set", "optim.cooldown=0.25",
             "--set", "train.branch_budgets=[\"2steps\"]")
_TEMP = re.compile(r"(^\..+\.tmp-\d+-[0-9a-f]{8}$|^\.tmp-|\.export-|\.old-\d+-)")


# --- injection -------------------------------------------------------------------------------------------------

def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"fd{fd}"


def _normal(path: str, root: Path) -> str:
    """A write point's file, with what varies between attempts removed (pids, random names, step numbers)."""
    rel = os.path.relpath(path, root) if path.startswith(str(root)) else os.path.basename(path)
    rel = re.sub(r"\.([^/]+)\.tmp-\d+-[0-9a-f]{8}", r"\1", rel)
    rel = re.sub(r"[0-9a-f]{8,}", "H", rel)
    rel = re.sub(r"[^/]+\.png$", "FIGURE.png", rel)
    rel = re.sub(r"\.tmp-step-\d+-\d+", "step-N", rel)
    rel = re.sub(r"\.[^/]*\.(export|old)-[^/]+", "DIR", rel)
    return re.sub(r"\d+", "N", rel)


@dataclass
class Point:
    op: str
    where: str


class Injector:
    """Counts write points; with ``fail_at`` set, fails the point of that index with ``kind``."""

    KINDS = ("ENOSPC", "EFBIG", "raise")

    def __init__(self, root: Path, fail_at: int | None = None, kind: str = "ENOSPC") -> None:
        self.root, self.fail_at, self.kind = root, fail_at, kind
        self.points: list[Point] = []
        self.fired = False

    def _point(self, op: str, where: str) -> bool:
        self.points.append(Point(op, _normal(where, self.root)))
        if self.fail_at is not None and len(self.points) - 1 == self.fail_at:
            self.fired = True
            return True
        return False

    def error(self) -> Exception:
        if self.kind == "ENOSPC":
            return OSError(errno.ENOSPC, "No space left on device")
        if self.kind == "EFBIG":
            return OSError(errno.EFBIG, "File too large")
        return RuntimeError("injected failure between write and rename")

    @contextmanager
    def installed(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Injector]:
        real_open, real_write, real_fsync, real_replace = os.open, os.write, os.fsync, os.replace
        real_save = ckpt.save_file

        def open_(path, flags, mode=0o777, *a, **k):  # noqa: ANN001, ANN202
            if flags & os.O_CREAT and self._point("create", str(path)):
                raise self.error()
            return real_open(path, flags, mode, *a, **k)

        def write(fd, data):  # noqa: ANN001, ANN202
            if self._point("write", _fd_path(fd)):
                if self.kind != "raise" and len(data) > 1:
                    real_write(fd, bytes(data[: len(data) // 2]))  # a short write, then the error
                raise self.error()
            return real_write(fd, data)

        def fsync(fd):  # noqa: ANN001, ANN202
            if self._point("fsync", _fd_path(fd)):
                raise self.error()
            return real_fsync(fd)

        def replace(src, dst):  # noqa: ANN001, ANN202
            if self._point("rename", str(dst)):
                raise self.error()
            return real_replace(src, dst)

        def save_file(tensors, filename, metadata=None):  # noqa: ANN001, ANN202
            if self._point("write", str(filename)):
                Path(filename).write_bytes(b"\0" * 100)  # a cut file, as a full disk leaves it
                raise self.error()
            return real_save(tensors, filename, metadata=metadata)

        monkeypatch.setattr(fileio, "_open", open_)
        monkeypatch.setattr(fileio, "_write", write)
        monkeypatch.setattr(fileio, "_fsync", fsync)
        monkeypatch.setattr(fileio, "_replace", replace)
        monkeypatch.setattr(ckpt, "save_file", save_file)
        try:
            yield self
        finally:
            monkeypatch.undo()


# --- what a file may be after a failure --------------------------------------------------------------------------

def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def _record_key(record: dict) -> str:
    return json.dumps({k: v for k, v in record.items() if k not in TIMING_FIELDS}, sort_keys=True)


def _digits_free(data: bytes) -> bytes:
    return re.sub(rb"-?\d+(\.\d+)?(e[-+]?\d+)?", b"0", data)


def _complete(name: str, data: bytes, old: bytes | None, new: bytes | None) -> str | None:
    """None when ``data`` is a whole file of its kind, else what is wrong."""
    base = name.rsplit("/", 1)[-1]
    if base in (".lock", ".bench.lock"):
        return None  # the holder's record
    if base.endswith(".jsonl"):
        lines = data.decode().splitlines(keepends=True)
        if any(not line.endswith("\n") for line in lines):
            return "a cut line"
        try:
            records = [json.loads(line) for line in lines if line.strip()]
        except ValueError:
            return "a line that is not JSON"
        steps = [r["step"] for r in records if r.get("kind") == "train"]
        if steps != sorted(set(steps)):
            return f"train records repeated or out of order: {steps}"
        known = {_record_key(json.loads(line)) for version in (old, new) if version
                 for line in version.decode().splitlines() if line.strip()}
        if any(_record_key(r) not in known for r in records):
            return "holding a record that neither version has"
        return None
    if base.endswith(".json"):
        try:
            json.loads(data)
        except ValueError:
            return "not whole JSON"
        return None
    if base.endswith(".safetensors"):
        from safetensors.torch import load

        try:
            load(data)
        except Exception as exc:  # noqa: BLE001
            return f"not readable safetensors ({exc})"
        return None
    if base.endswith(".png"):
        return None if data.startswith(b"\x89PNG") and data.endswith(b"IEND\xaeB`\x82") else "a cut PNG"
    for other in (old, new):  # text (reports, TOML, tokenizer vocabularies): the same but for numbers
        if other is not None and _digits_free(data) == _digits_free(other):
            return None
    return "neither the old nor the new text"


def _unstamped(name: str) -> str:
    return re.sub(r"-\d{9,}", "-T", name)  # abandoned-step-NNNNNN-<unix time>: another second in another attempt


def check_files(root: Path, old: dict[str, bytes], new: dict[str, bytes], label: str, written: set[str]) -> None:
    """``written``: the (normalised) files the action writes; one it writes twice (``latest`` pointed at
    the step resumed from, then at the new one) may be left at its middle version, if whole."""
    now = _files(root)
    left = [p for p in root.rglob("*") if _TEMP.search(p.name)]
    assert not left, f"{label}: temporary files left: {left}"
    stamped = {_unstamped(name): name for name in new}
    for name, data in now.items():
        counterpart = new.get(name, new.get(stamped.get(_unstamped(name), "")))
        if data == old.get(name) or data == counterpart:
            continue
        problem = _complete(name, data, old.get(name), counterpart)
        assert problem is None, f"{label}: {name} is {problem}"
    for name, data in old.items():
        if new.get(name) == data and "/step-" not in f"/{name}":  # the same before and after: still there
            assert name in now, f"{label}: {name}, which the action does not change, was lost"
            if _normal(str(root / name), root) not in written:
                assert now[name] == data, f"{label}: {name}, which the action does not write, was changed"
    for step in [p for p in root.rglob("step-*") if p.is_dir() and re.fullmatch(r"step-\d+", p.name)]:
        ckpt.verify(step)


# --- the actions -----------------------------------------------------------------------------------------------

@dataclass
class Action:
    name: str
    prepare: Callable[[Path], None]  # builds the "before" state under the root
    run: Callable[[Path], tuple[int, str]]
    runs: tuple[str, ...]  # run directories that must still open afterwards


def _compare(root: Path, lr: str) -> tuple[int, str]:
    """``zoo compare`` of the run: it fine-tunes (a new recipe misses the result cache), merges into the
    run's ``bench.json`` and ``bench.md`` and rewrites the study's results, report and figures."""
    return invoke(["compare", str(root / "run"), "--out", str(root / "study"), "--tasks", "sst2", "--data-dir",
                   str(tiny_glue(root)), "--bench-set", "epochs=1", "--bench-set", "max_length=16", "--bench-set",
                   f"lr={lr}", "--no-baseline", "--device", "cpu"])


def _actions(base_run: Path, corpus: Path) -> list[Action]:
    def finished(root: Path) -> None:
        shutil.copytree(base_run, root / "run", symlinks=True)

    def abandoned_attempt(root: Path) -> None:
        finished(root)
        with open(root / "run" / "metrics.jsonl", "a") as f:  # logged by an attempt killed before its checkpoint
            f.write(json.dumps({"kind": "train", "step": 99, "loss": 1.0}) + "\n")

    def exported(root: Path) -> None:
        finished(root)
        assert invoke(["export", str(root / "run"), str(root / "hf"), "--step", "1"])[0] == 0
        (root / "hf" / "bench.json").write_text('{"suites": {}}\n')

    def compared(root: Path) -> None:
        finished(root)
        code, out = _compare(root, "1e-4")
        assert code == 0, out

    def small_corpus(root: Path) -> None:
        words = "the cat sat on a mat while dogs ran past old trees near quiet water".split()
        docs = [" ".join(words[(i + j) % len(words)] for j in range(12)) + "." for i in range(24)]
        (root / "corpus.txt").write_text("\n\n".join(docs) + "\n")

    def build_data(root: Path) -> tuple[int, str]:  # the tokenizer and token-store caches, a run's tokenizer
        from zoo.data import DataConfig, TokenizerConfig, build_datasets
        from zoo.errors import ZooError

        try:
            build_datasets(DataConfig(source=str(root / "corpus.txt"), cache_dir=str(root / "cache")),
                           TokenizerConfig(vocab_size=120, num_sentinels=2), "encoder", root / "tok")
        except ZooError as exc:
            return 2, f"error: {exc}"
        except OSError as exc:
            return 1, f"[uncaught OSError: {exc}]"
        except RuntimeError as exc:
            return 1, f"[uncaught RuntimeError: {exc}]"
        return 0, ""

    def blimp(root: Path) -> None:  # a finished run and a toy BLiMP of two paradigms
        finished(root)
        pairs = [("The cats sleep.", "The cats sleeps."), ("Dogs bark.", "Dogs barks.")]
        (root / "blimp").mkdir()
        for uid, term in (("toy", "island_effects"), ("toy_two", "binding")):
            rows = [{"sentence_good": g, "sentence_bad": b, "field": "syntax", "linguistics_term": term, "UID": uid,
                     "simple_LM_method": True, "pairID": str(i)} for i, (g, b) in enumerate(pairs)]
            (root / "blimp" / f"{uid}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def trunk(root: Path) -> None:  # a trapezoid run that keeps the cooldown start of a 2-step branch
        code, out = invoke(train_args(root / "trunk", corpus, "mlm", "bert", 3, 3, *TRAPEZOID))
        assert code == 0, out

    def init_run(root: Path, out: str) -> tuple[int, str]:
        return invoke(["train", "--objective", "mlm", "--init", str(root / "run"), "--data", str(corpus), "--budget",
                       "1steps", "--checkpoint-every", "1", "--out", str(root / out), "--seq-len", "32",
                       "--batch-size", "4", "--set", "train.device=cpu", "--set", "train.eval_batches=1"])

    return [
        Action("data", small_corpus, build_data, ()),
        Action("train-new", lambda root: None, lambda root: invoke(
            [*train_args(root / "new", corpus, "mlm", "bert", 2, 1), "--set", "train.keep_last=1"]), ("new",)),
        Action("train-resume", abandoned_attempt, lambda root: invoke(
            train_args(root / "run", corpus, "mlm", "bert", 3, 1, *CONSTANT)), ("run",)),
        Action("export", exported, lambda root: invoke(["export", str(root / "run"), str(root / "hf"), "--force"]),
               ("run",)),
        Action("compare", compared, lambda root: _compare(root, "2e-4"), ("run",)),
        Action("bench-blimp", blimp, lambda root: invoke(  # zero-shot scoring caches, bench.json and bench.md
            ["bench", str(root / "run"), "--suite", "blimp", "--data-dir", str(root / "blimp"), "--device", "cpu"]),
               ("run",)),
        Action("resume-from", finished, lambda root: invoke(  # abandon_after: the metrics copy and ``latest``
            train_args(root / "run", corpus, "mlm", "bert", 2, 1, *CONSTANT, "--resume-from", "step-000001")),
               ("run",)),
        Action("branch", trunk, lambda root: invoke(  # copy_history: the trunk's records up to the branch point
            ["train", "--out", str(root / "branch"), "--branch-from", str(root / "trunk"), "--at-step", "1",
             "--budget", "2steps"]), ("trunk", "branch")),
        Action("init", finished, lambda root: init_run(root, "init"), ("run", "init")),
    ]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory, corpus: Path, cache_dir: Path) -> Path:
    return train_in_process(tmp_path_factory.mktemp("atomic") / "run", corpus, cache_dir, "mlm", "bert", 2, 1,
                            *CONSTANT)


def _chosen(points: list[Point]) -> list[int]:
    """One point per file the action writes (the same kind of file in another step or directory
    counts once); the operation that fails rotates over the file's operations from file to file, so
    that every operation of every file kind fails somewhere in the suite."""
    ops: dict[str, list[int]] = {}
    for i, p in enumerate(points):
        if i == min((j for j in ops.get(p.where, []) if points[j].op == p.op), default=i):
            ops.setdefault(p.where, []).append(i)
    assert ops, "no write point found"
    return sorted(found[n % len(found)] for n, found in enumerate(ops.values()))


def _reset(root: Path, template: Path) -> None:
    """``root`` as ``template`` holds it (prepared once at ``root``'s path, so that paths recorded in
    files are the same)."""
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(template, root, symlinks=True)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(9), ids=["data", "train-new", "train-resume", "export", "compare",
                                                 "bench-blimp", "resume-from", "branch", "init"])
def test_every_file_is_old_or_new_when_any_write_fails(index: int, tmp_path: Path, base_run: Path, corpus: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    action = _actions(base_run, corpus)[index]
    root, template = tmp_path / "root", tmp_path / "template"
    root.mkdir()
    action.prepare(root)
    shutil.copytree(root, template, symlinks=True)
    old = _files(root)
    counter = Injector(root)
    with counter.installed(monkeypatch):
        code, out = action.run(root)
    assert code == 0, out
    new = _files(root)
    assert new != old
    for n, i in enumerate(_chosen(counter.points)):
        kind = Injector.KINDS[n % len(Injector.KINDS)]
        label = f"{action.name}: {kind} at {counter.points[i].op} of {counter.points[i].where} (point {i})"
        _reset(root, template)
        injector = Injector(root, fail_at=i, kind=kind)
        with injector.installed(monkeypatch):
            code, out = action.run(root)
        assert injector.fired, f"{label}: the point was not reached again"
        check_files(root, old, new, label, {p.where for p in counter.points})
        if kind != "raise":  # a full disk or a size limit is a one-line error (or a warning), never a crash
            crashed = "Traceback" in out or re.search(r"\[uncaught (?!OSError)", out)  # the CLI prints an OSError
            assert not crashed, f"{label}: a traceback:\n{out}"  # as one line; anything else escaping is a crash
            text = flat(out)
            assert code == 0 or "no space left on" in text or "file too large:" in text, f"{label}: {text}"
        for name in action.runs:
            if (root / name / "config.json").exists() or name in old:
                open_run(root / name)  # still a run that bench and export can open (measured: config.json
                # left at 0 bytes made it unreadable)


# --- measured cases --------------------------------------------------------------------------------------------

def _stats(run: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in run.iterdir() if p.is_file()}


def test_a_rerun_of_a_finished_run_rewrites_nothing(base_run: Path, corpus: Path) -> None:
    run = base_run
    before = _stats(run)
    code, out = invoke(train_args(run, corpus, "mlm", "bert", 2, 1, *CONSTANT))
    assert code == 0, out
    after = _stats(run)
    for name in ("config.json", "config.toml", "run.json", "metrics.jsonl", "tokenizer.json", "latest"):
        assert after[name] == before[name], f"{name} was rewritten"


@contextmanager
def size_limit(limit: int) -> Iterator[None]:
    """Files of this process limited to ``limit`` bytes, as under ``ulimit -f`` (EFBIG rather than
    SIGXFSZ: the shell's default action would kill the process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_a_file_size_limit_never_cuts_the_metrics_log(tmp_path: Path, base_run: Path, corpus: Path) -> None:
    # Measured: a rerun of a finished run under a file-size limit cut metrics.jsonl (16 records -> 14). A rerun
    # rewrites nothing now (above); with records to drop (an attempt killed before its checkpoint), the log is
    # replaced as a whole or not at all.
    run = shutil.copytree(base_run, tmp_path / "run", symlinks=True)
    first = (run / "metrics.jsonl").read_bytes()
    size = len(first)
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"kind": "train", "step": 99, "loss": 1.0}) + "\n")
    before = (run / "metrics.jsonl").read_bytes()
    with size_limit(size // 2):
        code, text = invoke(train_args(run, corpus, "mlm", "bert", 2, 1, *CONSTANT))
    text = flat(text)
    assert code == 2 and "[uncaught" not in text, text
    assert f"file too large: {run / 'metrics.jsonl'} needs {size:,} bytes; the file-size limit (ulimit -f) is " \
           f"{size // 2:,} bytes" in text, text
    assert (run / "metrics.jsonl").read_bytes() == before
    assert not [p for p in run.iterdir() if fileio.is_temp(p.name)]
    assert len(read_records(run / "metrics.jsonl")) == first.count(b"\n") + 1


# --- the helpers themselves ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", Injector.KINDS)
def test_write_and_append_keep_the_old_version_at_every_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              kind: str) -> None:
    target, log = tmp_path / "a.json", tmp_path / "a.jsonl"

    def act() -> None:
        fileio.write_json(target, {"v": "new" * 100})
        sink = fileio.AppendLog(log)
        try:
            sink.append('{"step": 2}')
        finally:
            sink.close()

    counter = Injector(tmp_path)
    fileio.write_json(target, {"v": "old"})
    log.write_text('{"step": 1}\n')
    with counter.installed(monkeypatch):
        act()
    new = {"a.json": target.read_bytes(), "a.jsonl": log.read_bytes()}
    for i in range(len(counter.points)):
        fileio.write_json(target, {"v": "old"})
        log.write_text('{"step": 1}\n')
        old = {"a.json": target.read_bytes(), "a.jsonl": log.read_bytes()}
        injector = Injector(tmp_path, fail_at=i, kind=kind)
        with injector.installed(monkeypatch), pytest.raises((OSError, RuntimeError)) as caught:
            act()
        now = {"a.json": target.read_bytes(), "a.jsonl": log.read_bytes()}
        for name in now:
            assert now[name] in (old[name], new[name]), (i, counter.points[i], name, now[name])
        assert not [p for p in tmp_path.iterdir() if fileio.is_temp(p.name)]
        if kind == "ENOSPC" and counter.points[i].op != "rename":
            assert "no space left on" in str(caught.value) and str(tmp_path) in str(caught.value)


def _tiny_checkpoint(value: float, step: int) -> ckpt.Checkpoint:
    import torch

    return ckpt.Checkpoint({"w": torch.full((4,), value)}, {"w/exp_avg": torch.full((4,), value)},
                           {"cpu": torch.zeros(8, dtype=torch.uint8)}, {"step": step})


def test_a_checkpoint_written_again_keeps_the_old_one_until_the_new_one_is_in(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, writing a step that exists (after a resume at that step) deleted the old one first, so a
    failure before the rename lost the step. Now the old one is moved aside, and put back if the rename of
    the new one fails, or by the next training's clean-up if the process died in between."""
    from safetensors.torch import load_file

    run = tmp_path / "run"
    run.mkdir()
    final = ckpt.write(run, 5, _tiny_checkpoint(1.0, 5), keep_last=3)
    real = fileio._replace

    def failing(src: object, dst: object) -> None:
        if Path(dst) == final:  # the rename of the new step into place
            raise OSError(errno.EIO, "Input/output error")
        real(src, dst)

    monkeypatch.setattr(fileio, "_replace", failing)
    with pytest.raises(OSError, match="Input/output error"):
        ckpt.write(run, 5, _tiny_checkpoint(2.0, 5), keep_last=3)
    monkeypatch.undo()
    ckpt.verify(final)
    assert float(load_file(str(final / "model.safetensors"))["w"][0]) == 1.0
    assert sorted(p.name for p in run.iterdir()) == ["latest", "step-000005"]  # nothing temporary left

    # A process killed between the two renames leaves the old step moved aside: it is put back.
    aside = run / ".step-000005.old-123-0123abcd"
    os.rename(final, aside)
    assert ckpt.steps(run) == []
    ckpt.clean_temporaries(run)
    assert ckpt.steps(run) == [(5, final)] and not aside.exists()
    ckpt.verify(final)
    # The rewrite itself succeeds and replaces the step as a whole.
    ckpt.write(run, 5, _tiny_checkpoint(2.0, 5), keep_last=3)
    ckpt.verify(final)
    assert float(load_file(str(final / "model.safetensors"))["w"][0]) == 2.0
    assert sorted(p.name for p in run.iterdir()) == ["latest", "step-000005"]
