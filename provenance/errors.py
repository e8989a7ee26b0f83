"""The exception tree shared by every cardtrace package.

Each error carries a stable machine-readable ``code`` (used as the problem ``code`` in
the JSON API and printed by the CLI) and a readable message that never contains a card
PIN, a key or personal data.
"""

from __future__ import annotations


class CardtraceError(Exception):
    """Root of every error cardtrace raises on purpose."""

    code: str = "cardtrace-error"
    title: str = "cardtrace error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class ConfigError(CardtraceError):
    """A setting is missing, malformed or points at something unusable."""

    code = "bad-configuration"
    title = "Bad configuration"


class ProvenanceError(CardtraceError):
    """Root of the provenance package's errors."""

    code = "provenance-error"
    title = "Provenance error"


class NotFoundError(ProvenanceError):
    """The thing asked for does not exist."""

    code = "not-found"
    title = "Not found"


class ValidationError(ProvenanceError):
    """Input was refused before anything was written."""

    code = "invalid-input"
    title = "Invalid input"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class ConflictError(ProvenanceError):
    """The request is well formed but contradicts the current state."""

    code = "conflict"
    title = "Conflict"
