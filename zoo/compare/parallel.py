"""Train runs of a study concurrently: each run in its own process (``zoo.compare.worker``) on a set
number of threads, at most ``jobs`` at a time. A run trains exactly as it would in process; a failed
run is reported to ``on_done`` with its error and the others go on. A worker's output goes to its log,
which is only appended to: each attempt begins with a header line (``ATTEMPT``), so that rerunning a
study keeps the output of the attempts before. ``train_parallel`` trains a study's jobs so and records
each in ``study.json`` (a curve study's trunks, then its branches: ``zoo.compare.branches``).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import fileio
from zoo.compare.plan import Layout
from zoo.train.config import RunConfig
from zoo.typed_config import to_dict

if TYPE_CHECKING:
    from zoo.compare.results import RunInfo
    from zoo.compare.study import Cell, StudyFile, StudySettings

log = logging.getLogger(__name__)

POLL_S = 0.2
ATTEMPT = "==== zoo:"  # the start of the line that opens each attempt's output in a worker log


@dataclass(frozen=True)
class Job:
    name: str
    config: RunConfig


def thread_env(threads: int) -> dict[str, str]:
    """The environment of a worker process limited to ``threads`` threads."""
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[key] = str(threads)
    return env


def start(kind: str, config: RunConfig | list[RunConfig], threads: int, config_path: Path | list[Path],
          log_path: Path) -> subprocess.Popen:
    """Start ``python -m zoo.compare.worker KIND`` on ``config`` (written to ``config_path``; a probe takes
    several), its output (stderr; stdout too unless it is a probe) into ``log_path``."""
    configs = config if isinstance(config, list) else [config]
    paths = config_path if isinstance(config_path, list) else [config_path]
    for cfg, path in zip(configs, paths, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        fileio.write_json(path, to_dict(cfg))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # Appended to, never rewritten: an earlier attempt's output (a run resumed by a rerun of the study) stays
    # above this attempt's header line.
    err = open(log_path, "ab")  # noqa: SIM115 - closed when the process is reaped
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    err.write(f"{ATTEMPT} {kind} worker started {started} ({', '.join(map(str, paths))})\n".encode())
    err.flush()
    out = subprocess.PIPE if kind == "probe" else err
    proc = subprocess.Popen([sys.executable, "-m", "zoo.compare.worker", kind, os.pathsep.join(map(str, paths)),
                             str(threads)],
                            stdout=out, stderr=err, env=thread_env(threads))
    proc._zoo_log = err  # type: ignore[attr-defined]
    proc._zoo_started = time.perf_counter()  # type: ignore[attr-defined]
    return proc


def error_of(log_path: Path, rc: int) -> str:
    """A failed worker's error: its ``zoo-error:`` line, else the exit code and the log's last line (of
    its own attempt: the lines after the log's last header)."""
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines() if log_path.is_file() else []
    headers = [i for i, line in enumerate(lines) if line.startswith(ATTEMPT)]
    lines = lines[headers[-1] + 1:] if headers else lines
    for line in reversed(lines):
        if line.startswith("zoo-error: "):
            return line.removeprefix("zoo-error: ")
    tail = next((ln for ln in reversed(lines) if ln.strip()), "")
    return f"training process exited with code {rc} (log: {log_path}){': ' + tail if tail else ''}"


def _stop_on_term() -> Any:
    """Make SIGTERM stop the loop like Ctrl-C (so workers are signalled, not orphaned); the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, stop)


def run_jobs(jobs: list[Job], layout: Layout, workdir: Path,
             on_start: Callable[[Job], None], on_done: Callable[[Job, str | None, float, float], None]) -> None:
    """Train ``jobs`` in order, ``layout.jobs`` at a time on ``layout.threads`` threads each; ``on_done``
    gets each job, its error (None: finished), its wall seconds and its CPU seconds, in the order they end."""
    pending = list(jobs)
    running: dict[str, tuple[Job, subprocess.Popen, float]] = {}
    previous = _stop_on_term()
    try:
        while pending or running:
            while pending and len(running) < layout.jobs:
                job = pending.pop(0)
                on_start(job)
                proc = start("train", job.config, layout.threads, workdir / f"{job.name}.json",
                             workdir / f"{job.name}.log")
                running[job.name] = (job, proc, time.perf_counter())
            time.sleep(POLL_S)
            for name, (job, proc, t0) in list(running.items()):
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid == 0:
                    continue
                rc = proc.returncode = os.waitstatus_to_exitcode(status)
                proc._zoo_log.close()  # type: ignore[attr-defined]
                del running[name]
                error = None if rc == 0 else error_of(workdir / f"{name}.log", rc)
                if error:
                    log.error("%s failed: %s", name, error)
                on_done(job, error, time.perf_counter() - t0, usage.ru_utime + usage.ru_stime)
    except BaseException:  # interrupted: each worker checkpoints its run and stops, as a run in process does
        for _, proc, _ in running.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        for _, proc, _ in running.values():
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
            proc._zoo_log.close()  # type: ignore[attr-defined]


# a study's job: the run, its cell and seed, and what study.json records of it besides the usual fields
# (a curve model's ``budget``, a branch's ``parent`` and ``parent_step``)
StudyJob = tuple[Job, "Cell", int, dict[str, Any]]


def train_parallel(settings: StudySettings, jobs: list[StudyJob], out: Path, study: StudyFile,
                   infos: dict[str, RunInfo], run_info: Callable[[Path, str, dict[str, Any]], RunInfo]) -> None:
    """Train ``jobs`` in worker processes in the layout of ``settings``; record each run's status, wall and
    CPU seconds and counters in ``study.json`` and its ``RunInfo`` (``run_info``) in ``infos``."""
    from zoo.compare.results import RunInfo

    assert settings.layout is not None
    layout = Layout(*settings.layout)
    cells = {job.name: (cell, seed, record) for job, cell, seed, record in jobs}
    assert settings.budget is not None  # given, or set by the plan
    study_budget = settings.budget.to_text()

    def started(job: Job) -> None:
        cell, seed, record = cells[job.name]
        log.info("training %s (%s) in a worker process, %d thread(s)", job.name, record.get("budget", study_budget),
                 layout.threads)
        study.update(job.name, status="training", objective=cell.objective, backbone=cell.backbone, seed=seed,
                     path=str(job.config.run_dir), error=None, **record)

    def done(job: Job, error: str | None, wall: float, cpu: float) -> None:
        cell, seed, record = cells[job.name]
        rec = study.run(job.name)
        times = {"wall_s": rec.get("wall_s", 0.0) + wall, "cpu_s": rec.get("cpu_s", 0.0) + cpu}
        budget = record.get("budget", study_budget)
        if error is not None:
            study.update(job.name, status="failed", error=error, **times)
            infos[job.name] = RunInfo(job.name, cell.backbone, cell.objective, seed, str(job.config.run_dir),
                                      status="failed", error=error, budget=budget)
            return
        study.update(job.name, status="done", **times)
        infos[job.name] = run_info(Path(job.config.run_dir), job.name, study.run(job.name))
        if "parent" in record:
            infos[job.name].parent = record["parent"]
        study.update(job.name, counters=infos[job.name].counters())

    log.info("training %d run(s), %d at a time on %d thread(s) each", len(jobs), layout.jobs, layout.threads)
    run_jobs([j for j, _, _, _ in jobs], layout, out / "jobs", started, done)


def probe_outputs(procs: list[subprocess.Popen], logs: list[Path]) -> list[list[dict]]:
    """Wait for probe workers; each one's JSON results, one per config (a ConfigError with the log on failure)."""
    from zoo.errors import ConfigError

    results = []
    for proc, log_path in zip(procs, logs, strict=True):
        out, _ = proc.communicate()
        wall = time.perf_counter() - proc._zoo_started  # type: ignore[attr-defined]
        proc._zoo_log.close()  # type: ignore[attr-defined]
        if proc.returncode != 0:
            raise ConfigError(f"measuring training speed failed: {error_of(log_path, proc.returncode)}")
        rows = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
        startup = wall - sum(r["setup_s"] + r["seconds"] for r in rows)  # interpreter and imports
        for r in rows:
            r["startup_s"] = max(0.0, startup)
        results.append(rows)
    return results
