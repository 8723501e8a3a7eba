"""``zoo`` command line. Commands are thin: parse options, build a config, call the library."""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any

import click

from zoo import __version__
from zoo.errors import ConfigError, PartialFailure, ZooError
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
    """Objectives, backbones, tasks and zero-shot suites, their origin, and which objective trains which backbone."""
    from zoo import console
    from zoo.listing import listing

    result = listing()
    titles = {"objective": "Objectives", "backbone": "Backbones", "task": "Tasks", "suite": "Zero-shot suites",
              "scorer": "Zero-shot scorers"}
    for kind, rows in result.plugins.items():
        console.table(titles[kind], ["name", "origin", "note"] if any(r[2] for r in rows) else ["name", "origin"],
                      [r if r[2] else r[:2] for r in rows] or [("(none)", "")])
    from zoo.benchmarks.tasks import known_suites

    console.table("Suites (zoo bench --suite)", ["name", "what"], list(known_suites().items()))
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
        headless = [o for o in ("nsp", "sop", "rtd") if o in result.matrix]  # no masked-LM or LM head
        from zoo.benchmarks.minimal_pairs import pair_suites

        console.text(f"  yes = trainable, and fine-tunable on glue, clue. Zero-shot scoring ({', '.join(pair_suites())}) "
                     "also needs a token-level head (masked-LM or LM head)"
                     + (f": {_and(headless)} alone {'are' if len(headless) > 1 else 'is'} trainable but not zero-shot "
                        "scorable" if headless else "") + ".")


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


@cli.command("train")
@click.option("--objective", help="Objective name or composition, e.g. mlm+nsp or mlm:1.0+nsp:0.5. "
              "Default: mlm+nsp.")
@click.option("--backbone", help="Backbone name (see zoo list). Default: bert, also with another --objective "
              "(--objective clm alone trains clm on bert, causal attention on the BERT architecture; add "
              "--backbone gpt for GPT-2's).")
@click.option("--size", type=click.Choice(list(SIZES)), help="Model size preset.")
@click.option("--data", "data", help="Corpus: file, directory or hf:NAME[:CONFIG][@split]. Default: embedded corpus.")
@click.option("--text-field", help="JSON lines field holding the text.")
@click.option("--on-decode-error", type=click.Choice(["auto", "error", "skip", "replace"]),
              help="Invalid UTF-8 / NUL bytes in the corpus. auto (default): replace invalid UTF-8 with U+FFFD "
                   "(one summary warning), refuse NUL bytes; error: refuse both; skip: drop their lines; replace: "
                   "replace both.")
@click.option("--init", "init", help="Start from trained weights: a transformers directory (BERT, GPT-2), "
              "hf:NAME[@REVISION], or a zoo run or step directory; backbone, sizes and tokenizer come from it.")
@click.option("--tokenizer", "tokenizer_path", help="Reuse this tokenizer.json instead of training one.")
@click.option("--budget", help="10m | 90s | 2000steps | 3e14flops | 5e6tokens.")
@click.option("--branch-from", help="Start a cooldown branch from this trapezoid trunk run (with --at-step and "
              "--budget; its settings are the trunk's; docs/training.md).")
@click.option("--at-step", type=int, help="The trunk checkpoint a --branch-from run starts from.")
@click.option("--seq-len", type=int)
@click.option("--batch-size", type=int, help="Rows per micro-batch per process.")
@click.option("--vocab-size", type=int, help="Vocabulary size of the tokenizer trained for this run.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]),
              help="auto (default): bf16 where the CPU/GPU computes it natively, else fp32.")
@click.option("--checkpoint-every", type=int,
              help="Steps between checkpoints (0: every train.checkpoint_minutes of wall time and at the end).")
@click.option("--lr", type=float, help="Peak learning rate (--set optim.lr=).")
@click.option("--warmup", type=float, help="Warm-up as a fraction of the budget, in [0, 1) (--set optim.warmup=).")
@click.option("--weight-decay", type=float, help="Decoupled weight decay (--set optim.weight_decay=).")
@click.option("--grad-accum", type=int, help="Micro-batches per optimiser step per process (--set train.grad_accum=).")
@click.option("--report-to", help="Also log to: tensorboard, wandb, or both comma-separated (train.report_to = [...]).")
@click.option("--out", help="Run directory (default runs/<backbone>-<objective>).")
@click.option("--config", "config_path", help="TOML run config: a file, or a shipped recipe's name (cpu-hour).")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE", help="Override any config key.")
@click.option("--resume", is_flag=True, help="Continue from the newest intact checkpoint (also automatic).")
@click.option("--resume-from", help="Continue from this checkpoint directory (error if it is damaged).")
@click.option("--seed", type=int)
@click.option("--strategy", type=click.Choice(["ddp", "fsdp"]), help="Multi-process strategy.")
@click.option("--nproc", type=int, default=1, show_default=True, help="Processes (wraps torchrun).")
@click.option("--dry-run", is_flag=True, help="Print the resolved config (defaults included), parameters, FLOPs, "
              "the budget in steps, tokens and FLOPs, and the estimated time; write and train nothing.")
