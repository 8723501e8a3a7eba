"""Error types. A ``ZooError`` is a user-facing error: the CLI prints its message, no traceback."""

from __future__ import annotations


class ZooError(Exception):
    """An error caused by input, configuration or environment, with a message fit for users."""


class ConfigError(ZooError):
    """A configuration key or value is wrong; the message names the key path."""


class PluginError(ZooError):
    """A plugin cannot be found, loaded or used."""


class DataError(ZooError):
    """A corpus, tokenizer or benchmark file cannot be used; the message names the file."""


class CheckpointError(ZooError):
    """A checkpoint is missing, incomplete, corrupt or does not match the run."""


class IncompatibleError(ZooError):
    """An objective cannot train a backbone (missing capability or conflicting parts)."""


class NonFiniteLossError(ZooError):
    """Training produced a non-finite loss."""


class PartialFailure(ZooError):
    """Some models of a multi-model command failed; the others' results were reported and saved."""

    exit_code = 1

    def __init__(self, failed: dict[str, str], what: str = "model(s) could not be scored") -> None:
        shown = "; ".join(f"{name}: {why}" for name, why in failed.items())
        super().__init__(f"{len(failed)} {what} (the others' results are above and saved): {shown}")
