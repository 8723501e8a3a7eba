"""Registry behaviour with real (fake-installed) distributions: found by metadata, loaded on demand."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from zoo import registry
from zoo.cli import cli
from zoo.errors import PluginError

GOOD_MODULE = '''
from zoo.objectives.base import Objective

class Good(Objective):
    name = "good"
    requires = frozenset({"segments"})

not_a_class = 42
'''


def _dist(root: Path, name: str, version: str, entry_points: str) -> None:
    info = root / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def fake_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "fakeplug_mod.py").write_text(GOOD_MODULE)
    (tmp_path / "fakeplug_broken.py").write_text("raise ImportError('libfoo.so: cannot open shared object')\n")
    _dist(tmp_path, "fakeplug", "1.0", """
        [zoo.objectives]
        good = fakeplug_mod:Good
        broken = fakeplug_broken:Thing
        wrongtype = fakeplug_mod:not_a_class
        dup = fakeplug_mod:Good
        """)
    _dist(tmp_path, "otherplug", "2.0", """
        [zoo.objectives]
        dup = fakeplug_mod:Good
        """)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(registry.DISABLE_ENV, raising=False)
    for mod in ("fakeplug_mod", "fakeplug_broken"):
        sys.modules.pop(mod, None)
    registry.clear_cache()
    yield tmp_path
    registry.clear_cache()
    for mod in ("fakeplug_mod", "fakeplug_broken"):
        sys.modules.pop(mod, None)


def test_builtins_are_registered_like_plugins() -> None:
    backbones = registry.find("backbone")
    assert {"bert", "gpt"} <= set(backbones)
    assert backbones["bert"].builtin and backbones["bert"].origin == "built-in"
    assert backbones["bert"].value == "zoo.models.bert:BertBackbone"


def test_find_reads_metadata_without_importing(fake_plugins: Path) -> None:
    found = registry.find("objective")
    assert found["good"].origin == "fakeplug 1.0"
    assert found["good"].ref == "fakeplug[good]"
    assert "fakeplug_mod" not in sys.modules and "fakeplug_broken" not in sys.modules
    assert "dup" not in found  # conflicting names are not usable


def test_load_imports_only_the_named_plugin(fake_plugins: Path) -> None:
    cls = registry.load("objective", "good")
    assert cls.__name__ == "Good" and "fakeplug_broken" not in sys.modules
    assert registry.load("objective", "good") is cls  # cached


def test_broken_plugin_names_distribution_entry_and_cause(fake_plugins: Path) -> None:
    with pytest.raises(PluginError) as err:
        registry.load("objective", "broken")
    msg = str(err.value)
    assert "fakeplug[broken]" in msg and "ImportError" in msg and "libfoo.so" in msg
    assert isinstance(err.value.__cause__, ImportError)  # full traceback available with -v
    assert registry.load("objective", "good").__name__ == "Good"  # others unaffected


def test_wrong_type_is_refused(fake_plugins: Path) -> None:
    with pytest.raises(PluginError, match=r"fakeplug\[wrongtype\].*must be a subclass of zoo\.objectives\.base\.Objective"):
        registry.load("objective", "wrongtype")


def test_duplicate_names_name_both_distributions(fake_plugins: Path) -> None:
    with pytest.raises(PluginError, match=r"fakeplug\[dup\] and otherplug\[dup\]"):
        registry.load("objective", "dup")
    assert "dup" in registry.conflicts("objective")


def test_unknown_name_lists_known_and_close_match(fake_plugins: Path) -> None:
    with pytest.raises(PluginError, match=r"unknown objective 'goood'; known: .*good.*Did you mean 'good'\?"):
        registry.info("objective", "goood")
    with pytest.raises(PluginError, match=r"unknown backbone 'berty'.*bert, gpt.*Did you mean 'bert'"):
        registry.load("backbone", "berty")


def test_autoload_can_be_disabled(fake_plugins: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(registry.DISABLE_ENV, "1")
    assert "good" not in registry.find("objective")
    assert "bert" in registry.find("backbone")
    with pytest.raises(PluginError, match="unknown objective 'good'"):
        registry.load("objective", "good")


def test_zoo_list_shows_plugins_origins_and_problems(fake_plugins: Path) -> None:
    result = CliRunner().invoke(cli, ["list"], terminal_width=250)
    assert result.exit_code == 0, result.output
    out = result.output.replace("|", "│")  # not a terminal: Markdown tables
    assert "fakeplug 1.0" in out and "built-in" in out
    assert "conflict" in out  # dup registered twice
    assert "Compatibility" in out
    # 'good' needs segment embeddings: gpt row says why not, bert row says yes
    line = [ln for ln in out.splitlines() if "│ good" in ln][-1]
    assert "yes" in line and "no [" in line
    assert "good x gpt: no: good needs backbone capabilities ['segments']" in " ".join(out.split())
    assert "broken x bert: error:" in out and "fakeplug[broken]" in out
    flat = " ".join(out.split())
    assert "│ clm │ built-in │ causal attention, lm head," in flat  # attention is the objective's (t5: see its column)
    assert "│ gpt │ built-in │ capabilities: bidirectional, causal, packed, prefix │" in flat


def test_cli_help_and_version() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0 and "zoo train --objective mlm+nsp --backbone bert" in result.output
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and "objective-zoo, version" in result.output
