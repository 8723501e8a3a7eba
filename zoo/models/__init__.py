"""Backbones: token ids in, hidden states out. No heads, no losses."""

from zoo.models.attention import AttentionLayout
from zoo.models.base import SIZES, Backbone, BackboneConfig, BackboneSpec, config_for_size

__all__ = ["SIZES", "AttentionLayout", "Backbone", "BackboneConfig", "BackboneSpec", "config_for_size"]