@click.option("--force", is_flag=True, help="Train even a budget estimated to take longer than a year here.")
@click.pass_context
def train_cmd(ctx: click.Context, config_path: str | None, overrides: tuple[str, ...], resume: bool,
              resume_from: str | None, nproc: int, dry_run: bool, force: bool, **flags: Any) -> None:
    """Pretrain a backbone with an objective (default: mlm+nsp on bert, size mini, 2 minutes on the
    embedded corpus; --dry-run shows everything a command resolves to)."""
    if nproc < 1:
        from zoo.errors import ConfigError

        raise ConfigError(f"--nproc must be at least 1 (processes on this machine), got {nproc}")
    from zoo import console, recipes
    from zoo.train.resolve import resolve
    from zoo.typed_config import apply_overrides, dump_toml, merge

    data: dict[str, Any] = recipes.load(config_path) if config_path else {}
    if (flags.get("branch_from") is None) != (flags.get("at_step") is None):
        from zoo.errors import ConfigError

        raise ConfigError("--branch-from and --at-step go together: the trunk run and the step of its checkpoint")
    _check_alias_conflicts(flags, overrides)
    data = merge(data, _train_flags(flags))
    cfg = resolve(apply_overrides(data, list(overrides)))
    if nproc > 1:
        if not dry_run:  # once here, before the processes start (they skip it)
            from zoo.train.validate import check_budget_time

            check_budget_time(cfg, nproc, force)
        ctx.exit(_torchrun(nproc))
    if dry_run:
        from zoo.train.trainer import plan

        p = plan(cfg)
        console.text(dump_toml(p.resolved or {}))
        console.train_summary(_plan_rows(p))
        return
    from zoo.train.trainer import train

    if os.environ.get("RANK", "0") != "0":  # under --nproc N only rank 0 speaks
        train(cfg, resume=resume, resume_from=resume_from)
        return
    title = f"{cfg.backbone} {cfg.objective}"
    with console.TrainProgress(title) as progress:
        result = train(cfg, resume=resume, resume_from=resume_from, callback=progress, force=force)
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
@click.option("--suite", help="Benchmark suite: glue, clue, a plugin's (fine-tuning), or blimp, climp, a plugin's "
                               "(zero-shot minimal pairs; zoo list shows them). Default: from --tasks, else glue.")
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
@click.option("--precision", type=click.Choice(["fp32", "bf16", "auto"]), default="fp32", show_default=True,
              help="Minimal pairs: scoring precision (bf16 autocast is faster on CPUs and GPUs with bf16 "
                   "instructions; fp32 is exact; auto: bf16 where computed natively, else fp32).")
@click.option("--scorer", help="Minimal pairs: how a next-token head reads a sentence: causal, causal-unigram, "
                               "causal-start or a plugin's causal reading (zoo list; default: the context it "
                               "trained in; see docs/benchmarks.md).")
