"""objective-zoo: pretrain language models with pluggable objectives on pluggable backbones."""

__version__ = "0.1.0"

# Version of the plugin contract (Objective, Backbone, TaskSpec). Plugins may depend on
# ``objective-zoo>=0.1,<0.2``; the API version changes only when the contract changes.
API_VERSION = 1
