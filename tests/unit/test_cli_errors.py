"""A path the CLI cannot write is a one-line error naming it, not a traceback."""

from __future__ import annotations

import sys

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
