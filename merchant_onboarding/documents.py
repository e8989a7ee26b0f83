"""Documents: their type is read from the content (magic bytes), never the file name.

Accepted: PDF, PNG, JPEG, at most :data:`MAX_DOCUMENT_BYTES`. A file named ``licence.pdf``
that holds HTML, a program or an archive is refused, and so is a PNG that claims to be a
PDF: the stored media type is the one the bytes prove.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from merchant_onboarding.errors import DocumentRefusedError, DocumentTooLargeError

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
MAX_FILENAME = 200


class MediaType(StrEnum):
    PDF = "application/pdf"
    PNG = "image/png"
    JPEG = "image/jpeg"


class DocumentKind(StrEnum):
    BUSINESS_LICENCE = "business_licence"
    PAYMENT_LICENCE = "payment_licence"
    CLEARING_AGREEMENT = "clearing_agreement"
    CUSTODY_AGREEMENT = "custody_agreement"
    ID_SCAN = "id_scan"
    ICP_FILING = "icp_filing"
    OTHER = "other"


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def sniff(content: bytes) -> MediaType | None:
    """The media type the bytes prove, or ``None``.

    PDF: ``%PDF-1.x`` or ``%PDF-2.0`` at byte 0 and an ``%%EOF`` marker in the last
    kilobyte (ISO 32000-2 section 7.5.2 and 7.5.5). PNG: the 8-byte signature followed by
    the ``IHDR`` chunk (RFC 2083 section 3.1, 4.1.1). JPEG: SOI ``FF D8`` then a marker
    ``FF xx`` (ITU T.81 annex B).
    """
    if (
        content.startswith((b"%PDF-1.", b"%PDF-2."))
        and len(content) >= 16
        and b"%%EOF" in content[-1024:]
    ):
        return MediaType.PDF
    if content.startswith(_PNG_SIGNATURE) and content[12:16] == b"IHDR":
        return MediaType.PNG
    if len(content) >= 4 and content[:3] == b"\xff\xd8\xff" and content[3] not in (0x00, 0xFF):
        return MediaType.JPEG
    return None


@dataclass(frozen=True, slots=True)
class CheckedDocument:
    """Content that passed the limits, with the facts read from it."""

    content: bytes
    sha256: bytes
    media_type: MediaType
    filename: str

    @property
    def size(self) -> int:
        return len(self.content)


def clean_filename(name: str) -> str:
    """The last path part of a client's file name, without control characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip()
    return base[:MAX_FILENAME] or "document"


def check_document(content: bytes, filename: str, field: str = "file") -> CheckedDocument:
    """Accept a document by its content.

    Raises:
        DocumentTooLargeError: more than :data:`MAX_DOCUMENT_BYTES`.
        DocumentRefusedError: empty, or not a PDF, PNG or JPEG whatever its name says.
    """
    if len(content) > MAX_DOCUMENT_BYTES:
        raise DocumentTooLargeError(
            f"{field}: the document is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB",
            field=field,
        )
    if not content:
        raise DocumentRefusedError(f"{field}: the document is empty", field=field)
    media_type = sniff(content)
    if media_type is None:
        raise DocumentRefusedError(
            f"{field}: the content is not a PDF, PNG or JPEG document (the type is read "
            "from the content, not the file name)",
            code="document-type",
            field=field,
        )
    return CheckedDocument(
        content, hashlib.sha256(content).digest(), media_type, clean_filename(filename)
    )
