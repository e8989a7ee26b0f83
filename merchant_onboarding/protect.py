"""Personal data at rest: AES-GCM sealing, keyed look-ups, masks.

ID numbers, bank accounts and document contents are stored sealed (AES-256-GCM, a fresh
96-bit nonce per value, the purpose bound in as associated data so a sealed bank account
cannot be passed off as an ID number). Re-use is found through a keyed HMAC of the
normalised value, never the clear value. Both keys are derived (HKDF-SHA256) from one
32-byte master key that ``cardtrace init`` generates beside the platform's other secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from enum import StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from merchant_onboarding.errors import OnboardingError

_NONCE_BYTES = 12
_AAD_PREFIX = b"cardtrace/personal-data/v1\n"


class Purpose(StrEnum):
    """What a sealed value is; part of its associated data and of its look-up key."""

    ID_NUMBER = "id-number"
    BANK_ACCOUNT = "bank-account"
    DOCUMENT = "document"


class SealError(OnboardingError):
    code = "personal-data-unreadable"
    title = "Personal data cannot be decrypted"


def _derive(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


class PersonalData:
    """Seals and opens personal data, and makes keyed pseudonyms of it for look-ups."""

    __slots__ = ("_aead", "_lookup_key")

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError("the personal-data key must be 32 bytes")
        self._aead = AESGCM(_derive(master_key, b"cardtrace/personal-data/aes-gcm/v1"))
        self._lookup_key = _derive(master_key, b"cardtrace/personal-data/lookup-hmac/v1")

    def __repr__(self) -> str:
        return "PersonalData(<key hidden>)"

    def seal(self, purpose: Purpose, clear: bytes) -> bytes:
        """``nonce || ciphertext || tag``."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, clear, _AAD_PREFIX + purpose.value.encode())

    def open(self, purpose: Purpose, sealed: bytes) -> bytes:
        """Raises SealError if the value was not sealed with this key for this purpose."""
        try:
            return self._aead.decrypt(
                sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _AAD_PREFIX + purpose.value.encode()
            )
        except (InvalidTag, ValueError) as e:
            raise SealError(f"a sealed {purpose.value} does not open with this key") from e

    def seal_text(self, purpose: Purpose, clear: str) -> bytes:
        return self.seal(purpose, clear.encode("utf-8"))

    def open_text(self, purpose: Purpose, sealed: bytes) -> str:
        return self.open(purpose, sealed).decode("utf-8")

    def lookup(self, purpose: Purpose, normalised: str) -> bytes:
        """HMAC-SHA256 over the purpose and the normalised value: equal values, equal tags."""
        message = purpose.value.encode() + b"\x00" + normalised.encode("utf-8")
        return hmac.new(self._lookup_key, message, hashlib.sha256).digest()


def mask_id_number(number: str) -> str:
    """``110105194912310029`` -> ``110***********0029``."""
    if len(number) <= 7:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def mask_account(account: str) -> str:
    """``6222021234567890123`` -> ``6222***********0123``."""
    if len(account) <= 8:
        return "*" * (len(account) - 2) + account[-2:]
    return account[:4] + "*" * (len(account) - 8) + account[-4:]
