"""ELECTRA replaced-token detection for objective-zoo, registered as ``rtd``.

Entry point (``pyproject.toml``)::

    [project.entry-points."zoo.objectives"]
    rtd = "zoo_electra:ReplacedTokenDetection"
"""

import zoo

# Fail at import, with a message, on a plugin API this package was not written for; the registry
# reports it as "objective plugin zoo-electra[rtd] failed to load: ImportError: ...".
SUPPORTED_API = (1,)
if zoo.API_VERSION not in SUPPORTED_API:
    raise ImportError(f"zoo-electra supports objective-zoo plugin API {SUPPORTED_API}, "
                      f"but objective-zoo {zoo.__version__} has API {zoo.API_VERSION}")

from zoo_electra.generator import DiscriminatorHead, Generator, RTDHeads  # noqa: E402
from zoo_electra.rtd import ReplacedTokenDetection, RTDConfig, generator_dims, replace_tokens  # noqa: E402

__version__ = "0.1.0"
__all__ = ["DiscriminatorHead", "Generator", "RTDConfig", "RTDHeads", "ReplacedTokenDetection",
           "generator_dims", "replace_tokens"]
