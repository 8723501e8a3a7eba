"""Named study presets, each one typed ``StudySettings`` value, and the merge of command-line options into one.

``zoo compare --preset NAME`` starts from a preset's settings; any option given explicitly on the command
line replaces the preset's value for that option (``--set`` and ``--bench-set`` are added after the
preset's own), and sizing options replace each other (``merge``). Without a preset the options fill
``StudySettings``' own defaults. Paths in a preset are relative to the directory the command runs from.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields, replace
from typing import Any

from zoo import recipes
from zoo.compare.study import BenchOptions, StudySettings, pair_backbones, split_list
from zoo.errors import ConfigError
from zoo.train.config import Budget
from zoo.typed_config import coerce

# The training recipe every run of the cpu-hour study uses (the ``--set`` overrides): the shipped cpu-hour recipe's
# (zoo/recipes/cpu-hour.toml: pre-LN backbone without dropout or linear-layer biases, a high peak learning rate with
# a long warmup and linear decay; its shape, vocabulary and budget are the preset's own), and undecodable bytes of
# the corpus replaced rather than refused.
CPU_HOUR_RECIPE: tuple[str, ...] = (*recipes.as_overrides(recipes.load("cpu-hour"), ("model", "optim", "train.precision")),
                                    "data.on_decode_error=replace")

# The compute-curve study's recipe: the cpu-hour recipe less its schedule. A curve study trains trapezoid trunks
# (constant learning rate, then a cooldown of --cooldown of each budget) with an absolute warmup, the same for every
# budget (by default 5% of the shortest budget's steps, or --set optim.warmup_steps=N): the study sets
# optim.schedule and optim.warmup itself (zoo.compare.branches).
CURVE_RECIPE: tuple[str, ...] = tuple(o for o in CPU_HOUR_RECIPE
                                      if o.partition("=")[0] not in ("optim.schedule", "optim.warmup"))


@dataclass(frozen=True)
class Option:
    """A ``zoo compare`` option that sets a study setting: the click parameter, the setting's path
    (``bench.<field>`` for ``BenchOptions``), how the command-line value becomes the setting's value,
    and how the setting is spelled back as options (``--help`` lists the presets so)."""

    param: str
    path: str
    to_value: Callable[[Any], Any] = lambda v: v
    to_args: Callable[[Any], list[str]] = lambda v: [str(v)]  # the option's arguments, one per flag
    adds: bool = False  # --set/--bench-set: added after the base's values

    @property
    def flag(self) -> str:
        return {"overrides": "--set", "bench_overrides": "--bench-set"}.get(self.param, "--" + self.param.replace("_", "-"))


def _seeds(n: int) -> list[int]:
    if n < 1:
        raise ConfigError(f"--seeds must be at least 1, got {n}")
    return list(range(n))


OPTIONS: tuple[Option, ...] = (
    Option("objectives", "objectives", lambda v: split_list(v, "--objectives"), lambda v: [",".join(v)]),
    Option("backbones", "backbones", lambda v: split_list(v, "--backbones"), lambda v: [",".join(v)]),
    Option("seeds", "seeds", _seeds, lambda v: [str(len(v))]),
    Option("budget", "budget", lambda v: coerce(v, Budget, "--budget"), lambda v: [v.to_text()]),
    Option("hours", "hours"),
    Option("budgets", "budgets", lambda v: split_list(v, "--budgets"), lambda v: [",".join(v)]),
    Option("cooldown", "cooldown"),
    Option("data", "data"),
    Option("size", "size"),
    Option("seq_len", "seq_len"),
    Option("batch_size", "batch_size"),
    Option("vocab_size", "vocab_size"),
    Option("overrides", "train_overrides", list, list, adds=True),
    Option("evals", "evals"),
    Option("suite", "bench.suite"),
    Option("tasks", "bench.tasks", lambda v: split_list(v, "--tasks") or None, lambda v: [",".join(v)]),
    Option("data_dir", "bench.data_dir"),
    Option("bench_overrides", "bench.overrides", list, list, adds=True),
    Option("bench_seeds", "bench.seeds"),
    Option("max_train_examples", "bench.max_train_examples"),
    Option("max_eval_examples", "bench.max_eval_examples"),
    Option("max_pairs", "bench.max_pairs"),
    Option("device", "bench.device"),
    Option("no_baseline", "bench.baselines", lambda v: not v, lambda v: [] if v else [None]),  # a bare flag
    Option("statistic", "bench.statistic"),
)
BY_PATH = {o.path: o for o in OPTIONS}


def given_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """The study settings the command line gives (path -> value): every option of ``OPTIONS`` that is
    set (not None, not an unset flag, not an empty ``--set`` list), converted to its setting's type."""
    return {o.path: o.to_value(params[o.param]) for o in OPTIONS
            if params.get(o.param) is not None and params[o.param] is not False and params[o.param] != ()}


