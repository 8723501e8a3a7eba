"""A compute-matched study: its settings, the (objective, backbone, seed) grid, run configs, ``study.json``.

Every run of a study shares the budget, corpus, model size, sequence length, batch size and
``--set`` overrides; runs of one backbone family share one tokenizer, trained once into
``OUT/tokenizers/<family>/`` and passed to every run as ``tokenizer.path``; it reserves every special
token the family's objectives declare (UL2's ``[R]`` ``[S]`` ``[X]``), so each run of the family reads
the same tokens. Only the objective, the backbone and the seed vary.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from zoo import fileio, markers, registry
from zoo.data.config import TokenizerConfig
from zoo.errors import ConfigError, IncompatibleError
from zoo.train import checkpoint as ckpt
from zoo.train.config import Budget, RunConfig
from zoo.train.lock import StudyLock
from zoo.train.resolve import config_diffs as train_config_diffs
from zoo.train.resolve import resolve
from zoo.typed_config import apply_overrides, coerce, from_dict, to_dict

log = logging.getLogger(__name__)

STUDY_FORMAT = 1
DEFAULT_SEEDS = 5  # pretraining seeds per (objective, backbone); see zoo.compare.stats on what 5 can show
BASELINE = "from scratch"  # the objective label of the no-pretraining baseline
# Keys a study sets itself for each run; --set may not change them.
RESERVED_KEYS = ("objective", "backbone", "out", "train.seed", "train.budget", "tokenizer.path")
# Settings that may change between invocations of the same study (they change no trained weights).
STEPS_PER_EVAL = 50


def auto_evals(steps: int) -> int:
    """The default number of evaluation points of a run of ``steps`` steps: one per ~50 steps, 4 to 50."""
    return min(50, max(4, steps // STEPS_PER_EVAL))


MUTABLE_SETTINGS = ("objectives", "backbones", "seeds", "evals", "bench", "jobs", "threads")
# Config keys a finished run may differ in and still be reused (they do not change the weights).
REUSABLE_DIFFS = ("out", "train.log_every", "train.eval_every", "train.checkpoint_every", "train.checkpoint_minutes",
                  "train.keep_last", "train.tensorboard", "train.report_to", "train.prefetch", "data.cache_dir", "train.device",
                  "train.dist_timeout_s")


@dataclass
class BenchOptions:
    """How every model of a comparison is fine-tuned and scored, and how scores are summarised."""

    suite: str | None = None  # comma-separated suites; None: from the tasks, else glue
    tasks: list[str] | None = None
    data_dir: str | None = None  # benchmark files (None: the Hugging Face hub)
    overrides: list[str] = field(default_factory=list)  # --bench-set [task.]key=value
    seeds: int = 1  # fine-tunes per model; their median is the model's score
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    max_pairs: int | None = None  # pairs per paradigm of a zero-shot suite (None: max_eval_examples)
    device: str = "auto"
    baselines: bool = True  # a from-scratch replicate per backbone and seed
    statistic: str = "median"  # over pretraining seeds: median (order-statistic interval) or mean (t interval)

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise ConfigError(f"--bench-seeds must be at least 1, got {self.seeds}")
        if self.statistic not in ("median", "mean"):
            raise ConfigError(f"--statistic must be median or mean, got {self.statistic!r}")
        for name in ("max_train_examples", "max_eval_examples", "max_pairs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.suite is not None:
            split_list(self.suite, "--suite")  # no empty or repeated suite

    @property
    def suites(self) -> list[str | None]:
        """The suites every model is scored on, in the order given (``[None]``: from the tasks)."""
        return list(split_list(self.suite, "--suite")) if self.suite else [None]

    def for_suite(self, suite: str | None) -> BenchOptions:
        """These options for one of the suites: its own data folder (``data_dir/<suite>`` when that is a
        directory), and, for a zero-shot suite, ``max_pairs`` pairs per paradigm and no fine-tuning options."""
        from zoo.benchmarks.minimal_pairs import is_pair_suite

        if len(self.suites) == 1:
            if is_pair_suite(suite) and self.max_pairs is not None:
                return replace(self, max_eval_examples=self.max_pairs, max_pairs=None)
            return self
        data_dir = self.data_dir
        if data_dir and suite and (Path(data_dir) / suite).is_dir():
            data_dir = str(Path(data_dir) / suite)
        if is_pair_suite(suite):
            pairs = self.max_pairs if self.max_pairs is not None else self.max_eval_examples
            return replace(self, suite=suite, data_dir=data_dir, tasks=None, overrides=[], seeds=1,
                           max_train_examples=None, max_eval_examples=pairs, max_pairs=None)
        return replace(self, suite=suite, data_dir=data_dir, max_pairs=None)


@dataclass
class StudySettings:
    """What ``zoo compare`` trains and how it benchmarks (``study.json`` "settings")."""

    objectives: list[str]
    backbones: list[str] = field(default_factory=lambda: ["bert", "gpt"])
    budget: Budget | None = None  # written as text (3e14flops); None: planned from ``hours`` (zoo.compare.plan)
    seeds: list[int] = field(default_factory=lambda: list(range(DEFAULT_SEEDS)))
    data: str | None = None  # pretraining corpus (None: the embedded default corpus)
    size: str = "mini"
    seq_len: int | None = None
    batch_size: int | None = None
    vocab_size: int | None = None
    train_overrides: list[str] = field(default_factory=list)  # --set key.path=value for every run
    evals: int = 0  # evaluation points per run (the loss curves) when train.eval_every is not set; 0: auto_evals
    bench: BenchOptions = field(default_factory=BenchOptions)
    # a curve study (zoo.compare.branches): models at each of these budgets, cooldown branches of one trunk
    budgets: list[str] = field(default_factory=list)
    cooldown: float = 0.2  # a curve study's cooldown, the final fraction of each budget
    hours: float | None = None  # plan the budget so the whole study takes this many hours here
    jobs: int = 1  # runs trained at once (each in its own process when above 1 or with ``threads``)
    threads: int | None = None  # threads per training process (None: in process, torch's default)

    def __post_init__(self) -> None:
        if not self.objectives:
            raise ConfigError("--objectives: name at least one objective, e.g. mlm,clm")
        if not self.backbones:
            raise ConfigError("--backbones: name at least one backbone, e.g. bert,gpt")
        if not self.seeds:
            raise ConfigError("--seeds must be at least 1")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"--seeds: repeated seed in {self.seeds}")
        if self.evals < 0:
            raise ConfigError(f"--evals must be at least 1 (or 0: one per ~{STEPS_PER_EVAL} steps), got {self.evals}")
        if isinstance(self.bench, dict):
            self.bench = BenchOptions(**self.bench)
        if self.hours is not None and not (0 < self.hours < float("inf")):
            raise ConfigError(f"--hours must be a positive number, got {self.hours}")
        if self.jobs < 1 or (self.threads is not None and self.threads < 1):
            raise ConfigError(f"--jobs and --threads must be at least 1, got {self.jobs} and {self.threads}")
        if self.budget is None and self.hours is None:
            raise ConfigError("zoo compare: pass --budget (per run) or --hours (the whole study) to train a study")
        if isinstance(self.budget, str):  # as written in study.json or given as text
            self.budget = coerce(self.budget, Budget, "--budget")
        if self.budgets:
            from zoo.compare.budgets import check_budgets

            check_budgets(self)
        for item in self.train_overrides:
            key = item.partition("=")[0].strip()
            if key in RESERVED_KEYS:
                raise ConfigError(f"--set {item!r}: zoo compare sets {key} for each run itself; use --objectives, "
                                  f"--backbones, --seeds, --budget or --out instead")

    @property
    def layout(self) -> tuple[int, int] | None:
        """(jobs, threads) when runs train in worker processes; None: one at a time in this process."""
        if self.jobs == 1 and self.threads is None:
            return None
        return self.jobs, self.threads or 1

    def to_dict(self) -> dict[str, Any]:
        """``study.json``'s "settings": the budget as its text."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "settings") -> StudySettings:
        """Settings as ``to_dict`` wrote them (``study.json``), each value checked against its type."""
        return from_dict(cls, data, where)


