"""The exceptions metaboot raises on purpose.

Every message is meant for the person who supplied the input: it names the input (a file, a
field, a path, a header) and what is wrong with it, so the CLI can print it as is and the HTTP
layer can return it without a traceback.
"""

from __future__ import annotations


class MetabootError(Exception):
    """Base of every deliberate error; ``str(err)`` is the user-facing message."""


class SpecError(MetabootError):
    """An instance spec (YAML/JSON) is invalid; ``field`` is the dotted path of the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}" if field else problem)


class NotFoundError(MetabootError):
    """A named thing (instance, path, version) does not exist."""


class ConflictError(MetabootError):
    """The request contradicts the current state (an already-set password, a duplicate uuid)."""


class ConfigError(MetabootError):
    """A configuration file or option is invalid."""


class DriveError(MetabootError):
    """A config drive cannot be built or read."""


class UserDataError(MetabootError):
    """A user-data or vendor-data part cannot be understood."""


class NetworkConfigError(MetabootError):
    """Network data cannot be turned into a configuration."""


class SourceError(MetabootError):
    """A guest data source was found but could not be read."""
