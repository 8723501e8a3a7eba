"""``zoo`` command line. Commands are thin: parse options, build a config, call the library."""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any

import click

from zoo import __version__
from zoo.errors import ConfigError, ZooError
from zoo.sizes import SIZES


class ZooGroup(click.Group):
    """Turns ``ZooError`` (bad input, config or plugin) into a one-line message and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        from zoo import console

        try:
            return super().invoke(ctx)
        except ZooError as exc:
            if ctx.obj and ctx.obj.get("verbose"):
                console.print_traceback()
            if not getattr(exc, "quiet", False):
                console.print_error(str(exc))
            ctx.exit(getattr(exc, "exit_code", 2))  # an interrupted training: 128 + the signal
        except OSError as exc:  # a path the user gave cannot be read or written (permissions, full disk, ...)
            if ctx.obj and ctx.obj.get("verbose"):
                console.print_traceback()
            where = f"{exc.filename}: " if exc.filename else ""
            console.print_error(f"{where}{exc.strerror or exc}")
            ctx.exit(1)


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="objective-zoo")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging and full tracebacks.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """objective-zoo: pretrain language models with pluggable objectives on pluggable backbones,
    and compare the objectives fairly at equal compute.

    \b
      zoo train --objective mlm+nsp --backbone bert
      zoo bench runs/<run> --suite glue
      zoo compare runs/a runs/b
      zoo list
    """
    from zoo import console

    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    console.setup_logging(verbose)


@cli.command("list")
def list_cmd() -> None:
    """Objectives, backbones and tasks, their origin, and which objective trains which backbone."""
    from zoo import console
    from zoo.listing import listing

    result = listing()
    titles = {"objective": "Objectives", "backbone": "Backbones", "task": "Tasks"}
    for kind, rows in result.plugins.items():
        console.table(titles[kind], ["name", "origin", "note"] if any(r[2] for r in rows) else ["name", "origin"],
                      [r if r[2] else r[:2] for r in rows] or [("(none)", "")])
    if result.matrix:
        backbones = sorted({b for row in result.matrix.values() for b in row})
        reasons: list[str] = []
        cells = []
        for obj, row in result.matrix.items():
            line = [obj]
            for bb in backbones:
                verdict = row[bb]
                if verdict != "yes":
                    reasons.append(f"{obj} x {bb}: {verdict}")
                    verdict = verdict.split(":", 1)[0] + f" [{len(reasons)}]"
                line.append(verdict)
            cells.append(line)
        console.table("Compatibility (objective x backbone)", ["objective", *backbones], cells)
        for i, reason in enumerate(reasons, 1):
            console.text(f"  [{i}] {reason}")

@cli.command("train")
@click.option("--objective", help="Objective name or composition, e.g. mlm+nsp or mlm:1.0+nsp:0.5.")
@click.option("--backbone", help="Backbone name (see zoo list).")
@click.option("--size", type=click.Choice(list(SIZES)), help="Model size preset.")
@click.option("--data", "data", help="Corpus: file, directory or hf:NAME[:CONFIG][@split]. Default: embedded corpus.")
@click.option("--text-field", help="JSON lines field holding the text.")
@click.option("--on-decode-error", type=click.Choice(["error", "skip", "replace"]),
              help="Invalid UTF-8 / NUL bytes in the corpus: fail (default), skip the line, or replace them.")
@click.option("--init", "init", help="Start from trained weights: a transformers directory (BERT, GPT-2), "
              "hf:NAME[@REVISION], or a zoo run or step directory; backbone, sizes and tokenizer come from it.")
@click.option("--tokenizer", "tokenizer_path", help="Reuse this tokenizer.json instead of training one.")
@click.option("--budget", help="10m | 90s | 2000steps | 3e14flops | 5e6tokens.")
@click.option("--seq-len", type=int)
@click.option("--batch-size", type=int, help="Rows per micro-batch per process.")
@click.option("--vocab-size", type=int, help="Vocabulary size of the tokenizer trained for this run.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]))
@click.option("--checkpoint-every", type=int,
              help="Steps between checkpoints (0: every train.checkpoint_minutes of wall time and at the end).")
@click.option("--out", help="Run directory (default runs/<backbone>-<objective>).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML run config.")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE", help="Override any config key.")
@click.option("--resume", is_flag=True, help="Continue from the newest intact checkpoint (also automatic).")
@click.option("--resume-from", help="Continue from this checkpoint directory (error if it is damaged).")
@click.option("--seed", type=int)
@click.option("--strategy", type=click.Choice(["ddp", "fsdp"]), help="Multi-process strategy.")
@click.option("--nproc", type=int, default=1, show_default=True, help="Processes (wraps torchrun).")
@click.option("--dry-run", is_flag=True, help="Print the resolved config, parameters and FLOPs per step; train nothing.")
@click.pass_context
def train_cmd(ctx: click.Context, config_path: str | None, overrides: tuple[str, ...], resume: bool,
              resume_from: str | None, nproc: int, dry_run: bool, **flags: Any) -> None:
    """Pretrain a backbone with an objective."""
    if nproc < 1:
        from zoo.errors import ConfigError

        raise ConfigError(f"--nproc must be at least 1 (processes on this machine), got {nproc}")
    if nproc > 1:
        ctx.exit(_torchrun(nproc))
    from zoo import console
    from zoo.train.config import resolve
    from zoo.typed_config import apply_overrides, dump_toml, load_toml, merge, to_dict

    data: dict[str, Any] = load_toml(config_path) if config_path else {}
    data = merge(data, _train_flags(flags))
    cfg = resolve(apply_overrides(data, list(overrides)))
    if dry_run:
        from zoo.train.trainer import plan

        p = plan(cfg)
        console.text(dump_toml(to_dict(cfg)))
        console.train_summary([
            ("parameters", f"{p.params:,} ({p.params_no_embeddings:,} without embeddings)"),
            ("tokens per step", f"{p.tokens_per_step:,} ({p.accum} accumulation step(s))"),
            ("FLOPs per step (train)", f"{p.flops_per_step:.3e}"),
            ("budget", str(p.budget)),
        ])
        return
    from zoo.train.trainer import train

    title = f"{cfg.backbone} {cfg.objective}"
    with console.TrainProgress(title) as progress:
        result = train(cfg, resume=resume, resume_from=resume_from, callback=progress)
    rows = [("run", str(result.run_dir)), ("steps", str(result.step)), ("tokens", f"{result.tokens:,}"),
            ("FLOPs", f"{result.flops:.3e}"), ("train time", f"{result.train_time_s:.1f}s"),
            ("parameters", f"{result.params:,}")]
    for key in ("loss", "tokens_per_s"):
        if key in result.final:
            rows.append((f"train {key}", f"{result.final[key]:.4g}"))
    for key, value in (result.eval or {}).items():
        if key not in ("kind", "step", "tokens", "flops"):
            rows.append((f"eval {key}", f"{value:.4g}"))
    console.train_summary(rows)


@cli.command("bench")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--suite", help="Benchmark suite: glue, clue, a plugin's (fine-tuning), or blimp, climp (zero-shot "
                               "minimal pairs). Default: from --tasks, else glue.")
@click.option("--tasks", help="Comma-separated task names (cola,sst2,mrpc,... / afqmc,tnews,...) or all.")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False),
              help="Official files (GLUE: DIR/SST-2/train.tsv ..., CLUE: DIR/tnews_public/train.json ..., "
                   "BLiMP: DIR/<UID>.jsonl, CLiMP: DIR/<paradigm>_1000.csv). Default: the Hugging Face hub.")
@click.option("--seeds", type=int, default=1, show_default=True, help="Fine-tunes per task (seeds 0..N-1); the median is reported.")
@click.option("--epochs", type=int, help="Recipe: training epochs.")
@click.option("--lr", type=float, help="Recipe: peak learning rate.")
@click.option("--batch-size", type=int, help="Recipe: training batch size.")
@click.option("--max-length", type=int, help="Recipe: maximum tokens per example.")
@click.option("--pooling", type=click.Choice(["auto", "cls", "last", "mean"]), help="Recipe: how the head reads the sequence.")
@click.option("--attention", type=click.Choice(["auto", "bidirectional", "causal"]),
              help="Recipe: fine-tuning attention (auto: bidirectional if any objective part trained bidirectionally).")
@click.option("--set", "overrides", multiple=True, metavar="[TASK.]KEY=VALUE", help="Override a recipe key (for one task).")
@click.option("--max-train-examples", type=int, help="Use at most this many training examples per task.")
@click.option("--max-eval-examples", type=int,
              help="Use at most this many evaluation examples per split (minimal pairs: the first N of each paradigm).")
@click.option("--device", default="auto", show_default=True, help="auto (cuda if available), cpu, cuda, cuda:1, ...")
@click.option("--from-scratch", is_flag=True, help="Also benchmark a randomly initialised copy of each model.")
@click.option("--no-cache", is_flag=True, help="Recompute results even if cached in <run>/bench-cache.")
@click.option("--step", type=int, help="Benchmark this checkpoint step of each run (default: the newest).")
@click.option("--pll", type=click.Choice(["word-l2r", "original"]), default="word-l2r", show_default=True,
              help="Minimal pairs: pseudo-log-likelihood of bidirectional models, with within-word masking "
                   "(Kauf & Ivanova 2023) or the original (Salazar et al. 2020).")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True,
              help="Minimal pairs: scoring precision (bf16 autocast is faster on CPUs and GPUs with bf16 "
                   "instructions; fp32 is exact).")
@click.option("--scorer", type=click.Choice(["causal", "causal-unigram", "causal-start"]),
              help="Minimal pairs: how a next-token head reads a sentence (default: the context it trained in; "
                   "see docs/benchmarks.md).")
def bench_cmd(runs: tuple[str, ...], suite: str | None, tasks: str | None, data_dir: str | None, seeds: int,
              overrides: tuple[str, ...], max_train_examples: int | None, max_eval_examples: int | None,
              device: str, from_scratch: bool, no_cache: bool, step: int | None, pll: str, precision: str,
              scorer: str | None, **recipe_flags: Any) -> None:
    """Fine-tune runs (or exported Hugging Face directories) on GLUE / CLUE tasks and report the official metrics,
    or score them zero-shot on BLiMP / CLiMP minimal pairs."""
    from zoo import console
    from zoo.benchmarks.bench import run_bench
    from zoo.benchmarks.minimal_pairs import SUITES
    from zoo.benchmarks.source import open_source

    flags = [f"{k}={v}" if not isinstance(v, str) else f'{k}="{v}"' for k, v in recipe_flags.items() if v is not None]
    zero_shot_only = [f for f, v in (("--pll", pll != "word-l2r"), ("--precision", precision != "fp32"),
                                     ("--scorer", scorer)) if v]
    if suite in SUITES:
        fine_tuning = [f for f, v in (("--tasks", tasks), ("--seeds", seeds != 1), ("--set", overrides),
                                      ("--max-train-examples", max_train_examples)) if v]
        fine_tuning += [f"--{k.replace('_', '-')}" for k, v in recipe_flags.items() if v is not None]
        if fine_tuning:
            raise ConfigError(f"{', '.join(fine_tuning)}: fine-tuning options do not apply to the zero-shot suite "
                              f"{suite}")
        _bench_minimal_pairs(runs, suite, data_dir, max_eval_examples, pll, precision, from_scratch, device, step,
                             not no_cache, scorer)
        return
    if zero_shot_only:
        raise ConfigError(f"{', '.join(zero_shot_only)}: apply to the zero-shot suites ({', '.join(SUITES)}) only")
    models = [open_source(r, step) for r in runs] if step is not None else list(runs)
    with console.BenchProgress() as progress:
        result = run_bench(models, suite=suite, tasks=tasks, data_dir=data_dir, seeds=seeds,
                           overrides=[*flags, *overrides], max_train_examples=max_train_examples,
                           max_eval_examples=max_eval_examples, device=device, from_scratch=from_scratch,
                           use_cache=not no_cache, progress=progress)
    columns, rows = result.table()
    console.table(f"{result.suite.upper()}: median over {len(result.seeds)} seed(s), x100", columns, rows,
                  caption="cells: median, then min-max over seeds when they differ; saved in <run>/bench.json, bench.md")


def _bench_minimal_pairs(runs: tuple[str, ...], suite: str, data_dir: str | None, max_eval_examples: int | None,
                         pll: str, precision: str, from_scratch: bool, device: str, step: int | None,
                         use_cache: bool = True, scorer: str | None = None) -> None:
    from zoo import console
    from zoo.benchmarks.zeroshot import run_minimal_pairs

    with console.BenchProgress() as progress:
        result = run_minimal_pairs(list(runs), suite, data_dir=data_dir, max_eval_examples=max_eval_examples,
                                   pll=pll, precision=precision, from_scratch=from_scratch, device=device, step=step,
                                   progress=progress, use_cache=use_cache, scorer=scorer)
    columns, rows = result.table()
    console.table(f"{suite.upper()}: minimal-pair accuracy x100 by phenomenon", columns, rows,
                  caption="scorer in brackets; headline: macro average over paradigms; per-pair correctness "
                          "in <run>/bench.json")


def _compare_presets() -> list[str]:
    from zoo.compare.presets import PRESETS

    return list(PRESETS)


@cli.command("compare")
@click.argument("runs", nargs=-1, type=click.Path(exists=True, file_okay=False))
@click.option("--objectives", help="Objectives to train and compare, e.g. mlm,mlm+nsp,span,clm,prefix.")
@click.option("--backbones", default="bert,gpt", show_default=True, help="Backbones; incompatible pairs are skipped.")
@click.option("--budget", help="Training budget of every run: 3e14flops | 5e6tokens | 2000steps | 10m.")
@click.option("--seeds", type=int, default=5, show_default=True, help="Pretraining seeds (0..N-1) per pair.")
@click.option("--data", help="Pretraining corpus: file, directory or hf:NAME. Default: embedded corpus.")
@click.option("--size", type=click.Choice(list(SIZES)), default="mini",
              show_default=True, help="Model size preset of every run.")
@click.option("--seq-len", type=int)
@click.option("--batch-size", type=int, help="Pretraining rows per micro-batch.")
@click.option("--vocab-size", type=int, help="Vocabulary size of each family's tokenizer.")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE", help="Training config override (every run).")
@click.option("--evals", type=int, default=8, show_default=True, help="Validation points per run (loss curves).")
@click.option("--suite", help="Benchmark suite(s), comma-separated: glue, clue, blimp, climp (default: from --tasks, "
              "else glue); e.g. blimp,glue scores every model on both.")
@click.option("--tasks", help="Comma-separated benchmark tasks, e.g. sst2,cola,mrpc.")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False),
              help="Official benchmark files (see zoo bench); with several suites, a directory with one folder per "
                   "suite (blimp/, glue/).")
@click.option("--bench-set", "bench_overrides", multiple=True, metavar="[TASK.]KEY=VALUE", help="Fine-tuning recipe override.")
@click.option("--bench-seeds", type=int, default=1, show_default=True, help="Fine-tunes per model (median taken).")
@click.option("--max-train-examples", type=int, help="Fine-tune on at most this many examples per task.")
@click.option("--max-eval-examples", type=int, help="Evaluate on at most this many examples per split.")
@click.option("--device", default="auto", show_default=True, help="Fine-tuning device.")
@click.option("--no-baseline", is_flag=True, help="Skip the from-scratch baseline.")
@click.option("--statistic", type=click.Choice(["median", "mean"]), default="median", show_default=True)
@click.option("--max-pairs", type=int, help="Pairs per paradigm of a zero-shot suite (default: --max-eval-examples).")
@click.option("--preset", help="Start from a named study preset (" + ", ".join(_compare_presets()) + "); options "
              "given explicitly replace its values, --set/--bench-set add to them.")
@click.option("--out", default="studies/study", show_default=True, help="Study directory (study.json, runs, report).")
@click.pass_context
def compare_cmd(ctx: click.Context, runs: tuple[str, ...], objectives: str | None, backbones: str, budget: str | None,
                seeds: int, data: str | None, size: str, seq_len: int | None, batch_size: int | None,
                vocab_size: int | None, overrides: tuple[str, ...], evals: int, suite: str | None, tasks: str | None,
                data_dir: str | None, bench_overrides: tuple[str, ...], bench_seeds: int,
                max_train_examples: int | None, max_eval_examples: int | None, max_pairs: int | None, device: str,
                no_baseline: bool, statistic: str, preset: str | None, out: str) -> None:
    """Which objective is better at equal compute? Train the (objective x backbone x seed) grid at one
    budget, benchmark every run and a from-scratch baseline, report intervals and paired tests.

    \b
      zoo compare --objectives mlm,mlm+nsp,span,clm --budget 3e14flops --tasks sst2,cola,mrpc --data-dir glue/
      zoo compare --preset cpu-hour --out studies/cpu-hour     # every setting from the preset
      zoo compare --suite blimp,glue --tasks sst2 --data-dir data/ ...   # several suites (data/blimp, data/glue)
      zoo compare runs/a runs/b        # existing runs: benchmark what is missing and report
    """
    import shlex
    from pathlib import Path

    from zoo import console
    from zoo.compare import report
    from zoo.compare.runner import compare_runs, run_study
    from zoo.compare.study import BenchOptions, StudySettings, split_list
    from zoo.errors import ConfigError

    if preset is not None:
        from zoo.compare.presets import get_preset

        if runs:
            raise ConfigError("--preset trains a study; it does not apply to existing run directories")
        values = get_preset(preset).options()
        given = {k for k in values if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT}
        for key, value in values.items():
            if key in ("overrides", "bench_overrides"):
                value = (*value, *(overrides if key == "overrides" else bench_overrides))
            elif key in given:
                continue
            ctx.params[key] = value
        p = ctx.params
        objectives, backbones, budget, seeds, data, size = (p["objectives"], p["backbones"], p["budget"], p["seeds"],
                                                            p["data"], p["size"])
        seq_len, batch_size, vocab_size, overrides, evals = (p["seq_len"], p["batch_size"], p["vocab_size"],
                                                             p["overrides"], p["evals"])
        suite, tasks, data_dir, bench_overrides, bench_seeds = (p["suite"], p["tasks"], p["data_dir"],
                                                                p["bench_overrides"], p["bench_seeds"])
        max_train_examples, max_eval_examples, max_pairs = (p["max_train_examples"], p["max_eval_examples"],
                                                            p["max_pairs"])
    bench = BenchOptions(suite=suite, tasks=split_list(tasks, "--tasks") or None, data_dir=data_dir,
                         overrides=list(bench_overrides), seeds=bench_seeds, max_train_examples=max_train_examples,
                         max_eval_examples=max_eval_examples, max_pairs=max_pairs, device=device,
                         baselines=not no_baseline, statistic=statistic)
    command = "zoo " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if runs:
        training = {"--objectives": objectives, "--budget": budget, "--data": data, "--seq-len": seq_len,
                    "--batch-size": batch_size, "--vocab-size": vocab_size, "--set": overrides or None}
        given = [k for k, v in training.items() if v is not None]
        if given:
            raise ConfigError(f"{', '.join(given)}: training options do not apply to existing runs; either name "
                              "run directories or train a study with --objectives and --budget")
        result = compare_runs(list(runs), out, bench, command=command, bench_progress=console.BenchProgress)
    else:
        if not objectives or not budget:
            raise ConfigError("zoo compare: pass --objectives and --budget to train a study, or name run directories")
        if seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {seeds}")
        settings = StudySettings(objectives=split_list(objectives, "--objectives"),
                                 backbones=split_list(backbones, "--backbones"), budget=budget,
                                 seeds=list(range(seeds)), data=data, size=size, seq_len=seq_len,
                                 batch_size=batch_size, vocab_size=vocab_size, train_overrides=list(overrides),
                                 evals=evals, bench=bench)
        result = run_study(settings, out, command=command, train_progress=console.TrainProgress,
                           bench_progress=console.BenchProgress)
    for part in (result, *result.others):
        suite = f" ({part.suite.upper()})" if result.others else ""
        console.table(f"Downstream scores{suite} (x100): {part.statistic} [interval, level in the last column] over "
                      "seeds", *report.score_table(part))
        if part.pairs:
            console.table(f"Same backbone{suite}, over seeds: A - B of the average score (exact sign-flip p, Holm)",
                          *report.pair_table(part))
        if any(p.items for p in part.pairs):
            console.table(f"Same backbone{suite}, over items: A - B per task (hierarchical bootstrap p, Holm)",
                          *report.item_table(part))
    for note in result.notes:
        console.text(f"note: {note}")
    console.text(f"report: {Path(result.out) / 'report.md'}")


def _preset_help() -> str:
    from zoo.compare.presets import PRESETS

    return "\n\n".join(f"Preset {p.name}: {p.summary}\n\n\b\n" + "\n".join(f"  {o}" for o in p.describe())
                         for p in PRESETS.values())


compare_cmd.help = f"{inspect.cleandoc(compare_cmd.help or '')}\n\n{_preset_help()}"


@cli.command("export")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path())
@click.option("--to", "to", type=click.Choice(["hf"]), default="hf", show_default=True,
              help="Format: hf = a Hugging Face transformers directory (from_pretrained).")
@click.option("--step", type=int, help="Checkpoint step to export (default: the newest).")
@click.option("--force", is_flag=True, help="Overwrite the exported files in a non-empty OUT.")
def export_cmd(run: str, out: str, to: str, step: int | None, force: bool) -> None:
    """Export a run to OUT, e.g. zoo export runs/bert-mlm+nsp --to hf hf/bert-mlm+nsp."""
    from zoo import console
    from zoo.export import export

    result = export(run, out, to=to, step=step, force=force)
    rows = [("directory", str(result.out)), ("class", result.architecture), ("step", str(result.step)),
            *((f"head {part}", where) for part, where in result.heads.items()),
            ("trained attention", ", ".join(f"{part} {pattern}" for part, pattern in result.attention.items())),
            ("self-check", f"max |difference| {result.max_abs_diff:.2e} against the run's model")]
    console.table("Exported", ["", "value"], rows)
    for note in result.notes:
        console.text(f"note: {note}")


def _train_flags(flags: dict[str, Any]) -> dict[str, Any]:
    """Map the stable CLI flags onto config keys (only those given)."""
    where = {
        "objective": ("objective",), "backbone": ("backbone",), "size": ("size",), "out": ("out",),
        "data": ("data", "source"), "text_field": ("data", "text_field"),
        "on_decode_error": ("data", "on_decode_error"),
        "tokenizer_path": ("tokenizer", "path"), "vocab_size": ("tokenizer", "vocab_size"),
        "budget": ("train", "budget"), "seq_len": ("train", "seq_len"), "batch_size": ("train", "batch_size"),
        "precision": ("train", "precision"), "checkpoint_every": ("train", "checkpoint_every"),
        "seed": ("train", "seed"), "strategy": ("train", "strategy"), "init": ("init", "source"),
    }
    out: dict[str, Any] = {}
    for flag, value in flags.items():
        if value is None:
            continue
        node = out
        *parents, leaf = where[flag]
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _torchrun(nproc: int) -> int:
    """Re-launch this ``zoo train`` command under torchrun with ``nproc`` processes."""
    from zoo import console
    from zoo.train.launch import launch, strip_nproc

    message, code = launch(nproc, strip_nproc(sys.argv[1:]))
    if message:
        console.print_error(message)
    return code


# CPU runtime defaults, read when torch (and its OpenMP runtime) loads, so set before any import of
# torch; an explicit value in the environment wins. Passive OpenMP waits keep a busy machine from
# stalling every parallel region on a descheduled spinning thread; transparent huge pages for large
# tensors avoid a page fault per 4 KiB of every fresh activation buffer (docs/performance.md).
RUNTIME_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "THP_MEM_ALLOC_ENABLE": "1"}


def main() -> None:
    for key, value in RUNTIME_ENV.items():
        os.environ.setdefault(key, value)
    cli.main(prog_name="zoo")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
