"""Conformance kit for plugins, and the fixtures plugin tests need.

A plugin package runs the same checks as objective-zoo's own objectives and suites::

    from zoo.testing import check_objective, check_suite

    def test_my_objective_conforms():
        check_objective(MyObjective)            # every compatible registered backbone
        check_objective("my-objective+nsp")     # or a registered spec, composition included

    def test_my_suite_conforms():
        check_suite("my-suite")                 # its bundled pairs, or check_suite("my-suite", folder)

    def test_my_scorer_conforms():
        check_scorer("my-reading")              # on a tiny random model of the reading's kind

The checks raise ``ConformanceError`` (an ``AssertionError``) naming the plugin and what went wrong.
Fixtures (``zoo.testing.fixtures``): ``special_tokens_for_tests``, ``InMemorySource``,
``synthetic_source``, ``synthetic_rows``, ``synthetic_segments``, ``tiny_backbone``.
"""

from zoo.testing.conformance import (
    LAYOUTS,
    ConformanceError,
    ConformanceReport,
    check_capabilities,
    check_objective,
    check_prepare,
    check_state_dict,
    check_training,
    compatible_backbones,
    make_data,
)
from zoo.testing.fixtures import (
    FAMILIES,
    InMemorySource,
    special_tokens_for_tests,
    synthetic_rows,
    synthetic_segments,
    synthetic_source,
    tiny_backbone,
)
from zoo.testing.zeroshot import check_scorer, check_suite

__all__ = [
    "FAMILIES", "LAYOUTS", "ConformanceError", "ConformanceReport", "InMemorySource", "check_capabilities",
    "check_objective", "check_prepare", "check_scorer", "check_state_dict", "check_suite", "check_training", "compatible_backbones",
    "make_data", "special_tokens_for_tests", "synthetic_rows", "synthetic_segments", "synthetic_source",
    "tiny_backbone",
]
