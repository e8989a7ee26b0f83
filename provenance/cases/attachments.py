"""Attachments stored by content: ``<root>/<first two hex digits>/<sha256>``.

The same bytes are stored once whatever they are called; a file's name is sanitised
before it is kept (it is shown, never used as a path).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from provenance.cases.entries import MAX_ATTACHMENT_BYTES, CaseInputError

MAX_NAME = 120
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def sanitise_name(name: str) -> str:
    """A file name safe to show and to write into a package: no directories, no control
    characters, no leading dots; letters of any script, digits and ``.-_ ()`` kept.

    Raises:
        CaseInputError: nothing usable is left.
    """
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", name))[-1]
    kept = "".join(
        c if (c.isalnum() or c in ".-_ ()") and unicodedata.category(c)[0] != "C" else "_"
        for c in base
    )
    kept = kept.strip(" .")[:MAX_NAME].strip(" .")
    if not kept.strip("_"):
        raise CaseInputError("the attachment's name has no usable characters", field="name")
    return kept


@dataclass(frozen=True, slots=True)
class StoredFile:
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class AttachmentStore:
    """Content-addressed files under ``root``, each at most ``max_bytes``."""

    root: Path
    max_bytes: int = MAX_ATTACHMENT_BYTES

    def put(self, content: bytes) -> StoredFile:
        """Store ``content`` (idempotent) and return its SHA-256 and size.

        Raises:
            CaseInputError: the file is empty or larger than the limit.
        """
        if not content:
            raise CaseInputError("the attachment is empty", field="file")
        if len(content) > self.max_bytes:
            raise CaseInputError(
                f"the attachment is {len(content):,} bytes; the limit is {self.max_bytes:,}",
                field="file",
            )
        digest = hashlib.sha256(content).hexdigest()
        path = self.path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(content)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return StoredFile(digest, len(content))

    def path(self, sha256: str) -> Path:
        """Where the file of that SHA-256 is (or would be) kept.

        Raises:
            CaseInputError: ``sha256`` is not 64 lower-case hex digits.
        """
        if not _SHA256_RE.fullmatch(sha256):
            raise CaseInputError("not a SHA-256 in hex", field="sha256")
        return self.root / sha256[:2] / sha256

    def read(self, sha256: str) -> bytes:
        """The stored bytes, checked against their hash.

        Raises:
            CaseInputError: the file is missing or no longer matches its hash.
        """
        path = self.path(sha256)
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            raise CaseInputError(f"attachment {sha256[:16]} is not in the store") from None
        if hashlib.sha256(content).hexdigest() != sha256:
            raise CaseInputError(f"attachment {sha256[:16]} no longer matches its hash")
        return content
