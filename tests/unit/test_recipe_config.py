"""The shipped recipes (zoo/recipes/*.toml) resolve for every objective of the same-architecture comparison."""

import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from zoo import recipes, registry
from zoo.models.base import config_for_size
from zoo.train.resolve import resolve
from zoo.typed_config import apply_overrides, load_toml, merge

CONFIGS = [recipes.locate(name) for name in recipes.names()]
OBJECTIVES = ("clm", "mlm", "mntp:15|clm:1", "span", "prefix", "ul2")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_config_resolves_for_every_objective(path: Path, objective: str) -> None:
    cfg = resolve(merge(load_toml(path), {"objective": objective}))
    assert cfg.objective.text == objective
    model = config_for_size(registry.load("backbone", cfg.backbone).Config, cfg.size, **cfg.model)
    assert model.dropout == model.attention_dropout == 0.0 and model.bias is False
    assert cfg.budget.kind == "flops"


def test_cpu_hour_masking_rate_is_set_per_run() -> None:
    data = merge(load_toml(recipes.locate("cpu-hour")), {"objective": "mlm"})
    cfg = resolve(apply_overrides(data, ["objectives.mlm.rate=0.3"]))
    assert cfg.objectives["mlm"]["rate"] == 0.3


def test_docs_show_the_cpu_hour_config() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "training.md").read_text()
    section = docs.split("## A recipe for small compute", 1)[1]
    block = section.split("```toml\n", 1)[1].split("```", 1)[0]
    assert tomllib.loads(block) == load_toml(recipes.locate("cpu-hour"))


@pytest.mark.parametrize("name", ["cpu-hour", "compute-curve"])
def test_every_preset_trains_with_the_recipe_file(name: str) -> None:
    """The presets take their recipe from the shipped cpu-hour recipe (written once, in
    zoo/recipes/cpu-hour.toml): their overrides give back its sections. A preset chooses its own shape (a
    smaller vocabulary, so the output layer is not most of the FLOPs) and budget, and a curve study its
    schedule (trapezoid, absolute warmup)."""
    from zoo.compare.presets import PRESETS

    assert set(PRESETS) == {"cpu-hour", "compute-curve"}  # every preset is checked here
    preset = PRESETS[name].settings
    toml = load_toml(recipes.locate("cpu-hour"))
    overrides = apply_overrides({}, list(preset.train_overrides))
    recipe = {k: dict(toml[k]) for k in ("model", "optim")}
    if preset.budgets:  # the curve study sets the schedule of its trunks itself
        recipe["optim"] = {k: v for k, v in recipe["optim"].items() if k not in ("schedule", "warmup")}
    assert {k: overrides[k] for k in recipe} == recipe
    assert overrides["train"]["precision"] == toml["train"]["precision"]
    assert (preset.backbones, preset.seq_len, preset.batch_size) == (
        [toml["backbone"]], toml["train"]["seq_len"], toml["train"]["batch_size"])


def test_overrides_read_back_as_the_recipe_values() -> None:
    data = {"optim": {"lr": 4e-3, "schedule": "linear"}, "model": {"bias": False, "act": "true", "n": 3},
            "train": {"precision": "auto"}}
    overrides = recipes.as_overrides(data, ("optim", "model", "train.precision"))
    assert overrides[0] == "optim.lr=0.004" and 'model.act="true"' in overrides  # a string that reads as a bool: quoted
    assert apply_overrides({}, overrides) == data
    with pytest.raises(KeyError, match="no 'train.seed'"):
        recipes.as_overrides(data, ("train.seed",))


def test_config_names_a_shipped_recipe_or_a_file(tmp_path: Path) -> None:
    from zoo.errors import ConfigError

    assert recipes.locate("cpu-hour").parent == Path(recipes.__file__).parent
    assert recipes.load("cpu-hour") == load_toml(recipes.locate("cpu-hour"))
    own = tmp_path / "mine.toml"
    own.write_text('backbone = "gpt"\n')
    assert recipes.load(str(own)) == {"backbone": "gpt"}
    with pytest.raises(ConfigError, match=r"--config cpu-day: no such file, and not a shipped recipe \(cpu-hour\)"):
        recipes.load("cpu-day")
    with pytest.raises(ConfigError, match="cannot read config file"):
        recipes.load(str(tmp_path / "missing.toml"))
