"""README's set-up and test commands are exactly what CI runs; its Usage commands are checked by
tests/integration/test_readme_usage.py."""

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


def test_the_tested_torch_version_is_stated_once_and_the_range_explained() -> None:
    import re

    readme = (REPO / "README.md").read_text()
    pinned = re.search(r'"torch==([0-9.]+)"', INSTALL).group(1)  # type: ignore[union-attr]
    assert f"tested with torch {pinned}" in readme and "torch>=2.6" in readme
    assert 'README, "torch versions"' in (REPO / "pyproject.toml").read_text()  # pointing there, no second number
