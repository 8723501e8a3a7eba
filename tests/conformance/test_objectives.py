"""Every registered objective x every compatible registered backbone passes the conformance kit.

Parametrized from the registry, so a newly registered objective (or backbone) is checked
automatically, exactly like the built-ins.
"""

from __future__ import annotations

import pytest

from zoo import registry
from zoo.errors import PluginError
from zoo.testing import check_objective, compatible_backbones


def _cases() -> list:
    cases = []
    for name in registry.names("objective"):
        try:
            backbones = compatible_backbones(name)
        except PluginError as exc:  # a broken plugin fails its own case, not the collection
            cases.append(pytest.param(name, str(exc), id=f"{name}-load-error"))
            continue
        if not backbones:
            cases.append(pytest.param(name, f"objective {name!r} can train none of the registered backbones "
                                            f"{registry.names('backbone')}", id=f"{name}-no-backbone"))
        cases += [pytest.param(name, bb, id=f"{name}-{bb}") for bb in backbones]
    return cases


# Rows long enough for every part to draw at random: UL2's denoisers with mean span 64 cut a text
# shorter than ~640 tokens into a single span, which (as in T5's sampler) leaves nothing to draw.
ROWS = {"ul2": {"seq_len": 672, "batch_size": 2, "steps": 3}}


@pytest.mark.parametrize("objective,backbone", _cases())
def test_registered_objective_conforms(objective: str, backbone: str) -> None:
    if backbone not in registry.names("backbone"):
        pytest.fail(backbone)  # the reason this objective could not be checked
    reports = check_objective(objective, backbone, **ROWS.get(objective, {}))
    assert reports and reports[0].losses[-1] < reports[0].losses[0]


@pytest.mark.parametrize("spec", ["mlm+nsp", "mlm+sop", "span+nsp"])
def test_composition_conforms(spec: str) -> None:
    (report,) = check_objective(spec)
    assert report.backbone == "bert"


def test_mixture_spec_conforms() -> None:
    """GPT-BERT's mixture: both parts run a step on the shared backbone and LM head, heads round-trip."""
    (report,) = check_objective("mntp:15|clm:1", "gpt", batch_size=4)
    assert report.losses[-1] < report.losses[0] and "mixture of mntp, clm" in report.notes[0]