def bench_cmd(runs: tuple[str, ...], suite: str | None, tasks: str | None, data_dir: str | None, seeds: int,
              overrides: tuple[str, ...], max_train_examples: int | None, max_eval_examples: int | None,
              device: str, from_scratch: bool, no_cache: bool, step: int | None, pll: str, precision: str,
              scorer: str | None, **recipe_flags: Any) -> None:
    """Fine-tune runs (or exported Hugging Face directories) on GLUE / CLUE tasks and report the official metrics,
    or score them zero-shot on BLiMP / CLiMP minimal pairs."""
    from zoo import console
    from zoo.benchmarks.bench import run_bench
    from zoo.benchmarks.minimal_pairs import is_pair_suite, pair_suites
    from zoo.benchmarks.source import open_source

    flags = [f"{k}={v}" if not isinstance(v, str) else f'{k}="{v}"' for k, v in recipe_flags.items() if v is not None]
    zero_shot_only = [f for f, v in (("--pll", pll != "word-l2r"), ("--precision", precision != "fp32"),
                                     ("--scorer", scorer)) if v]
    if is_pair_suite(suite):
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
        raise ConfigError(f"{', '.join(zero_shot_only)}: apply to the zero-shot suites ({', '.join(pair_suites())}) only")
    models = [open_source(r, step) for r in runs] if step is not None else list(runs)
    with console.BenchProgress() as progress:
        result = run_bench(models, suite=suite, tasks=tasks, data_dir=data_dir, seeds=seeds,
                           overrides=[*flags, *overrides], max_train_examples=max_train_examples,
                           max_eval_examples=max_eval_examples, device=device, from_scratch=from_scratch,
                           use_cache=not no_cache, progress=progress)
    columns, rows = result.table()
    console.table(f"{result.suite.upper()}: median over {len(result.seeds)} seed(s), x100", columns, rows,
                  caption="cells: median, then min-max over seeds when they differ; saved in <run>/bench.json, bench.md")
    _say_written(result.written)
    if result.failed:
        raise PartialFailure(result.failed, "model(s) could not be benchmarked")


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
    _say_written(result.written)
    if result.failed:
        raise PartialFailure(result.failed)


def _say_written(paths: list[str]) -> None:
    """Where the results went: into each model's directory, an exported or downloaded one too."""
    from zoo import console

    if paths:
        console.text(f"results written: {', '.join(paths)} (and the result cache bench-cache/ beside them)")


