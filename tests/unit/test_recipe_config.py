"""configs/*.toml resolve for every objective of the same-architecture comparison."""

from pathlib import Path

import pytest

from zoo import registry
from zoo.config import apply_overrides, load_toml, merge
from zoo.models.base import config_for_size
from zoo.train.config import resolve

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.toml"))
OBJECTIVES = ("clm", "mlm", "mntp:15|clm:1", "span", "prefix", "ul2")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_config_resolves_for_every_objective(path: Path, objective: str) -> None:
    cfg = resolve(merge(load_toml(path), {"objective": objective}))
    assert cfg.objective == objective
    model = config_for_size(registry.load("backbone", cfg.backbone).Config, cfg.size, **cfg.model)
    assert model.dropout == model.attention_dropout == 0.0 and model.bias is False
    assert cfg.budget.kind == "flops"


def test_cpu_hour_masking_rate_is_set_per_run() -> None:
    data = merge(load_toml(Path(__file__).parents[2] / "configs" / "cpu-hour.toml"), {"objective": "mlm"})
    cfg = resolve(apply_overrides(data, ["objectives.mlm.rate=0.3"]))
    assert cfg.objectives["mlm"]["rate"] == 0.3
