"""Every command in README's ``## Usage`` block resolves on the shipped data with no flag added.

The block's lines (continuation lines joined, comments dropped) are read from README.md and each one
must have an entry in ``CHECKS``: a README line without a check, or a check without its line, fails.

The only change made to a README line is the substitution of its placeholder paths, through the
explicit tables below: ``DATA`` maps the placeholder data directories (``glue_data/``, ``corpus/``,
...) to the shipped ``../shared/data``, and ``RUNS`` maps the README's run directories (``runs/...``)
to two tiny runs this module trains (bert mlm and gpt clm). Output paths (``out/bert``, the default
``runs/...`` of ``zoo train``) stay as written: the commands run in a temporary working directory.

What each kind of check does:

- ``run``: the line runs as written and exits 0.
- ``dry-run``: a ``zoo train`` line runs with ``--dry-run`` appended: the config, the corpus and
  the tokenizer are resolved, nothing is trained. The step-time measurement of the dry run (a few
  timed optimiser steps, seconds per line on two CPU cores) is stubbed: it times, it resolves nothing.
- ``plan-only``: ``zoo compare --hours ... --plan-only`` runs as written (it builds the tokenizers,
  reads the BLiMP files for their pair counts, plans and writes ``study.json``) with the probe
  training runs of its speed measurement stubbed by fixed synthetic speeds: they take minutes and
  only time.
- ``offline``: an ``hf:`` name needs the network; the tests run with ``HF_HUB_OFFLINE=1``, so the
  line must stop with the one-line offline error, no traceback.
- ``parse``: the options parse (click's ``make_context``, which also checks that the paths given to
  ``click.Path(exists=True)`` options exist) and each option is documented in ``--help``. Used where
  running the line takes minutes: fine-tuning on the full GLUE/CLUE training sets, scoring all 67,000
  BLiMP pairs, training a study; ``zoo compare runs/a runs/b``
  benchmarks on GLUE from the Hugging Face hub, which needs the network. The ``bench`` lines on
  official files also load those files (``load-data``).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from zoo.cli import cli

REPO = Path(__file__).resolve().parents[2]

# README placeholder -> path under ../shared/data. corpus/ and held_out/ are the US inaugural addresses
# (856 kB), the smallest part of corpus/en: the --dry-run reads and trains a tokenizer on all of it
# (~25 s on all 20 MB of corpus/en), zoo eval scores all of it (~30 s on the 2.2 MB of state_union);
# 2005-Bush.txt holds cp1252 bytes, whose decoding note is checked. The fixture runs train on the
# embedded corpus, so the inaugural addresses are held out for them.
DATA = {
    "glue_data/": "glue",
    "clue_data/": "clue",
    "blimp_data/": "blimp",
    "corpus/": "corpus/en/inaugural",
    "held_out/": "corpus/en/inaugural",
    "my_corpus/": "corpus/zh",
}
# README run directory -> the fixture run standing in for it.
RUNS = {
    "runs/bert-mlm+nsp": "bert",
    "runs/bert-mlm": "bert",
    "runs/gpt-clm": "gpt",
    "runs/a": "bert",
    "runs/b": "gpt",
}

# README line (whitespace normalised) -> check.
CHECKS = {
    "zoo list": "run",
    "zoo train --objective mlm+nsp --backbone bert": "dry-run",
    "zoo train --objective clm --backbone gpt --size small --data corpus/ --budget 3e14flops": "dry-run",
    'zoo train --objective "mntp:15|clm:1" --backbone gpt': "dry-run",
    "zoo train --objective span-lm --backbone t5": "dry-run",
    "zoo train --objective mlm+nsp --init hf:bert-base-chinese --data my_corpus/": "offline",
    "zoo bench runs/bert-mlm+nsp --suite glue --tasks sst2,cola,mrpc --data-dir glue_data/": "parse+load-data",
    "zoo bench runs/bert-mlm+nsp --suite clue --tasks tnews --data-dir clue_data/": "parse+load-data",
    "zoo bench runs/bert-mlm+nsp --suite blimp --data-dir blimp_data/": "parse+load-data",
    "zoo compare --objectives mlm,mlm+nsp,span,clm --backbones bert,gpt --budget 3e14flops --seeds 6 "
    "--tasks sst2,cola,mrpc --data-dir glue_data/ --out studies/first": "parse",
    "zoo compare --objectives clm,mlm --backbones gpt --hours 1 --suite blimp --data-dir blimp_data/ "
    "--plan-only": "plan-only",
    "zoo compare runs/a runs/b": "parse",
    "zoo export runs/bert-mlm+nsp --to hf out/bert": "run",
    'zoo generate runs/gpt-clm --prompt "The history of" --top-p 0.9 --temperature 0.8': "run",
    'zoo fill runs/bert-mlm "The [MASK] was built in 1850."': "run",
    "zoo eval runs/gpt-clm --data held_out/ --json": "run",
    "zoo train --objective clm --backbone gpt --lr 3e-4 --warmup 0.1 --grad-accum 4 "
    "--report-to tensorboard,wandb": "dry-run",
}


def usage_lines() -> list[str]:
    """The command lines of the first ``bash`` block under ``## Usage``: continuations joined, comments
    dropped, whitespace normalised."""
    readme = (REPO / "README.md").read_text()
    usage = readme.split("\n## Usage\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", usage, re.S)
    assert block, "README: no ```bash block under ## Usage"
    joined = re.sub(r"\\\n", " ", block.group(1))
    lines = []
    for raw in joined.splitlines():
        words = shlex.split(raw, comments=True)
        if words:
            lines.append(" ".join(f'"{w}"' if re.search(r"[^\w@%+=:,./-]", w) else w for w in words))
    return lines


LINES = usage_lines()


def test_every_readme_usage_line_has_a_check_and_every_check_a_line() -> None:
    assert [ln for ln in LINES if ln not in CHECKS] == [], "README Usage lines without a check: add them to CHECKS"
    assert [ln for ln in CHECKS if ln not in LINES] == [], "checks of lines no longer in README's Usage block"
    assert len(LINES) == len(set(LINES))


@pytest.fixture(scope="module")
def runs(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny trained run per family: bert mlm and gpt clm (hidden 32, 2 layers, 3 steps)."""
    root = tmp_path_factory.mktemp("readme-runs")
    out = {}
    for family, objective in (("bert", "mlm"), ("gpt", "clm")):
        run = root / f"{family}-{objective}"
        result = CliRunner().invoke(cli, [
            "train", "--objective", objective, "--backbone", family, "--size", "tiny", "--data", str(corpus),
            "--vocab-size", "400", "--budget", "3steps", "--seq-len", "32", "--batch-size", "4", "--out", str(run),
            "--set", "model.hidden_size=32", "--set", "model.num_heads=2", "--set", "model.num_layers=2",
            "--set", "model.intermediate_size=64", "--set", "train.prefetch=false",
            "--set", "data.doc_boundary=blank-line"])
        assert result.exit_code == 0, result.output
        out[family] = run
    return out


