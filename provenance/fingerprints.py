"""Keyed fingerprints: how a card code is known without its PIN ever being stored.

A code is identified by ``HMAC-SHA256(platform key, encode(context, issuer, product,
serial, PIN))``, and also by a serial-only fingerprint that reveals "same serial,
different PIN". People, accounts, instruments, devices and IP addresses appear on the
ledger only as keyed pseudonyms. The encoding is length-prefixed (each field: 4-byte
big-endian length, then its UTF-8 bytes) after a context string, so no two different
field lists encode alike and fingerprints of different kinds never collide.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import NewType

from provenance.errors import ValidationError

CodeFingerprint = NewType("CodeFingerprint", bytes)
SerialFingerprint = NewType("SerialFingerprint", bytes)

CODE_CONTEXT = b"cardtrace/code/v1"
SERIAL_CONTEXT = b"cardtrace/serial/v1"
PSEUDONYM_CONTEXT = b"cardtrace/pseudonym/v1"
MAX_CODE_PART = 64

_SEPARATORS = str.maketrans("", "", " -\t")
_CODE_PART_RE = re.compile(r"[0-9A-Z]+")


class CodeFormatError(ValidationError):
    code = "bad-code"
    title = "Malformed card code"


def _encode(context: bytes, *fields: str) -> bytes:
    parts = [context]
    for value in fields:
        raw = value.encode("utf-8")
        parts.append(len(raw).to_bytes(4, "big"))
        parts.append(raw)
    return b"".join(parts)


def normalise_part(value: str, field: str) -> str:
    """Serials and PINs are compared without spaces or dashes, in upper case.

    Raises:
        CodeFormatError: empty, too long, or not letters and digits (the message never
            repeats the value: it may be a PIN).
    """
    if not isinstance(value, str):
        raise CodeFormatError(f"{field} must be text", field=field)
    cleaned = value.translate(_SEPARATORS)
    # Check before upper-casing: Unicode case rules would turn "ß" into "SS".
    cleaned = cleaned.upper() if cleaned.isascii() else ""
    if not cleaned or len(cleaned) > MAX_CODE_PART or not _CODE_PART_RE.fullmatch(cleaned):
        raise CodeFormatError(
            f"{field} must be 1-{MAX_CODE_PART} letters or digits (spaces and dashes ignored)",
            field=field,
        )
    return cleaned


def code_fingerprint(
    key: bytes, issuer: str, product: str, serial: str, pin: str
) -> CodeFingerprint:
    """The code's identity; ``serial`` and ``pin`` must already be normalised."""
    message = _encode(CODE_CONTEXT, issuer, product, serial, pin)
    return CodeFingerprint(hmac.new(key, message, hashlib.sha256).digest())


def serial_fingerprint(key: bytes, issuer: str, product: str, serial: str) -> SerialFingerprint:
    """The serial's identity, the same whatever PIN goes with it."""
    message = _encode(SERIAL_CONTEXT, issuer, product, serial)
    return SerialFingerprint(hmac.new(key, message, hashlib.sha256).digest())


class ProductFingerprints:
    """:func:`code_fingerprint` and :func:`serial_fingerprint` for the codes of one
    product, the same values computed faster: the keyed hash and the encoded issuer and
    product are prepared once, not for every code of a million-code import."""

    __slots__ = ("_code_prefix", "_keyed", "_serial_prefix")

    def __init__(self, key: bytes, issuer: str, product: str) -> None:
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)
        self._code_prefix = _encode(CODE_CONTEXT, issuer, product)
        self._serial_prefix = _encode(SERIAL_CONTEXT, issuer, product)

    def _mac(self, message: bytes) -> bytes:
        mac = self._keyed.copy()
        mac.update(message)
        return mac.digest()

    def code(self, serial: str, pin: str) -> CodeFingerprint:
        """The code's identity; ``serial`` and ``pin`` must already be normalised."""
        return CodeFingerprint(self._mac(_encode(self._code_prefix, serial, pin)))

    def serial(self, serial: str) -> SerialFingerprint:
        """The serial's identity, the same whatever PIN goes with it."""
        return SerialFingerprint(self._mac(_encode(self._serial_prefix, serial)))


def pseudonym(key: bytes, kind: str, value: str) -> str:
    """A stable keyed pseudonym (32 hex digits) for a person, account, device, IP, ...

    Erasing the personal data behind it leaves the pseudonym meaningless, and the ledger
    intact.
    """
    message = _encode(PSEUDONYM_CONTEXT, kind, value.strip())
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]
