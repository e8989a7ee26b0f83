"""Fixed keys for tests, so that signatures and fingerprints are reproducible."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# RFC 8032 section 7.1, TEST 1 secret key.
LOG_SIGNING_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
FINGERPRINT_KEY = bytes(range(32))
SESSION_KEY = "test-session-key-0123456789abcdef0123456789abcdef"
PERSONAL_DATA_KEY = bytes(range(32, 64))


def write_key_dir(directory: Path) -> Path:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.from_private_bytes(LOG_SIGNING_SEED)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for name, content in (
        ("log-signing.pem", pem),
        ("fingerprint.key", FINGERPRINT_KEY),
        ("session.key", SESSION_KEY.encode()),
        ("personal-data.key", PERSONAL_DATA_KEY),
    ):
        path = directory / name
        path.write_bytes(content)
        path.chmod(0o600)
    return directory
