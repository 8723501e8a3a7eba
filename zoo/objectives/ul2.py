"""UL2's mixture of denoisers (Tay et al., 2022, "Unifying Language Learning Paradigms"), a named mixture.

The paper's final objective mixes seven denoisers, each written (mean span length, corruption rate):

* R, regular span corruption: (3, 15%) and (8, 15%), paradigm token ``[R]``;
* S, sequential denoising: a prefix LM whose target is the last 25% of the text (one span of L/4),
  paradigm token ``[S]``;
* X, extreme denoising: (3, 50%), (8, 50%), (64, 15%) and (64, 50%), paradigm token ``[X]``.

R and X are T5 span corruption in its prefix-LM form (``span-lm``: the corrupted text is a
bidirectional prefix, the spans are predicted causally after it), S is ``prefix`` with
``target_fraction = 0.25``; all share the tied LM head (``head_key = "lm"``). Each paradigm gets a
third of the steps, split evenly among its denoisers (R 1/6 + 1/6, S 1/3, X 4 x 1/12). The paper lists
the denoisers but this module's shares are a choice, the one of birdie's UL2 configuration
(samblouir/birdie, ``ul2_config.py``); a plugin can register other shares the same way.

This module is registered like any plugin (entry point ``ul2 = "zoo.objectives.ul2:UL2"``); it is a
model of how a plugin defines a named mixture.
"""

from __future__ import annotations

from zoo.objectives.mixture import Component, Mixture


def _span(paradigm: str, mean_span: int, rate: float, share: float) -> Component:
    label = f"{paradigm.strip('[]').lower()}-{mean_span}-{round(rate * 100)}"
    return Component(label, "span-lm", share,
                     {"mean_span_length": float(mean_span), "noise_density": rate, "paradigm": paradigm})


class UL2(Mixture):
    """R, S and X denoisers with their paradigm tokens, a third of the steps each."""

    name = "ul2"
    components = (
        _span("[R]", 3, 0.15, 2.0),
        _span("[R]", 8, 0.15, 2.0),
        Component("s-25", "prefix", 4.0, {"paradigm": "[S]", "target_fraction": 0.25}),
        _span("[X]", 3, 0.50, 1.0),
        _span("[X]", 8, 0.50, 1.0),
        _span("[X]", 64, 0.15, 1.0),
        _span("[X]", 64, 0.50, 1.0),
    )
