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
