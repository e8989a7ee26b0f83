"""Errors of the partner exchange. Each has a stable ``code``; no message repeats a card
number, an account id, a PIN or any other value read from a partner's file."""

from __future__ import annotations

from provenance.entries import SignatureError
from provenance.errors import NotFoundError, ValidationError


class UnknownPartnerError(NotFoundError):
    code = "unknown-partner"
    title = "Unknown partner"


class PolicyError(ValidationError):
    code = "bad-sharing-policy"
    title = "Bad sharing policy"


class NoticeFormatError(ValidationError):
    """A notice file that cannot be read; ``line`` (CSV) or ``field`` says where."""

    code = "bad-notice"
    title = "Malformed partner notice"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message, code=code, field=field)
        self.line = line


class NoticeTooLargeError(NoticeFormatError):
    code = "notice-too-large"
    title = "Partner notice too large"


class NoticeSignatureError(SignatureError):
    """The file's detached signature is missing when required, malformed, or does not
    verify with any key the partner has registered and may use now."""

    code = "bad-notice-signature"
    title = "Partner notice signature refused"


class ExportError(ValidationError):
    code = "bad-export"
    title = "Cannot build the STIX bundle"
