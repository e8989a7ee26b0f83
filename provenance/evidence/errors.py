"""Errors of the evidence package."""

from __future__ import annotations

from provenance.errors import ProvenanceError, ValidationError
from provenance.verify import VerificationError


class EvidenceError(ValidationError):
    """A package cannot be made as asked (no checkpoint covers the entries, the output
    directory is not empty, ...)."""

    code = "evidence-refused"
    title = "Evidence package refused"


class PackageVerificationError(VerificationError):
    """A package does not verify; ``path`` names the first file found at fault."""

    code = "package-verification-failed"
    title = "Evidence package does not verify"

    def __init__(self, path: str, message: str, *, code: str | None = None) -> None:
        super().__init__(f"{path}: {message}", code=code)
        self.path = path


__all__ = ["EvidenceError", "PackageVerificationError", "ProvenanceError"]