def split_list(text: str | None, what: str) -> list[str]:
    """``"mlm, mlm+nsp ,clm"`` -> ["mlm", "mlm+nsp", "clm"] (no empty or repeated items)."""
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    seen = set()
    for item in items:
        if item in seen:
            raise ConfigError(f"{what}: {item!r} is listed twice")
        seen.add(item)
    return items


# --- the grid --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    objective: str
    backbone: str

    @property
    def label(self) -> str:
        return f"{self.backbone} {self.objective}"


@dataclass(frozen=True)
class Skipped:
    objective: str
    backbone: str
    reason: str


@dataclass
class Grid:
    cells: list[Cell]
    skipped: list[Skipped]

    def families(self) -> dict[str, str]:
        """backbone -> family ('encoder' / 'decoder') for the backbones that have cells."""
        return {c.backbone: registry.load("backbone", c.backbone).family for c in self.cells}


PAIR_SEP = "@"  # ``clm@gpt``: an objective item that names its one backbone


def split_pair(item: str) -> tuple[str, str | None]:
    """``"clm@gpt"`` -> ("clm", "gpt"); ``"clm"`` -> ("clm", None) (it pairs with every --backbones entry)."""
    objective, sep, backbone = item.partition(PAIR_SEP)
    if not sep:
        return item, None
    objective, backbone = objective.strip(), backbone.strip()
    if not objective or not backbone or PAIR_SEP in backbone:
        raise ConfigError(f"--objectives: {item!r} is not OBJECTIVE@BACKBONE (e.g. clm@gpt or span-lm@t5)")
    return objective, backbone


