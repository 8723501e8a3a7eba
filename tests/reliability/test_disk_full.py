"""A full disk: ``no space left on DIR (needed ~N MB ...)``, the previous checkpoint kept, partial files
removed. Real small tmpfs mounts where this process may mount them (root), else skipped with the reason;
the same code paths are also driven by simulated ENOSPC errors everywhere."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from zoo.data import store
from zoo.errors import CheckpointError, DataError
from zoo.train import checkpoint as ckpt

from .conftest import assert_user_error, invoke, train_args


@contextmanager
def small_mount(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path``, or a skip that says why there is none."""
    path.mkdir(parents=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the simulated ENOSPC tests cover the same code")
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "zoo-test", str(path)],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot run mount ({exc}); the simulated ENOSPC tests cover the same code")
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({done.stderr.strip()}); the simulated ENOSPC "
                    "tests cover the same code")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=60)


def test_checkpoint_on_a_full_disk_keeps_the_previous_one(tmp_path: Path, corpus: Path) -> None:
    # The run directory on 1 MiB: the tokenizer and one checkpoint (~0.6 MB) fit, a second does not.
    with small_mount(tmp_path / "disk", "1m") as disk:
        run = disk / "run"
        args = train_args(run, corpus, "mlm", "bert", 3, 1)
        code, out = invoke(args)
        assert_user_error(code, out, f"no space left on {run} (needed ~0.6 MB for checkpoint step-000002,",
                          "MB free); the previous checkpoint step-000001 is intact and the partial files were "
                          "removed", "run the same command again to resume")
        assert [s for s, _ in ckpt.steps(run)] == [1]
        ckpt.verify(run / "step-000001")
        assert not list(run.glob(".tmp-*"))
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True, timeout=60)
        code, out = invoke(args)  # with room again, the same command resumes
        assert code == 0 and "resuming from step-000001" in " ".join(out.split()), out


def test_token_cache_on_a_full_disk(tmp_path: Path, corpus: Path) -> None:
    with small_mount(tmp_path / "disk", "64k") as disk:
        out = tmp_path / "run"
        code, text = invoke([*train_args(out, corpus), "--set", f"data.cache_dir={disk}"])
        assert_user_error(code, text, f"no space left on {disk / 'shards'} (needed ~",
                          "MB for the token store of", "the partial store was removed",
                          "set data.cache_dir ($ZOO_CACHE_DIR) to a disk with room")
        assert not [p for p in (disk / "shards").iterdir()]  # no partial store left
        assert not out.exists()  # nothing was trained: no run directory left behind


# --- simulated ---------------------------------------------------------------------------------------------

def _checkpoint(value: float) -> ckpt.Checkpoint:
    return ckpt.Checkpoint({"w": torch.full((1000,), value)}, {"w/exp_avg": torch.zeros(1000)},
                           {"cpu": torch.zeros(10, dtype=torch.uint8)}, {"step": int(value)})


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"),
                                     ckpt.SafetensorError("Error while serializing: IoError(Os { code: 28, "
                                                          "kind: StorageFull, message: \"No space left on device\" })")],
                         ids=["oserror", "safetensors"])
def test_simulated_enospc_in_a_checkpoint_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                failure: Exception) -> None:
    ckpt.write(tmp_path, 1, _checkpoint(1.0), keep_last=3)
    real = ckpt.save_file

    def save_file(tensors, filename, metadata=None):
        if filename.endswith("optimizer.safetensors"):
            raise failure
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(ckpt, "save_file", save_file)
    with pytest.raises(CheckpointError, match=r"no space left on .* \(needed ~0\.0 MB for checkpoint step-000002, "
                                              r".* MB free\); the previous checkpoint step-000001 is intact"):
        ckpt.write(tmp_path, 2, _checkpoint(2.0), keep_last=3)
    assert [s for s, _ in ckpt.steps(tmp_path)] == [1] and not list(tmp_path.glob(".tmp-*"))
    ckpt.verify(tmp_path / "step-000001")
    monkeypatch.setattr(ckpt, "save_file", lambda *a, **k: (_ for _ in ()).throw(PermissionError(13, "denied")))
    with pytest.raises(PermissionError):  # other errors are not disguised as a full disk
        ckpt.write(tmp_path, 2, _checkpoint(2.0), keep_last=3)


def test_simulated_short_write_of_the_token_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.data.tokenizer import train_tokenizer

    tok = train_tokenizer(["some words here", "and more words there"] * 5, "wordpiece", vocab_size=120)
    real = store.build_store

    def build_store(*args, **kwargs):
        real(*args, **kwargs)  # files written, then the disk fills
        raise OSError("102018 requested and 61822 written")  # numpy's tofile on a full disk: no errno

    monkeypatch.setattr(store, "build_store", build_store)
    with pytest.raises(DataError, match=rf"no space left on {tmp_path / 'shards'} \(needed ~0\.0 MB for the token "
                                        r"store of 2 documents, .* MB free\); the partial store was removed"):
        store.cached_store(["some words", "more words"], tok, str(tmp_path))
    assert not list((tmp_path / "shards").iterdir())
    shutil.rmtree(tmp_path / "shards")
