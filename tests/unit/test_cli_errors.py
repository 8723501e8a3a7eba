"""A path the CLI cannot write is a one-line error naming it, not a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from zoo.cli import cli


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc (a directory nobody can write)")
def test_unwritable_output_directory_is_named() -> None:
    result = CliRunner().invoke(cli, ["train", "--objective", "mlm", "--backbone", "bert", "--budget", "1steps",
                                      "--out", "/proc/zoo-unwritable/run"])
    assert result.exit_code == 1
    assert "error: /proc/zoo-unwritable" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def _flat(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args)
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.parametrize(("objective", "backbone", "message"), [
    ("(mlm|clm)", "gpt", "'|' cannot sit inside parentheses"),
    ("MLM", "bert", "unknown objective 'MLM'; known: clm,"),
    ("MLM", "bert", "Did you mean 'mlm'?"),
    # every objective that fits gpt, not the first eight
    ("nsp", "gpt", "an objective for gpt: clm, deshuffle, mlm, mntp, prefix, rtd, span, span-lm, span-mask, ul2"),
])
def test_objective_messages(tmp_path, objective: str, backbone: str, message: str) -> None:  # type: ignore[no-untyped-def]
    code, out = _flat(["train", "--objective", objective, "--backbone", backbone, "--dry-run",
                       "--out", str(tmp_path / "r")])
    assert code == 2 and message in out, out


def test_suite_error_and_list_name_every_suite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, out = _flat(["bench", str(tmp_path), "--suite", "blimpp"])
    assert code == 2 and "known suites: clue, glue, blimp, climp" in out and "Did you mean 'blimp'?" in out, out
    code, out = _flat(["list"])
    assert code == 0
    assert "| blimp | zero-shot minimal pairs |" in out and "| climp | zero-shot minimal pairs |" in out
    assert "| glue | fine-tuning: cola, sst2," in out
    # under the matrix: "yes" is trainable, and the objectives with no token-level head are not scorable zero-shot
    assert "yes = trainable, and fine-tunable on glue, clue. Zero-shot scoring (blimp, climp) also needs a " \
           "token-level head (masked-LM or LM head): nsp, sop" in out, out
    assert "alone are trainable but not zero-shot scorable." in out


def test_docs_state_the_rules_the_messages_enforce() -> None:
    """The objective grammar's parentheses rule and the matrix's meaning, where a reader looks for them."""
    docs = Path(__file__).resolve().parents[2] / "docs"
    training = " ".join((docs / "training.md").read_text(encoding="utf-8").split())
    assert "`|` cannot sit inside parentheses: a mixture is always the top level" in training
    assert "`nsp`, `sop` and `rtd` alone are trainable but not zero-shot scorable" in training
    benchmarks = " ".join((docs / "benchmarks.md").read_text(encoding="utf-8").split())
    assert "a `yes` in `zoo list`'s compatibility matrix means *trainable*; it does not promise zero-shot " \
           "scoring: `nsp`, `sop` and `rtd` alone" in benchmarks


def test_tables_are_full_width_markdown_when_not_a_terminal() -> None:
    """CliRunner's output is not a terminal: no row is cut to 80 columns."""
    result = CliRunner().invoke(cli, ["list"])
    assert result.exit_code == 0
    assert "…" not in result.output
    assert "| ul2 | built-in | mixture of r-3-15, r-8-15, s-25, x-3-50, x-8-50, x-64-15, x-64-50, special tokens " \
           "[R] [S] [X] |" in result.output.splitlines()
