"""The transformers hook (zoo.interop): what a backbone without it, or with a wrong one, is told."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zoo.errors import CheckpointError, PluginError
from zoo.interop import backbones_by_model_type, hf_key, read_hf_config, require_hf
from zoo.models.bert import BertBackbone, BertConfig
from zoo.testing import tiny_backbone


class NoHook(BertBackbone):
    name = "no-hook"
    hf = None


def test_a_backbone_without_the_hook_has_no_transformers_counterpart() -> None:
    backbone = NoHook(BertConfig(vocab_size=32, hidden_size=32, num_layers=1, num_heads=1))
    with pytest.raises(PluginError, match=r"backbone 'no-hook' \(somewhere 1.0\) has no transformers counterpart"):
        require_hf(backbone, "somewhere 1.0")


def test_the_hook_must_agree_with_the_config_it_exports() -> None:
    class Mislabelled(BertBackbone):
        name = "mislabelled"
        hf = BertBackbone.hf.__class__("gpt2", "GPT2Model", "transformer")

    with pytest.raises(PluginError, match=r"exports a 'bert' config but declares model_type 'gpt2'"):
        require_hf(Mislabelled(BertConfig(vocab_size=32, hidden_size=32, num_layers=1, num_heads=1)), "here")


@pytest.mark.parametrize("name", ["bert", "gpt"])
def test_built_in_backbones_declare_their_model_type(name: str) -> None:
    names = require_hf(tiny_backbone(name, 64), "objective-zoo")
    assert backbones_by_model_type()[names.model_type] == name


def test_head_names_resolve_the_base_model() -> None:
    assert hf_key("bert.pooler.dense.weight", "roformer") == "roformer.pooler.dense.weight"
    assert hf_key("bert.pooler.dense.weight", "") == "pooler.dense.weight"
    assert hf_key("cls.predictions.bias", "roformer") == "cls.predictions.bias"


def test_an_undeclared_model_type_names_the_declared_ones(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta", "architectures": ["RobertaModel"]}))
    with pytest.raises(CheckpointError, match=r"model_type 'roberta' \(RobertaModel\) is not supported; expected one "
                                              r"of .*bert.*gpt2"):
        read_hf_config(tmp_path)