def merge(base: StudySettings | None, given: Mapping[str, Any]) -> StudySettings:
    """``base`` (a preset's settings; None: ``StudySettings``' defaults) with the ``given`` settings
    (``given_options``): a given value replaces the base's, ``--set``/``--bench-set`` add to the base's. A
    given ``--budget`` replaces the base's ``--hours`` and curve, a given ``--hours`` the base's budget,
    given absolute ``--budgets`` the base's hours. Absolute ``--budgets`` make their longest the budget."""
    from zoo.compare.budgets import is_relative, split_budgets

    top: dict[str, Any] = {}
    bench: dict[str, Any] = {}
    if base is not None:
        base = copy.deepcopy(base)
        top = {f.name: getattr(base, f.name) for f in fields(StudySettings) if f.name != "bench"}
        bench = {f.name: getattr(base.bench, f.name) for f in fields(BenchOptions)}
        if "budget" in given and "hours" not in given:
            top["hours"] = None
        if "hours" in given and "budget" not in given:
            top["budget"] = None
        if "budget" in given and "budgets" not in given:
            top["budgets"] = []
        if "budgets" in given and "hours" not in given and not is_relative(",".join(given["budgets"])):
            top["hours"] = None
    for path, value in given.items():
        section, name = (bench, path.removeprefix("bench.")) if path.startswith("bench.") else (top, path)
        section[name] = [*section.get(name, []), *value] if BY_PATH[path].adds else value
    budgets, budget, hours = top.get("budgets") or [], top.get("budget"), top.get("hours")
    if budgets and (hours is None or budget):  # absolute budgets (relative ones: checked by StudySettings)
        budgets = top["budgets"] = split_budgets(",".join(budgets))  # 1e13,2e13flops: the unit given once
        if budget:
            raise ConfigError("--budget and --budgets both set the training budget: give --budget for runs at "
                              "one budget, or --budgets for models at several")
        top["budget"] = max((coerce(b, Budget, "--budgets") for b in budgets), key=lambda b: b.value)
    if top.get("budget") is not None and hours is not None:
        raise ConfigError(f"--budget {top['budget'].to_text()} and --hours {hours:g} both size the runs; give one "
                          "(--hours plans the budget that fits the hours)")
    if not top.get("objectives") or not (top.get("budget") or hours):
        raise ConfigError("zoo compare: pass --objectives and --budget (or --hours) to train a study, or name run "
                          "directories")
    named = pair_backbones(top["objectives"])
    if named is not None:  # every objective names its backbone: --backbones has nothing to add
        if "backbones" in given:
            raise ConfigError("--backbones: every --objectives item names its backbone (OBJECTIVE@BACKBONE); "
                              "leave --backbones out")
        top["backbones"] = named
    return StudySettings(**top, bench=BenchOptions(**bench))


def bench_options(given: Mapping[str, Any]) -> BenchOptions:
    """The benchmark options the command line gives (``given_options``), the rest their defaults."""
    return BenchOptions(**{p.removeprefix("bench."): v for p, v in given.items() if p.startswith("bench.")})


@dataclass(frozen=True)
class StudyPreset:
    """A named study: its settings, complete (``zoo compare --preset NAME`` runs it as is)."""

    name: str
    summary: str
    settings: StudySettings

    def describe(self) -> list[str]:
        """The preset as command-line options, one per line (``--help`` and the docs show them): every
        setting other than its default, and a curve study's cooldown."""
        shown = []
        for o in OPTIONS:
            section, name = (self.settings.bench, o.path.removeprefix("bench.")) if o.path.startswith("bench.") else (self.settings, o.path)
            value = getattr(section, name)
            if value in (None, "", []) or (value == _default(type(section), name)
                                           and not (o.param == "cooldown" and self.settings.budgets)):
                continue
            shown.extend(o.flag if a is None else f"{o.flag} {a}" for a in o.to_args(value))
        return shown


def _default(cls: type, name: str) -> Any:
    """The default of dataclass ``cls``'s field ``name``."""
    f = next(f for f in fields(cls) if f.name == name)
    return f.default_factory() if f.default_factory is not MISSING else f.default


CPU_HOUR = StudyPreset(
    name="cpu-hour",
    summary="the primary contrast clm vs mlm on one pre-LN gpt architecture (4 layers x 128, a 2,048-entry "
            "vocabulary: the output layer 22% of clm's FLOPs), 7 paired seeds, English Wikipedia, BLiMP zero-shot; "
            "the budget is planned so that the whole study takes one hour on this machine.",
    settings=StudySettings(
        objectives=["clm", "mlm"],
        backbones=["gpt"],
        seeds=list(range(7)),  # the fewest with which the exact sign-flip test over seeds can reach p < 0.05 (2/2^7)
        hours=1.0,
        data="../shared/data/corpus/en-wiki",
        size="tiny-deep",
        seq_len=128,
        batch_size=16,
        vocab_size=2048,
        train_overrides=list(CPU_HOUR_RECIPE),
        evals=4,
        # every pair if the plan affords it; the plan says what it drops
        bench=BenchOptions(suite="blimp", data_dir="../shared/data/blimp"),
    ),
)

COMPUTE_CURVE = StudyPreset(
    name="compute-curve",
    summary="clm vs mlm on cpu-hour's architecture at four budgets (1:2:4:8), each a cooldown branch of one "
            "trapezoid trunk per objective and seed, 6 paired seeds, English Wikipedia, BLiMP zero-shot; the budgets "
            "are planned so that the whole study takes an hour and a half on this machine.",
    settings=replace(
        CPU_HOUR.settings,
        # the fewest with which the exact sign-flip test over seeds can reach p < 0.05 for one contrast (2/2^6,
        # before Holm's adjustment); a curve costs more per seed than one run
        seeds=list(range(6)),
        hours=1.5,
        budgets=["1", "2", "4", "8"],  # relative: the plan chooses the top budget
        cooldown=0.2,
        train_overrides=list(CURVE_RECIPE),
    ),
)

PRESETS: dict[str, StudyPreset] = {p.name: p for p in (CPU_HOUR, COMPUTE_CURVE)}


def get_preset(name: str) -> StudyPreset:
    """The preset called ``name``; a ConfigError naming the known ones otherwise."""
    if name not in PRESETS:
        raise ConfigError(f"--preset: unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    return PRESETS[name]