def pair_backbones(objectives: list[str]) -> list[str] | None:
    """The backbones named by ``objectives`` in order when every item is a pair (``clm@gpt,mlm@bert``), else None."""
    pairs = [split_pair(o) for o in objectives]
    if not pairs or any(bb is None for _, bb in pairs):
        return None
    return list(dict.fromkeys(bb for _, bb in pairs if bb is not None))


def expand_grid(objectives: list[str], backbones: list[str]) -> Grid:
    """The cells of ``objectives``, in the order given: an ``OBJECTIVE@BACKBONE`` item is that one pair
    (an error when incompatible: it was asked for by name); a plain item pairs with every compatible
    backbone of ``backbones``, incompatible pairs skipped with the reason. Unknown names are errors."""
    from zoo.objectives.compose import check_compatible
    from zoo.objectives.spec import parse_spec

    items = [split_pair(o) for o in objectives]
    names = list(dict.fromkeys([*backbones, *(bb for _, bb in items if bb is not None)]))
    classes = {b: registry.load("backbone", b) for b in names}  # PluginError for unknown backbones
    specs = {}  # each text parsed once
    for text, _ in items:
        specs[text] = parse_spec(text)
        for name in specs[text].names:
            registry.info("objective", name)  # PluginError for unknown objectives
    cells: list[Cell] = []
    skipped = []
    for obj, pair in items:
        for bb in [pair] if pair is not None else backbones:
            try:
                check_compatible(specs[obj], classes[bb])
            except IncompatibleError as exc:
                reason = str(exc).split(": ", 1)[-1].split("; try ")[0]
                if pair is not None:
                    raise ConfigError(f"--objectives: {obj}{PAIR_SEP}{bb} cannot train: {reason}") from exc
                skipped.append(Skipped(obj, bb, reason))
                continue
            if Cell(obj, bb) in cells:
                raise ConfigError(f"--objectives: {obj} on {bb} is listed twice (with --backbones {','.join(backbones)})")
            cells.append(Cell(obj, bb))
    if not cells:
        detail = "; ".join(f"{s.objective} x {s.backbone}: {s.reason}" for s in skipped)
        raise ConfigError(f"no objective in {', '.join(objectives)} can train any backbone in "
                          f"{', '.join(backbones)} ({detail})")
    return grid_checked(Grid(cells, skipped))


def grid_checked(grid: Grid) -> Grid:
    names: dict[str, Cell] = {}
    for c in grid.cells:
        other = names.setdefault(slug(c), c)
        if other != c:
            raise ConfigError(f"objectives {other.objective!r} and {c.objective!r} would share the run directory "
                              f"name {slug(c)!r}; rename one (e.g. change a weight)")
    return grid


