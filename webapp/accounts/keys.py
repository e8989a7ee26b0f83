"""Keys of the accounts package, derived from the platform's personal-data key.

The TOTP secrets are sealed with AES-256-GCM (a fresh nonce each, the username bound in
as associated data, so a sealed secret copied onto another row does not open); recovery
codes are stored as HMAC-SHA256 under a derived key, so a copy of the database alone
cannot be searched for them offline.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from webapp.accounts.errors import AccountsError

_NONCE = 12
_TOTP_AAD = b"cardtrace/accounts/totp/v1\n"


class SealedSecretError(AccountsError):
    code = "second-factor-unreadable"
    title = "Second factor cannot be read"
    status = 500


def _derive(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


class AccountKeys:
    """Seals TOTP secrets and digests recovery codes."""

    __slots__ = ("_aead", "_name_key", "_recovery_key")

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError("the personal-data key must be 32 bytes")
        self._aead = AESGCM(_derive(master_key, b"cardtrace/accounts/totp-aes-gcm/v1"))
        self._recovery_key = _derive(master_key, b"cardtrace/accounts/recovery-hmac/v1")
        self._name_key = _derive(master_key, b"cardtrace/accounts/unknown-name-hmac/v1")

    def __repr__(self) -> str:
        return "AccountKeys(<keys hidden>)"

    def seal_totp(self, username: str, secret: str) -> bytes:
        nonce = os.urandom(_NONCE)
        aad = _TOTP_AAD + username.encode()
        return nonce + self._aead.encrypt(nonce, secret.encode("ascii"), aad)

    def open_totp(self, username: str, sealed: bytes) -> str:
        """Raises SealedSecretError if it was not sealed with this key for this user."""
        try:
            clear = self._aead.decrypt(
                sealed[:_NONCE], sealed[_NONCE:], _TOTP_AAD + username.encode()
            )
        except (InvalidTag, ValueError) as e:
            raise SealedSecretError("a TOTP secret does not open with this key") from e
        return clear.decode("ascii")

    def recovery_digest(self, user_id: int, code: str) -> bytes:
        message = f"{user_id}\x00{normalise_recovery_code(code)}".encode()
        return hmac.new(self._recovery_key, message, hashlib.sha256).digest()

    def name_digest(self, username: str) -> str:
        """A keyed digest of a typed username, to throttle names nobody holds."""
        return hmac.new(self._name_key, username.encode(), hashlib.sha256).hexdigest()


def normalise_recovery_code(code: str) -> str:
    """Recovery codes are typed with or without dashes, in either case."""
    return "".join(ch for ch in code.upper() if ch.isalnum())
