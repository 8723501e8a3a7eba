"""README's set-up and test commands are exactly what CI runs."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEST_COMMAND = "HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python -m pytest -q"
INSTALL = 'python -m pip install "torch==2.13.0" -e ".[dev]"'


def test_ci_runs_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert TEST_COMMAND in readme
    assert ci.rstrip().splitlines()[-1] == TEST_COMMAND
    assert INSTALL in readme
    assert INSTALL.replace("python -m pip install", "python -m pip install -q") in ci


def test_readme_corpus_command_runs_on_the_shipped_corpus_as_written(shared_data: Path, tmp_path: Path) -> None:
    """README's ``--data corpus/`` command on the shipped English corpus (part of it: the inaugural
    addresses, 2005-Bush.txt holds cp1252 bytes) with no flag added; --dry-run reads the corpus and trains
    the tokenizer, then stops."""
    import shlex

    from click.testing import CliRunner

    from zoo.cli import cli

    readme = (REPO / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if ln.startswith("zoo train") and "--data corpus/" in ln)
    args = shlex.split(line.split("#")[0])[1:]
    args[args.index("corpus/")] = str(shared_data / "corpus" / "en" / "inaugural")
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "run"), "--dry-run"])
    out = " ".join(result.output.split())
    assert result.exit_code == 0, out
    assert "decoded as U+FFFD in 1 file(s)" in out


def test_the_tested_torch_version_is_stated_once_and_the_range_explained() -> None:
    import re

    readme = (REPO / "README.md").read_text()
    pinned = re.search(r'"torch==([0-9.]+)"', INSTALL).group(1)  # type: ignore[union-attr]
    assert f"tested with torch {pinned}" in readme and "torch>=2.6" in readme
    assert 'README, "torch versions"' in (REPO / "pyproject.toml").read_text()  # pointing there, no second number