def slug(cell: Cell) -> str:
    """A directory-safe name for a cell (``bert-mlm+nsp``, ``bert-mlm_1.0+nsp_0.5``, ``gpt-mntp_15_or_clm_1``)."""
    from zoo.objectives.spec import path_name

    return f"{cell.backbone}-{path_name(cell.objective)}"  # zoo train's default name, runs/<this>


def run_name(cell: Cell, seed: int) -> str:
    return f"{slug(cell)}-seed{seed}"


# --- run configs -----------------------------------------------------------------------------------------

def base_config(settings: StudySettings, backbone: str) -> dict[str, Any]:
    """The config dict shared by the runs of one backbone (before objective, seed and tokenizer)."""
    train = {"budget": settings.budget.to_text()} if settings.budget is not None else {}  # None: not planned yet
    data: dict[str, Any] = {"backbone": backbone, "size": settings.size, "train": train}
    if settings.data is not None:
        data["data"] = {"source": settings.data}
    if settings.vocab_size is not None:
        data["tokenizer"] = {"vocab_size": settings.vocab_size}
    for key in ("seq_len", "batch_size"):
        if getattr(settings, key) is not None:
            data["train"][key] = getattr(settings, key)
    if settings.budgets:  # a curve study's trunks (zoo.compare.branches)
        data["optim"] = {"schedule": "trapezoid", "cooldown": settings.cooldown, "warmup": 0.0}
    return apply_overrides(data, list(settings.train_overrides))


def shared_tokenizer_config(settings: StudySettings, grid: Grid, family: str) -> TokenizerConfig:
    """The tokenizer settings of ``family``'s shared tokenizer: the study's, reserving the union of the
    special tokens its cells' objectives declare, in grid order (first seen first)."""
    from zoo.train.build import tokenizer_config

    families = grid.families()
    cells = [c for c in grid.cells if families[c.backbone] == family]
    if not cells:
        raise ValueError(f"the grid has no {family} cells")
    reserved: list[str] = []
    tok_cfg = None
    for cell in cells:
        tok_cfg = tokenizer_config(resolve({**base_config(settings, cell.backbone), "objective": cell.objective}))
        reserved.extend(t for t in tok_cfg.special_tokens if t not in reserved)
    assert tok_cfg is not None
    return replace(tok_cfg, special_tokens=reserved)


def run_config(settings: StudySettings, cell: Cell, seed: int, run_dir: Path, tokenizer: Path,
               eval_every: int | None = None) -> RunConfig:
    data = base_config(settings, cell.backbone)
    data["objective"] = cell.objective
    data["out"] = str(run_dir)
    data.setdefault("tokenizer", {})["path"] = str(tokenizer)
    train = data["train"]
    train["seed"] = seed
    if eval_every is not None and "eval_every" not in train:
        train["eval_every"] = eval_every
    if "checkpoint_every" not in train and eval_every:
        train["checkpoint_every"] = eval_every  # a killed study resumes from the last evaluation point
    return resolve(data)


def reuse_diffs(saved: dict[str, Any], cfg: RunConfig) -> list[str]:
    """Keys (dotted) where a run's saved ``config.json`` differs from ``cfg``, ignoring REUSABLE_DIFFS."""
    return train_config_diffs(saved, cfg, REUSABLE_DIFFS)


@dataclass
class RunState:
    """Where a run directory stands: its newest intact checkpoint's counters."""

    step: int
    flops: float
    tokens: int
    train_time_s: float
    checkpoint: str
    head_flops: float = 0.0  # the part of ``flops`` in the objectives' heads (0 in older checkpoints)

    def progress(self, budget: Budget) -> float:
        return budget.progress(self.step, self.tokens, self.flops, self.train_time_s)


def run_state(run_dir: Path) -> RunState | None:
    """Counters of the newest intact checkpoint in ``run_dir`` (None when there is none)."""
    if not Path(run_dir).is_dir():
        return None
    path, problems = ckpt.newest_valid(Path(run_dir))
    for problem in problems:
        log.warning("skipping damaged checkpoint: %s", problem)
    if path is None:
        return None
    c = ckpt.read_counters(path)
    return RunState(c.step, c.flops, c.tokens, c.train_time_s, path.name, c.head_flops)


