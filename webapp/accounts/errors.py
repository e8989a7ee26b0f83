"""The accounts package's errors. Each carries its HTTP status; none echoes a secret."""

from __future__ import annotations

from provenance.errors import CardtraceError


class AccountsError(CardtraceError):
    code = "accounts-error"
    title = "Account error"
    status = 400


class InvalidAccountInputError(AccountsError):
    code = "invalid-account-input"
    title = "Invalid input"
    status = 422

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class AccountExistsError(AccountsError):
    code = "account-exists"
    title = "Account exists"
    status = 409


class AccountNotFoundError(AccountsError):
    code = "account-not-found"
    title = "No such account"
    status = 404


class SignInError(AccountsError):
    """A sign-in step failed. The message never says which part was wrong."""

    code = "sign-in-failed"
    title = "Sign-in failed"
    status = 401


class LockedOutError(SignInError):
    code = "locked-out"
    title = "Too many failed attempts"
    status = 429


class UnauthenticatedError(AccountsError):
    code = "unauthenticated"
    title = "Authentication required"
    status = 401


class ApiKeyInvalidError(UnauthenticatedError):
    code = "api-key-invalid"
    title = "Invalid API key"


class ApiKeyExpiredError(UnauthenticatedError):
    code = "api-key-expired"
    title = "API key expired"


class ApiKeyRevokedError(UnauthenticatedError):
    code = "api-key-revoked"
    title = "API key revoked"


class MixedCredentialsError(AccountsError):
    """An API key and a signed-in session on one request: which one acts is ambiguous."""

    code = "mixed-credentials"
    title = "Two credentials on one request"
    status = 400


class CsrfTokenError(AccountsError):
    code = "csrf-failed"
    title = "CSRF token missing or wrong"
    status = 400


class ForbiddenError(AccountsError):
    code = "forbidden"
    title = "Forbidden"
    status = 403


class ScopeError(ForbiddenError):
    code = "scope-denied"
    title = "Operation outside the credential's scope"


class RateLimitedError(AccountsError):
    code = "rate-limited"
    title = "Too many requests"
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
