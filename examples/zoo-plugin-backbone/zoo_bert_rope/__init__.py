"""``bert-rope``: BERT with rotary position embeddings, registered as an objective-zoo backbone."""

from zoo_bert_rope.model import RopeBertBackbone, RopeBertConfig, RopeBertLayer, apply_rotary, rotary_tables

__version__ = "0.1.0"
__all__ = ["RopeBertBackbone", "RopeBertConfig", "RopeBertLayer", "apply_rotary", "rotary_tables"]
