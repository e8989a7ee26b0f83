"""Where `cardtrace ledger consistency` gets its proof: a saved file or the API."""

from __future__ import annotations

import base64
import binascii
import json
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from provenance.consistency import ConsistencyResult, check_extends
from provenance.verify import VerificationError


def _decode(document: Any, old: int, new: int, source: str) -> list[bytes]:
    if not isinstance(document, dict) or not isinstance(document.get("proof"), list):
        raise VerificationError(f"{source}: not a consistency proof document", code="bad-proof")
    if document.get("old") != old or document.get("new") != new:
        raise VerificationError(
            f"{source}: the proof is from {document.get('old')} to {document.get('new')}, "
            f"not from {old} to {new}",
            code="bad-proof",
        )
    try:
        return [base64.b64decode(h, validate=True) for h in document["proof"]]
    except (binascii.Error, ValueError, TypeError) as e:
        raise VerificationError(f"{source}: proof hashes are not base64", code="bad-proof") from e


def load_proof(path: str, old: int, new: int) -> list[bytes]:
    try:
        with open(path, "rb") as f:
            document = json.load(f)
    except (OSError, ValueError) as e:
        raise VerificationError(f"{path}: cannot read a JSON proof: {e}", code="bad-proof") from e
    return _decode(document, old, new, path)


def fetch_proof(server: str, old: int, new: int) -> list[bytes]:
    parsed = urllib.parse.urlparse(server)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise VerificationError(f"--server {server!r} is not an http(s) URL", code="bad-proof")
    url = (
        server.rstrip("/")
        + "/api/v1/ledger/proofs/consistency?"
        + urllib.parse.urlencode({"old": old, "new": new})
    )
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (scheme checked)
            document = json.load(response)
    except (OSError, ValueError) as e:
        raise VerificationError(f"cannot fetch the proof from {url}: {e}", code="bad-proof") from e
    return _decode(document, old, new, url)


def check_consistency(
    old_note: bytes,
    new_note: bytes,
    public_key: bytes,
    source: Callable[[int, int], list[bytes]],
) -> ConsistencyResult:
    return check_extends(old_note, new_note, public_key, source)
