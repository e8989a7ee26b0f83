"""Errors of the merchant onboarding package.

Each error says which field or rule it is about, never the value of an ID number, a bank
account or a token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from provenance.errors import CardtraceError, ConflictError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from provenance.imports import LineError


class OnboardingError(CardtraceError):
    """Root of the onboarding package's errors."""

    code = "onboarding-error"
    title = "Onboarding error"


class InvalidApplicationError(ValidationError, OnboardingError):
    """An application's input was refused; nothing was written."""

    code = "invalid-application"
    title = "Invalid application"


class DocumentRefusedError(InvalidApplicationError):
    """A document's content is not an accepted type, or too large."""

    code = "document-refused"
    title = "Document refused"


class DocumentTooLargeError(DocumentRefusedError):
    code = "document-too-large"
    title = "Document too large"


class ApplicationNotFoundError(NotFoundError, OnboardingError):
    code = "application-not-found"
    title = "No such application"


class DuplicateApplicationError(ConflictError, OnboardingError):
    """Another open or approved application already uses that credit code or merchant."""

    code = "duplicate-application"
    title = "Duplicate application"

    def __init__(self, message: str, *, code: str | None = None, field: str) -> None:
        super().__init__(message, code=code)
        self.field = field


class TransitionError(ConflictError, OnboardingError):
    """The application's state does not allow that step."""

    code = "invalid-transition"
    title = "Transition not allowed"


class FourEyesError(ConflictError, OnboardingError):
    """The same officer may not both recommend and decide, nor decide on their own change."""

    code = "four-eyes"
    title = "A second officer must decide"


class AuthenticationError(OnboardingError):
    """No valid token: who is acting is not known."""

    code = "unauthenticated"
    title = "Authentication required"


class PermissionDeniedError(OnboardingError):
    """The acting officer or applicant may not do that (role, or not their application)."""

    code = "forbidden"
    title = "Not permitted"


class RegistryImportError(InvalidApplicationError):
    """A registry extract was refused; the previous extract stays in use."""

    code = "bad-registry-extract"
    title = "Registry extract refused"

    def __init__(self, message: str, *, line: int | None = None, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.line = line


class ScreeningInputError(OnboardingError):
    """A watch-list import or screening request was refused before anything was read."""

    code = "invalid-screening-input"
    title = "Invalid screening input"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class WatchlistImportError(OnboardingError):
    """A watch-list file had bad lines; nothing was imported and the list is unchanged.

    ``errors`` are ``provenance.imports.LineError`` values (line, field, message), at
    most the first hundred; ``total`` counts them all.
    """

    code = "watchlist-import-failed"
    title = "Watch list refused"

    def __init__(self, errors: list[LineError], total: int) -> None:
        shown = "; ".join(str(e) for e in errors[:5])
        more = f" (and {total - 5} more)" if total > 5 else ""
        super().__init__(f"{total} bad line(s), nothing imported: {shown}{more}")
        self.errors = errors
        self.total = total


class WatchlistNotFoundError(OnboardingError):
    """Screening named a watch list that has not been imported."""

    code = "watchlist-not-found"
    title = "No such watch list"


class NoWatchlistError(OnboardingError):
    """No watch list has been imported, so a name cannot be screened."""

    code = "no-watchlist"
    title = "No watch list to screen against"


class HitNotFoundError(NotFoundError, OnboardingError):
    """No such screening hit on that application."""

    code = "hit-not-found"
    title = "No such screening hit"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ScreeningHoldError(ConflictError, OnboardingError):
    """A screening hit stands in the way: one is still open, or one was confirmed."""

    code = "screening-hit-open"
    title = "Screening hits stand in the way"
