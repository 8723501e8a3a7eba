"""Pretraining objectives. Each is registered in the ``zoo.objectives`` entry-point group and loaded
on demand through ``zoo.registry``; ``zoo.objectives.compose`` builds specs such as ``mlm+nsp``.

The names below are the public plugin API (``zoo.API_VERSION``); see docs/plugins.md. They are
imported on first use, so ``import zoo.objectives`` stays cheap::

    from zoo.objectives import Objective, LossOutput, TiedLinear, MaskedLM, MLMConfig
"""

from __future__ import annotations

from zoo._lazy import lazy_getattr

_EXPORTS = {
    # the contract
    "Objective": "zoo.objectives.base", "LossOutput": "zoo.objectives.base", "NoConfig": "zoo.objectives.base",
    "TiedLinear": "zoo.objectives.base", "position_embedding": "zoo.objectives.base",
"perplexity": "zoo.objectives.base",
    # helpers for token-level objectives
    "IGNORE": "zoo.objectives.common", "gather_positions": "zoo.objectives.common",
    "special_mask_of": "zoo.objectives.common", "non_special_ids": "zoo.objectives.common",
    "unmaskable_ids": "zoo.objectives.common",
    "require_tokens": "zoo.objectives.common", "token_cross_entropy": "zoo.objectives.common",
    # BERT masking (prepare) and its head, for objectives that build on masked LM
    "MaskedLM": "zoo.objectives.mlm", "MLMConfig": "zoo.objectives.mlm", "MaskedLMHead": "zoo.objectives.mlm",
    # next-token prediction: the tied LM head and loss, prefix-LM rows, paradigm tokens
    "LanguageModelBase": "zoo.objectives.clm", "next_token_labels": "zoo.objectives.clm",
    "prefix_lm_rows": "zoo.objectives.prefix", "prepend_token": "zoo.objectives.prefix",
    # T5's span sampler and the two forms of span corruption
    "random_spans_noise_mask": "zoo.objectives.noise", "noise_counts": "zoo.objectives.noise",
    "SpanMasking": "zoo.objectives.span_mask", "span_mask_row": "zoo.objectives.span_mask",
    "SpanLM": "zoo.objectives.span_lm", "span_lm_pair": "zoo.objectives.span_lm",
    # mixtures: named mixtures (plugins) subclass Mixture and list Components; specs parse into a Spec
    "Mixture": "zoo.objectives.mixture", "Component": "zoo.objectives.mixture", "Member": "zoo.objectives.mixture",
    "parse_spec": "zoo.objectives.spec", "Spec": "zoo.objectives.spec",
    "MixturePart": "zoo.objectives.spec", "Composition": "zoo.objectives.spec", "Term": "zoo.objectives.spec",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