def _substitute(words: list[str], shared_data: Path, runs: dict[str, Path] | None) -> list[str]:
    """The README line's words with the placeholders of ``DATA`` and ``RUNS`` replaced; nothing else."""
    out = []
    for word in words:
        if word in DATA:
            word = str(shared_data / DATA[word])
        elif word in RUNS:
            assert runs is not None
            word = str(runs[RUNS[word]])
        out.append(word)
    return out


def _check_parse(args: list[str]) -> None:
    """The options parse and each one is documented in the command's --help."""
    assert isinstance(cli, click.Group)
    command = cli.commands[args[0]]
    with command.make_context(args[0], list(args[1:])) as ctx:
        assert ctx.params is not None
    options = {opt: p for p in command.params if isinstance(p, click.Option) for opt in p.opts}
    help_text = " ".join(CliRunner().invoke(cli, [args[0], "--help"]).output.split())
    for word in args[1:]:
        if word.startswith("--"):
            assert word in options and options[word].help, f"{word} is not documented in zoo {args[0]} --help"
            assert word in help_text


def _load_bench_data(args: list[str]) -> None:
    """The official files a ``zoo bench`` line names are found and read from the mapped directory."""
    from zoo.benchmarks.data import load_task_data
    from zoo.benchmarks.tasks import get_task

    data_dir = Path(args[args.index("--data-dir") + 1])
    suite = args[args.index("--suite") + 1]
    if suite == "blimp":
        from zoo.benchmarks.minimal_pairs import load_suite

        paradigms = load_suite("blimp", data_dir)
        assert len(paradigms) == 67
        return
    for task in args[args.index("--tasks") + 1].split(","):
        data = load_task_data(get_task(task), data_dir)
        assert len(data.train.examples) > 1000, task


