"""Typed configs: TOML and --set overrides map onto dataclasses; bad keys/values name the key path."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import pytest

from zoo.errors import ConfigError
from zoo.typed_config import apply_overrides, dump_toml, from_dict, load_toml, parse_value, to_dict


@dataclass
class Inner:
    rate: float = 0.15
    kind: Literal["a", "b"] = "a"
    names: list[str] = field(default_factory=lambda: ["x"])

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= 1:
            raise ValueError(f"rate must be in [0, 1], got {self.rate}")


@dataclass
class Outer:
    steps: int = 10
    path: str | None = None
    flag: bool = False
    inner: Inner = field(default_factory=Inner)
    extra: dict[str, int] = field(default_factory=dict)


def test_round_trip_through_toml(tmp_path) -> None:
    cfg = from_dict(Outer, {"steps": 3, "inner": {"rate": 0.3, "kind": "b"}, "extra": {"k": 1}})
    text = dump_toml(to_dict(cfg))
    p = tmp_path / "c.toml"
    p.write_text(text)
    assert from_dict(Outer, load_toml(p)) == cfg


def test_overrides_parse_toml_values() -> None:
    data = apply_overrides({}, ["steps=5", "inner.rate=2e-1", "inner.kind=b", "flag=true", "inner.names=[\"p\", \"q\"]"])
    cfg = from_dict(Outer, data)
    assert cfg.steps == 5 and cfg.inner.rate == 0.2 and cfg.inner.kind == "b" and cfg.flag
    assert cfg.inner.names == ["p", "q"]
    assert parse_value("runs/x") == "runs/x"  # not TOML: kept as a string


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"stpes": 1}, "unknown config key 'stpes' at the top level; allowed keys: steps, path, flag, inner, extra"),
        ({"inner": {"rat": 1}}, "unknown config key 'inner.rat' in [inner]"),
        ({"inner": {"kind": "c"}}, "inner.kind = 'c' is not allowed; allowed values: 'a', 'b'"),
        ({"steps": "many"}, "steps must be an integer, got 'many'"),
        ({"flag": 1}, "flag must be true or false"),
        ({"inner": {"rate": 2.0}}, "invalid config inner: rate must be in [0, 1], got 2.0"),
        ({"inner": 3}, "inner must be a table"),
        ({"extra": {"k": "v"}}, "extra.k must be an integer"),
    ],
)
def test_errors_name_key_path_and_allowed_values(data, message) -> None:
    with pytest.raises(ConfigError) as err:
        from_dict(Outer, data)
    assert message in str(err.value)


def test_bad_override_syntax_and_toml(tmp_path) -> None:
    with pytest.raises(ConfigError, match="expected key.path=value"):
        apply_overrides({}, ["steps"])
    with pytest.raises(ConfigError, match="'steps' is a value, not a table"):
        apply_overrides({"steps": 1}, ["steps.x=1"])
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 3\n")
    with pytest.raises(ConfigError, match="bad.toml: invalid TOML"):
        load_toml(bad)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_toml(tmp_path / "missing.toml")


# --- the run configuration --------------------------------------------------------------------------

def _run(**extra: object) -> dict:
    return {"objective": "mlm+nsp", "backbone": "bert", **extra}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_run(objectives={"mlm": {"rat": 0.2}}), "unknown config key 'objectives.mlm.rat' in [objectives.mlm]"),
        (_run(objectives={"mlm": {"rate": "high"}}), "objectives.mlm.rate must be a number"),
        (_run(objectives={"clm": {}}), "[objectives.clm] configures an objective that is not part of 'mlm+nsp'"),
        (_run(train={"dist_timeout_s": 0}), "dist_timeout_s must be > 0"),
        (_run(train={"device": 3}), "train.device must be a string"),
    ],
)
def test_resolve_checks_objective_sections(data: dict, message: str) -> None:
    from zoo.train.resolve import resolve

    with pytest.raises(ConfigError) as err:
        resolve(data)
    assert message in str(err.value)


def test_resolve_accepts_objective_sections_and_timeout() -> None:
    from zoo.train.resolve import resolve

    cfg = resolve(_run(objectives={"mlm": {"rate": 0.2}}, train={"dist_timeout_s": 30}))
    assert cfg.objectives == {"mlm": {"rate": 0.2}} and cfg.train.dist_timeout_s == 30
    assert resolve(_run()).train.dist_timeout_s == 1800


def test_config_diffs_fill_settings_added_since_with_their_defaults() -> None:
    from zoo.train.resolve import config_diffs, resolve

    cfg = resolve({"objective": "mlm", "backbone": "bert", "size": "tiny"})
    saved = to_dict(cfg)
    assert config_diffs(saved, cfg) == []
    older = json.loads(json.dumps(saved))
    del older["train"]["dist_timeout_s"]  # written by a version without that setting
    del older["optim"]["lr"]
    assert config_diffs(older, cfg) == []
    changed = json.loads(json.dumps(saved))
    changed["optim"]["lr"] = 0.5
    changed["train"]["budget"] = "9steps"
    assert config_diffs(changed, cfg) == ["optim.lr"]  # the budget may change on resume
    assert config_diffs(changed, cfg, allowed=()) == ["optim.lr", "train.budget"]
    unknown = json.loads(json.dumps(saved))
    unknown["train"]["retired_setting"] = 1  # a key this version no longer knows: compared as written
    assert config_diffs(unknown, cfg) == ["train.retired_setting"]


def test_a_budget_is_its_type_and_is_written_back_as_given() -> None:
    """``train.budget`` and ``train.branch_budgets`` hold ``Budget`` values, coerced from their text by
    ``typed_config`` and written back as that text."""
    from zoo.train.config import Budget, RunConfig
    from zoo.typed_config import from_dict, to_dict

    cfg = from_dict(RunConfig, {"train": {"budget": "4e13flops", "branch_budgets": ["1e13flops", "2e13flops"]}})
    assert cfg.train.budget == Budget("flops", 4e13) and cfg.budget is cfg.train.budget
    assert [b.value for b in cfg.train.branch_budgets] == [1e13, 2e13]
    assert to_dict(cfg)["train"]["budget"] == "4e13flops"
    assert to_dict(cfg)["train"]["branch_budgets"] == ["1e13flops", "2e13flops"]
    assert to_dict(from_dict(RunConfig, {"train": {"budget": "2m"}}))["train"]["budget"] == "2m"
    assert Budget("steps", 200.0).to_text() == "200steps" and Budget("time", 90.0).to_text() == "90s"
    with pytest.raises(ConfigError, match=r"train.budget: budget '5' not understood"):
        from_dict(RunConfig, {"train": {"budget": "5"}})
    with pytest.raises(ConfigError, match=r"train.budget must be text, got 5"):
        from_dict(RunConfig, {"train": {"budget": 5}})
    with pytest.raises(ConfigError, match=r"branch_budgets: '10steps' must be a flops budget like train.budget"):
        from_dict(RunConfig, {"train": {"budget": "4e13flops", "branch_budgets": ["10steps"]}})


def test_the_objective_is_a_spec_written_back_as_its_text() -> None:
    from zoo.objectives.spec import Spec
    from zoo.train.config import RunConfig

    cfg = from_dict(RunConfig, {"objective": "mntp:15|clm:1"})
    assert isinstance(cfg.objective, Spec) and cfg.objective.names == ["mntp", "clm"] and cfg.objective.is_mixture
    assert to_dict(cfg)["objective"] == "mntp:15|clm:1" and str(cfg.objective) == "mntp:15|clm:1"
    assert RunConfig(objective="clm", backbone="gpt").run_dir == "runs/gpt-clm"
    with pytest.raises(ConfigError, match=r"objective spec 'mlm\+'"):
        from_dict(RunConfig, {"objective": "mlm+"})
