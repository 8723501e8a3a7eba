"""Named study presets: every setting of a ``zoo compare`` study in one typed record.

``zoo compare --preset NAME`` starts from a preset's values; any option given explicitly on the
command line replaces the preset's value for that option (``--set`` and ``--bench-set`` are added
after the preset's own). Paths in a preset are relative to the directory the command runs from.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from zoo.errors import ConfigError

# The training recipe every run of the cpu-hour study uses (the ``--set`` overrides): pre-LN backbone
# without dropout or linear-layer biases, a high peak learning rate with a long warmup and linear decay.
CPU_HOUR_RECIPE: tuple[str, ...] = (
    "model.dropout=0",
    "model.attention_dropout=0",
    "model.bias=false",
    "optim.lr=4e-3",
    "optim.schedule=linear",
    "optim.warmup=0.3",
    "train.precision=auto",
    "data.on_decode_error=replace",
)

# The compute-curve study's recipe: the cpu-hour recipe less its schedule. A curve study trains trapezoid trunks
# (constant learning rate, then a cooldown of --cooldown of each budget) with an absolute warmup, the same for every
# budget (by default 5% of the shortest budget's steps, or --set optim.warmup_steps=N): the study sets
# optim.schedule and optim.warmup itself (zoo.compare.branches).
CURVE_RECIPE: tuple[str, ...] = tuple(o for o in CPU_HOUR_RECIPE
                                      if o.partition("=")[0] not in ("optim.schedule", "optim.warmup"))


@dataclass(frozen=True)
class StudyPreset:
    """The values a preset gives the ``zoo compare`` options of the same name."""

    name: str
    summary: str
    objectives: tuple[str, ...]
    backbones: tuple[str, ...]
    seeds: int
    budget: str | None
    data: str | None
    size: str
    seq_len: int | None
    batch_size: int | None
    vocab_size: int | None
    overrides: tuple[str, ...]  # --set, every run
    evals: int
    suite: str  # comma-separated suites, each scored on every model
    tasks: tuple[str, ...]  # fine-tuning tasks of the fine-tuning suite(s)
    data_dir: str | None  # a directory holding one folder per suite (``blimp/``, ``glue/``)
    bench_overrides: tuple[str, ...]  # --bench-set
    bench_seeds: int
    max_train_examples: int | None
    max_eval_examples: int | None
    max_pairs: int | None  # pairs per paradigm of a zero-shot suite
    hours: float | None = None  # size the study by wall time (``--hours``) instead of ``budget`` (then None)
    budgets: tuple[str, ...] = ()  # a curve study (``--budgets``); with ``hours``, relative budgets (1, 2, 4, 8)
    cooldown: float | None = None  # a curve study's cooldown fraction (None: the option's default)

    def options(self) -> dict[str, Any]:
        """Option name (the ``zoo compare`` parameter) -> value, lists joined as the CLI spells them."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("name", "summary"):
                continue
            value = getattr(self, f.name)
            if f.name in ("objectives", "backbones", "tasks", "budgets"):
                value = ",".join(value)
            out[f.name] = value
        return out

    def describe(self) -> list[str]:
        """The preset as command-line options, one per line (``--help`` and the docs show them)."""
        shown = []
        for key, value in self.options().items():
            if isinstance(value, tuple):
                shown.extend(f"--{_flag(key)} {v}" for v in value)
            elif value is not None and value != "":
                shown.append(f"--{_flag(key)} {value}")
        return shown


def _flag(key: str) -> str:
    return {"overrides": "set", "bench_overrides": "bench-set"}.get(key, key.replace("_", "-"))


CPU_HOUR = StudyPreset(
    name="cpu-hour",
    summary="the primary contrast clm vs mlm on one pre-LN gpt architecture (4 layers x 128, a 2,048-entry "
            "vocabulary: the output layer 22% of clm's FLOPs), 7 paired seeds, English Wikipedia, BLiMP zero-shot; "
            "the budget is planned so that the whole study takes one hour on this machine.",
    objectives=("clm", "mlm"),
    backbones=("gpt",),
    seeds=7,  # the fewest with which the exact sign-flip test over seeds can reach p < 0.05 (2/2^7)
    budget=None,
    hours=1.0,
    data="../shared/data/corpus/en-wiki",
    size="tiny-deep",
    seq_len=128,
    batch_size=16,
    vocab_size=2048,
    overrides=CPU_HOUR_RECIPE,
    evals=4,
    suite="blimp",
    tasks=(),
    data_dir="../shared/data/blimp",
    bench_overrides=(),
    bench_seeds=1,
    max_train_examples=None,
    max_eval_examples=None,
    max_pairs=None,  # every pair if the plan affords it; the plan says what it drops
)

COMPUTE_CURVE = StudyPreset(
    name="compute-curve",
    summary="clm vs mlm on cpu-hour's architecture at four budgets (1:2:4:8), each a cooldown branch of one "
            "trapezoid trunk per objective and seed, 6 paired seeds, English Wikipedia, BLiMP zero-shot; the budgets "
            "are planned so that the whole study takes an hour and a half on this machine.",
    objectives=("clm", "mlm"),
    backbones=("gpt",),
    # the fewest with which the exact sign-flip test over seeds can reach p < 0.05 for one contrast (2/2^6, before
    # Holm's adjustment); a curve costs more per seed than one run
    seeds=6,
    budget=None,
    hours=1.5,
    budgets=("1", "2", "4", "8"),  # relative: the plan chooses the top budget
    cooldown=0.2,
    data=CPU_HOUR.data,
    size=CPU_HOUR.size,
    seq_len=CPU_HOUR.seq_len,
    batch_size=CPU_HOUR.batch_size,
    vocab_size=CPU_HOUR.vocab_size,
    overrides=CURVE_RECIPE,
    evals=4,
    suite=CPU_HOUR.suite,
    tasks=(),
    data_dir=CPU_HOUR.data_dir,
    bench_overrides=(),
    bench_seeds=1,
    max_train_examples=None,
    max_eval_examples=None,
    max_pairs=None,
)

PRESETS: dict[str, StudyPreset] = {p.name: p for p in (CPU_HOUR, COMPUTE_CURVE)}


def get_preset(name: str) -> StudyPreset:
    """The preset called ``name``; a ConfigError naming the known ones otherwise."""
    if name not in PRESETS:
        raise ConfigError(f"--preset: unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    return PRESETS[name]