def is_finished(run_dir: Path, budget: Budget) -> bool:
    state = run_state(run_dir)
    return state is not None and state.progress(budget) >= 1.0


# --- study.json ------------------------------------------------------------------------------------------

def _value(key: str, value: Any) -> Any:
    """A ``study.json`` setting as what it sets: ``--set`` overrides as the config they give, so
    ``optim.lr=4e-3`` and ``optim.lr=0.004`` are the same setting."""
    return apply_overrides({}, list(value)) if key == "train_overrides" and isinstance(value, list) else value


class StudyFile:
    """``OUT/study.json``: settings, grid, skipped pairs, and every run's status, rewritten atomically."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.path = self.out / "study.json"
        self.data: dict[str, Any] = {}

    def load_or_start(self, settings: StudySettings, grid: Grid, command: str | None) -> None:
        if self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{self.path}: not a readable study file ({exc}); choose another --out") from exc
            old = self.data.get("settings", {})
            new = settings.to_dict()
            # the plan sets them from the stored measurements (a curve study's budgets: from its relative ones)
            planned = ("budget", "budgets") if new.get("hours") is not None else ()
            diffs = sorted(k for k in set(old) | set(new)
                           if k not in (*MUTABLE_SETTINGS, *planned) and _value(k, old.get(k)) != _value(k, new.get(k)))
            if diffs and not self.trained_anything():  # nothing trained, nothing to protect
                log.info("%s holds a study that trained nothing yet; starting it over with these settings", self.out)
                self.data = {"format": STUDY_FORMAT, "created": time.time(), "runs": {}, "baselines": {}}
            elif diffs:
                shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diffs[:4])
                raise ConfigError(f"{self.out} holds a study with different training settings ({shown}); "
                                  f"rerun with the same settings to resume it, or choose another --out")
            log.info("resuming the study in %s", self.out)
        else:
            self.data = {"format": STUDY_FORMAT, "created": time.time(), "runs": {}, "baselines": {}}
        self.data["settings"] = settings.to_dict()
        self.data["grid"] = [asdict(c) for c in grid.cells]
        self.data["skipped"] = [asdict(s) for s in grid.skipped]
        if command is not None:
            self.data["command"] = command
        self.save()

    def trained_anything(self) -> bool:
        """Whether a run of this study has a checkpoint (else its settings may still change)."""
        from zoo.train import checkpoint as ckpt

        runs = self.out / "runs"
        return runs.is_dir() and any(ckpt.steps(d) for d in runs.iterdir() if d.is_dir())

    def run(self, name: str) -> dict[str, Any]:
        return self.data.setdefault("runs", {}).setdefault(name, {})

    def update(self, name: str, section: str = "runs", **values: Any) -> None:
        self.data.setdefault(section, {}).setdefault(name, {}).update(values)
        self.save()

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.data["updated"] = time.time()
        fileio.write_json(self.path, self.data, default=str)


def study_dir(out: str | Path) -> Path:
    """``--out`` of a study as an absolute path; a dangling symbolic link is refused first (resolving it
    would name its missing target, which the study would then create)."""
    markers.refuse_dangling_link(Path(out))
    return Path(out).resolve()


@contextmanager
def claim_study(out: Path) -> Iterator[StudyLock]:
    """Lock ``out`` for one ``zoo compare`` and mark it as a study: a new or empty directory, a study
    (or a study of an earlier version), nothing else; a second ``zoo compare`` into it is refused."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a directory; choose a new or empty directory for the study")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock = StudyLock(out).acquire()
    try:
        found = markers.identify(out)
        if found.kind not in ("empty", "study", "legacy-study"):
            raise ConfigError(f"--out {out} is not a zoo study directory (it holds {found.what}); choose a new or "
                              f"empty directory so that nothing in it is overwritten")
        if found.kind != "study":
            markers.write_marker(out, "study")  # first: the directory is a study from now on
        lock.record()
        yield lock
    except BaseException:
        if created and not any(n not in (".lock", markers.STUDY_MARKER) for n in os.listdir(out)):
            shutil.rmtree(out, ignore_errors=True)  # a refused or failed new study leaves nothing behind
        raise
    finally:
        lock.release()