class _CompareCommand(click.Command):
    """``zoo compare``, whose help ends with every preset and its values: read when the help is shown, since
    the presets import the study code (and torch), which no other command's start-up needs."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from zoo.compare.presets import PRESETS

        presets = "\n\n".join(f"Preset {p.name}: {p.summary}\n\n\b\n" + "\n".join(f"  {o}" for o in p.describe())
                                for p in PRESETS.values())
        own = self.help
        self.help = f"{inspect.cleandoc(own or '')}\n\n{presets}"
        try:
            super().format_help_text(ctx, formatter)
        finally:
            self.help = own


@cli.command("compare", cls=_CompareCommand)
@click.argument("runs", nargs=-1, type=click.Path(exists=True, file_okay=False))
@click.option("--objectives", help="Objectives to train and compare, e.g. mlm,mlm+nsp,span,clm,prefix; "
              "OBJECTIVE@BACKBONE trains that one pair, e.g. clm@gpt,mlm@bert,span-lm@t5.")
@click.option("--backbones", show_default="bert,gpt", help="Backbones; incompatible pairs are skipped.")
@click.option("--budget", help="Training budget of every run: 3e14flops | 5e6tokens | 2000steps | 10m.")
@click.option("--budgets", help="A curve: models at each budget, e.g. 1e13,2e13,4e13,8e13flops, as cooldown branches "
              "of one trapezoid run per objective, backbone and seed (docs/compare.md); with --hours relative "
              "budgets, e.g. 1,2,4,8, whose FLOPs the plan chooses.")
@click.option("--cooldown", type=float, show_default="0.2",
              help="With --budgets: the final fraction of each budget, a linear decay of the learning rate.")
@click.option("--seeds", type=int, show_default="5", help="Pretraining seeds (0..N-1) per pair.")
@click.option("--data", help="Pretraining corpus: file, directory or hf:NAME. Default: embedded corpus.")
@click.option("--size", type=click.Choice(list(SIZES)), show_default="mini", help="Model size preset of every run.")
@click.option("--seq-len", type=int)
@click.option("--batch-size", type=int, help="Pretraining rows per micro-batch.")
@click.option("--vocab-size", type=int, help="Vocabulary size of each family's tokenizer.")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE", help="Training config override (every run).")
@click.option("--evals", type=int, help="Validation points (and checkpoints) per run, for the loss "
                                                  "curves. Default: one per ~50 steps, 4 to 50.")
@click.option("--suite", help="Benchmark suite(s), comma-separated: glue, clue, blimp, climp or a plugin's (default: "
              "from --tasks, else glue); e.g. blimp,glue scores every model on both.")
@click.option("--tasks", help="Comma-separated benchmark tasks, e.g. sst2,cola,mrpc.")
@click.option("--data-dir", type=click.Path(exists=True, file_okay=False),
              help="Official benchmark files (see zoo bench); with several suites, a directory with one folder per "
                   "suite (blimp/, glue/).")
@click.option("--bench-set", "bench_overrides", multiple=True, metavar="[TASK.]KEY=VALUE", help="Fine-tuning recipe override.")
@click.option("--bench-seeds", type=int, show_default="1", help="Fine-tunes per model (median taken).")
@click.option("--max-train-examples", type=int, help="Fine-tune on at most this many examples per task.")
@click.option("--max-eval-examples", type=int, help="Evaluate on at most this many examples per split.")
@click.option("--device", show_default="auto", help="Fine-tuning device.")
@click.option("--no-baseline", is_flag=True, help="Skip the from-scratch baseline.")
@click.option("--statistic", type=click.Choice(["median", "mean"]), show_default="median")
@click.option("--max-pairs", type=int, help="Pairs per paradigm of a zero-shot suite (default: --max-eval-examples).")
@click.option("--preset", help="Start from a named study preset (each listed below with its values); options "
              "given explicitly replace its values, --set/--bench-set add to them.")
@click.option("--hours", type=float, help="Plan the study to end within this many hours here: measure training and "
              "evaluation speed, then choose the budget of every run, the parallel layout and the pairs scored "
              "(instead of --budget).")
@click.option("--plan-only", is_flag=True, help="With --hours: measure, print the plan and stop; nothing is trained.")
@click.option("--out", default="studies/study", show_default=True, help="Study directory (study.json, runs, report).")
@click.option("--report-only", is_flag=True, help="Rewrite the report of the study in --out from its study.json; "
              "nothing is trained or benchmarked.")
@click.pass_context
def compare_cmd(ctx: click.Context, runs: tuple[str, ...], preset: str | None, plan_only: bool, out: str,
                report_only: bool, **options: Any) -> None:
    """Which objective is better at equal compute? Train the (objective x backbone x seed) grid at one
    budget, benchmark every run and a from-scratch baseline, report intervals and paired tests.

    \b
      zoo compare --objectives mlm,mlm+nsp,span,clm --budget 3e14flops --tasks sst2,cola,mrpc --data-dir glue/
      zoo compare --preset cpu-hour --out studies/cpu-hour     # every setting from the preset
      zoo compare --objectives clm@gpt,mlm@bert,span-lm@t5 --budget 4e12flops ...   # named pairs only
      zoo compare --objectives clm,mlm --backbones gpt --hours 1 ...   # budget planned to end within 1 hour
      zoo compare --objectives clm,mlm --backbones gpt --hours 2 --budgets 1,2,4,8 ...   # a planned curve
      zoo compare --suite blimp,glue --tasks sst2 --data-dir data/ ...   # several suites (data/blimp, data/glue)
      zoo compare runs/a runs/b        # existing runs: benchmark what is missing and report
    """
    import shlex
    from pathlib import Path

    from zoo import console
    from zoo.compare import report
    from zoo.compare.runner import compare_runs, run_study
    from zoo.errors import ConfigError

    if report_only:
        given = [f"--{k.replace('_', '-')}" for k in ctx.params
                 if k not in ("out", "report_only") and ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT]
        if runs or given:
            raise ConfigError(f"--report-only rewrites the report of the study in --out from its study.json; "
                              f"{', '.join(given) or 'run directories'} do not apply")
        from zoo.compare.reload import rewrite_report

        result = rewrite_report(out)
        console.text(f"report: {Path(result.out) / 'report.md'}")
        return
    from zoo.compare.presets import OPTIONS, bench_options, get_preset, given_options, merge

    given = given_options(options)
    command = "zoo " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if runs:
        if preset is not None:
            raise ConfigError("--preset trains a study; it does not apply to existing run directories")
        training = [o.flag for o in OPTIONS if o.path in given and not o.path.startswith("bench.")]
        if training or plan_only:
            raise ConfigError(f"{', '.join(training) or '--plan-only'}: training options do not apply to existing "
                              "runs; either name run directories or train a study with --objectives and --budget")
        result = compare_runs(list(runs), out, bench_options(given), command=command,
                              bench_progress=console.BenchProgress)
    else:
        settings = merge(get_preset(preset).settings if preset is not None else None, given)
        if plan_only and settings.hours is None:
            raise ConfigError("--plan-only prints the plan of a study sized by --hours; pass --hours")
        if plan_only:
            from zoo.compare.planning import plan_study, plan_tables

            plan = plan_study(settings, out, command=command)
            for title, columns, rows in plan_tables(plan):
                console.table(title, columns, rows)
            for note in plan.notes:
                console.text(f"note: {note}")
            console.text(f"plan: {Path(out) / 'study.json'} (nothing trained; run the same command without "
                         "--plan-only to train it)")
            return
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
            console.table(f"Same backbone{suite}, over items: A - B per task (seed-and-item t p, Holm)",
                          *report.item_table(part))
        if part.cross_pairs:
            console.table(f"Across backbones{suite}, unpaired over seeds: A - B of the average score (Welch p, Holm)",
                          *report.cross_table(part))
    for note in result.notes:
        console.text(f"note: {note}")
    console.text(f"report: {Path(result.out) / 'report.md'}")
    if result.failed:
        raise PartialFailure({r.name: r.error or "failed" for r in result.failed}, "run(s) failed or were not scored, "
                             f"marked in {Path(result.out) / 'report.md'}")



@cli.command("export")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path())
@click.option("--to", "to", type=click.Choice(["hf"]), default="hf", show_default=True,
              help="Format: hf = a Hugging Face transformers directory (from_pretrained).")
@click.option("--step", type=int, help="Checkpoint step to export (default: the newest).")
@click.option("--force", is_flag=True, help="Replace an earlier export in OUT as a whole (never other files).")
def export_cmd(run: str, out: str, to: str, step: int | None, force: bool) -> None:
    """Export a run to OUT, e.g. zoo export runs/bert-mlm+nsp --to hf hf/bert-mlm+nsp."""
    from zoo import console
    from zoo.export import export

    result = export(run, out, to=to, step=step, force=force)
    rows = [("directory", str(result.out)), ("class", result.architecture), ("step", str(result.step)),
            *((f"head {part}", where) for part, where in result.heads.items()),
            ("trained attention", ", ".join(f"{part} {pattern}" for part, pattern in result.attention.items())),
            ("self-check", f"max |difference| {result.max_abs_diff:.2e} against the run's model")]
    if result.replaced:
        console.text(f"replaced {result.replaced} in {result.out}")
    console.table("Exported", ["", "value"], rows)
    for note in result.notes:
        console.text(f"note: {note}")


def _plan_rows(p: Any) -> list[tuple[str, str]]:
    """The ``--dry-run`` summary of a ``zoo.train.trainer.Plan``."""
    from zoo.train.estimate import YEAR_S

    est = p.estimate
    rows = [
        ("parameters", f"{p.params:,} ({p.params_no_embeddings:,} without embeddings)"),
        ("FLOPs per token (forward, backbone)", f"{p.backbone_flops_per_token:.3e}"),
        ("FLOPs per token (training)", f"{p.flops_per_step / p.tokens_per_step:.3e}"),
        ("tokens per step", f"{p.tokens_per_step:,} ({p.accum} accumulation step(s))"),
        ("FLOPs per step (train)", f"{p.flops_per_step:.3e}"),
        ("budget", str(p.budget)),
        ("precision", f"{p.precision.name} ({p.precision.reason})"),
    ]
    if est is not None:
        steps = f"{est.steps:,.0f}" if est.steps < 1e9 else f"{est.steps:.3e}"
        rows.append(("budget in steps, tokens, FLOPs", f"{steps} steps, {est.tokens:.3e} tokens, "
                                                        f"{est.flops:.3e} FLOPs"))
        late = " - more than a year: zoo train refuses it without --force" if est.seconds > YEAR_S else ""
        rows.append(("estimated time", est.describe() + late))
    return rows


_RUN_ARG = click.argument("run", type=click.Path(exists=True, file_okay=False))
_STEP = click.option("--step", type=int, help="Checkpoint step of a run (default: the newest).")
_DEVICE = click.option("--device", default="cpu", show_default=True, help="cpu, auto, cuda, cuda:1, ...")


@cli.command("generate")
@_RUN_ARG
@click.option("--prompt", "prompts", multiple=True, required=True, help="Text to continue (repeatable).")
@click.option("--max-new-tokens", type=int, default=50, show_default=True)
@click.option("--temperature", type=float, default=1.0, show_default=True, help="0: greedy.")
@click.option("--top-k", type=int, default=0, show_default=True, help="Sample from the k most likely tokens (0: all).")
@click.option("--top-p", type=float, default=1.0, show_default=True, help="Nucleus: the most likely tokens "
              "holding this probability (1: all).")
@click.option("--greedy", is_flag=True, help="Always the most likely token.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampling.")
@_STEP
@_DEVICE
def generate_cmd(run: str, prompts: tuple[str, ...], step: int | None, device: str, **options: Any) -> None:
    """Continue prompts with a causal or prefix LM (a run or an exported transformers directory)."""
    from zoo import console
    from zoo.generate import GenerateConfig, generate, open_text_model

    cfg = GenerateConfig(**options)
    model = open_text_model(run, step, device)
    for prompt in prompts:
        out = generate(model, prompt, cfg)
        console.text(f"{out.prompt}{out.text}")
        console.note(f"[{len(out.new_ids)} tokens, stop: {out.stop}, reading: {out.mode}, "
                     f"{'sampled, seed ' + str(cfg.seed) if cfg.sampling else 'greedy'}]")


@cli.command("fill")
@_RUN_ARG
@click.argument("texts", nargs=-1, required=True)
@click.option("--top-k", type=int, default=5, show_default=True, help="Predictions per mask.")
@_STEP
@_DEVICE
def fill_cmd(run: str, texts: tuple[str, ...], top_k: int, step: int | None, device: str) -> None:
    """Predict each [MASK] of TEXTS with a masked LM, e.g. zoo fill runs/bert-mlm "The [MASK] sat." """
    from zoo import console
    from zoo.generate import fill, open_text_model

    model = open_text_model(run, step, device)
    for text in texts:
        out = fill(model, text, top_k)
        rows = [(str(i + 1), p.token, f"{p.score:.3f}") for i, preds in enumerate(out.masks) for p in preds]
        console.text(text)
        console.table(None, ["mask", "token", "probability"], rows)
        console.text(f"most likely: {out.sequence}")


@cli.command("eval")
@_RUN_ARG
@click.option("--data", help="Corpus: file, directory or hf:NAME[:CONFIG][@split] (as zoo train). Default: the run's "
              "own corpus (an exported directory: the embedded one).")
@click.option("--text-field", default="text", show_default=True, help="JSON lines field holding the text.")
@click.option("--doc-boundary", type=click.Choice(["auto", "file", "blank-line", "line"]), default="auto",
              show_default=True, help="Where documents end in text files (as data.doc_boundary).")
@click.option("--split", type=click.Choice(["all", "valid", "train"]), default="all", show_default=True,
              help="All documents, or those training holds out (valid) / trains on, by its rule.")
@click.option("--measure", type=click.Choice(["auto", "next-token", "objective"]), default="auto", show_default=True,
              help="next-token: loss, perplexity, bits per byte over every token; objective: the run's own loss "
                   "(auto: next-token where the model predicts the next token).")
@click.option("--seq-len", type=int, default=0, help="Window / row length (default: the run's train.seq_len).")
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--max-documents", type=int, default=0, help="Only the first N documents (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_STEP
@_DEVICE
def eval_cmd(run: str, data: str | None, text_field: str, doc_boundary: str, max_documents: int, as_json: bool,
             **options: Any) -> None:
    """Held-out loss, perplexity and bits per byte of a run (or exported directory) on a corpus."""
    import json

    from zoo import console
    from zoo.corpus_eval import EvalConfig, evaluate_corpus
    from zoo.data import DataConfig

    corpus = DataConfig(source=data, text_field=text_field, doc_boundary=doc_boundary,  # type: ignore[arg-type]
                        max_documents=max_documents) if data is not None else None
    result = evaluate_corpus(run, EvalConfig(data=corpus, **options))
    if as_json:
        console.text(json.dumps(result.to_dict(), indent=1))
    else:
        console.table("Evaluation", ["", "value"], result.rows())


# zoo train flags that name one config key each, as transformers' Trainer arguments do
TRAIN_ALIASES = {"lr": "optim.lr", "warmup": "optim.warmup", "weight_decay": "optim.weight_decay",
                 "grad_accum": "train.grad_accum", "report_to": "train.report_to"}


def _check_alias_conflicts(flags: dict[str, Any], overrides: tuple[str, ...]) -> None:
    """An alias flag and a ``--set`` of its key in one command: refuse rather than pick one."""
    for flag, path in TRAIN_ALIASES.items():
        if flags.get(flag) is None:
            continue
        for item in overrides:
            if item.split("=", 1)[0].strip() == path:
                raise ConfigError(f"--{flag.replace('_', '-')} and --set {item} both set {path}; give one")


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
        "branch_from": ("branch", "source"), "at_step": ("branch", "step"),
        **{flag: tuple(path.split(".")) for flag, path in TRAIN_ALIASES.items()},
    }
    out: dict[str, Any] = {}
    for flag, value in flags.items():
        if value is None:
            continue
        if flag == "report_to":
            value = [v.strip() for v in value.split(",") if v.strip()]
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