@pytest.mark.parametrize("line", LINES, ids=[ln[:60] for ln in LINES])
def test_readme_usage_line(line: str, shared_data: Path, request: pytest.FixtureRequest,
                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check = CHECKS.get(line)
    assert check is not None, f"README Usage line without a check: {line}"
    words = shlex.split(line)
    assert words[0] == "zoo"
    needs_runs = any(w in RUNS for w in words)
    runs = request.getfixturevalue("runs") if needs_runs else None
    args = _substitute(words, shared_data, runs)[1:]
    monkeypatch.chdir(tmp_path)  # relative outputs (out/bert, runs/<default>) land here
    runner = CliRunner()

    if check == "run":
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
        _check_output(args, result.output, tmp_path)
    elif check == "dry-run":
        assert "--dry-run" in runner.invoke(cli, ["train", "--help"]).output
        import zoo.train.estimate as estimate

        monkeypatch.setattr(estimate, "measure",
                            lambda cfg, device, vocab_size=None: estimate.Throughput(1.0, 1, 1, device.type))
        result = runner.invoke(cli, [*args, "--dry-run"])
        out = " ".join(result.output.split())
        assert result.exit_code == 0, out
        assert "budget in steps, tokens, FLOPs" in out
        if str(shared_data / "corpus/en/inaugural") in args:
            assert "decoded as U+FFFD in 1 file(s)" in out
        assert not (tmp_path / "runs").exists()  # a dry run writes nothing
    elif check == "plan-only":
        monkeypatch.setattr("zoo.compare.probe.measure", _synthetic_speeds)
        result = runner.invoke(cli, args)
        out = " ".join(result.output.split())
        assert result.exit_code == 0, out
        assert "Plan:" in out and "nothing trained" in out
        assert (tmp_path / "studies" / "study" / "study.json").is_file()
    elif check == "offline":
        result = runner.invoke(cli, args)
        out = result.output.strip()
        assert result.exit_code != 0 and "Traceback" not in out, out
        flat = " ".join(out.split())
        assert flat.startswith("error: --init hf:") and "HF_HUB_OFFLINE=1 forbids downloading it" in flat, out
    elif check.startswith("parse"):
        _check_parse(args)
        if check.endswith("+load-data"):
            _load_bench_data(args)
    else:
        pytest.fail(f"unknown check {check!r}")


def _synthetic_speeds(settings, grid, tokenizers, out):  # type: ignore[no-untyped-def]
    """``zoo.compare.probe.measure`` without its timed probe runs: fixed speeds; the pair counts are read
    from the suite's files as the real one reads them."""
    from zoo.compare import probe
    from zoo.compare.plan import ArmCost, Measurements, layouts
    from zoo.compare.study import slug

    cores = probe.cores()
    pairs, paradigms = probe._pair_counts(settings)
    assert (pairs, paradigms) == (1000, 67)
    labels = [layout.label for layout in layouts(cores)]
    arms = tuple(ArmCost(slug(c), c.backbone, dict.fromkeys(labels, 1e11), flops_per_token=6e7, params=10_000_000,
                         pair_s=0.002, overhead_s=dict.fromkeys(labels, 5.0)) for c in grid.cells)
    return Measurements(cores=cores, arms=arms, pairs_per_paradigm=pairs, paradigms=paradigms)


def _check_output(args: list[str], output: str, cwd: Path) -> None:
    """What a ``run`` line must have produced."""
    if args[0] == "list":
        assert "mlm" in output and "bert" in output
    elif args[0] == "export":
        assert (cwd / "out" / "bert" / "config.json").is_file()
    elif args[0] == "generate":
        assert "The history of" in output
    elif args[0] == "fill":
        assert "most likely:" in output and "1850" in output
    elif args[0] == "eval":
        report = json.loads(output[output.index("{"):])
        assert report["loss"] > 0 and report["perplexity"] > 1 and report["bits_per_byte"] > 0
