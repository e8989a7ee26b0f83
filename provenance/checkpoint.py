"""Signed notes and transparency-log checkpoints, as pure functions over bytes.

Two C2SP specifications, both pinned at the version cited in the comments:

- c2sp.org/signed-note@v1.0.0: a UTF-8 text signed by one or more keys. Only Ed25519
  signatures (signature type 0x01) are made and checked here; signatures of any other
  type, or from any key the caller does not trust, are ignored as the spec requires.
- c2sp.org/tlog-checkpoint@v1.0.0: the note text a log signs to commit to its Merkle
  tree head (origin, tree size, root hash, optional extension lines).

Nothing here reads a clock, a database or the environment: keys and trust come in as
parameters. Every refusal raises :class:`CheckpointError` (or its subclass
:class:`NoteSignatureError` when the signatures do not check out); messages name keys by
their key name only, never by key material.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NewType, Self

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from provenance.errors import ProvenanceError

KeyId = NewType("KeyId", bytes)
"""The 4-byte key ID (the spec's "key hash") that a signature line carries."""

ED25519_SIGNATURE_TYPE = 0x01
"""signed-note §Signature types: the identifier byte of Ed25519 note signatures."""

MAX_NOTE_SIZE = 1 << 20
"""The largest note, in bytes, that :func:`open_note` reads or :func:`sign_note` makes.

signed-note §Format asks verifiers to bound a note's size or signature count, but to
accept at least 16 signatures of up to nearly 5 kB each; 1 MiB leaves room for that and
for a long text while keeping a hostile note cheap to refuse.
"""

MAX_SIGNATURES = 100
"""The most signature lines a note may carry (the spec's floor is 16; Go's sumdb uses 100)."""

HASH_SIZE = 32
"""The size of an RFC 6962 (SHA-256) Merkle tree root hash, in bytes."""

MAX_TREE_SIZE = 2**64 - 1
"""The largest tree size accepted: RFC 6962 tree sizes are 64-bit unsigned integers."""

_KEY_ID_SIZE = 4
_ED25519_PUBLIC_KEY_SIZE = 32
_ED25519_SIGNATURE_SIZE = 64
_SIGNATURE_PREFIX = "\u2014 "  # em dash (U+2014), space
# ASCII control characters other than newline (signed-note §Format).
_CONTROL_CHARACTER = re.compile(r"[\x00-\x09\x0b-\x1f]")
# tlog-checkpoint §Note text, line 2: ASCII decimal, no leading zeros unless the tree is
# empty. Explicit ASCII classes, because int() alone would also take "+5", " 5", "5_0" or
# other scripts' digits. Twenty digits are enough for any 64-bit size.
_TREE_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
# signed-note §Conventions: hex is fixed-length lowercase.
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")


class CheckpointError(ProvenanceError):
    """A signed note, verifier key or checkpoint is malformed or is not the one expected."""

    code = "bad-checkpoint"
    title = "Bad checkpoint"


class NoteSignatureError(CheckpointError):
    """A note has no valid signature from a trusted key, or a trusted key's signature fails."""

    code = "bad-note-signature"
    title = "Bad note signature"


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A trusted Ed25519 note key: the name it signs under and its public key.

    Attributes:
        name: The key name written in signature lines (e.g. ``example.com/log``).
        public_key: The 32-byte RFC 8032 encoding of the Ed25519 public key.

    Raises:
        CheckpointError: The name is not a valid key name, or the key is not 32 bytes.
    """

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if not isinstance(self.public_key, bytes) or len(self.public_key) != (
            _ED25519_PUBLIC_KEY_SIZE
        ):
            raise CheckpointError("an Ed25519 public key must be exactly 32 bytes")

    @classmethod
    def from_public_key(cls, name: str, public_key: Ed25519PublicKey) -> Self:
        """Builds the verifier key for ``public_key`` signing under ``name``.

        Args:
            name: The key name.
            public_key: The Ed25519 public key.

        Returns:
            The verifier key.

        Raises:
            CheckpointError: The name is not a valid key name.
        """
        return cls(name, public_key.public_bytes_raw())

    @property
    def key_id(self) -> KeyId:
        """The 4-byte key ID of this key under its name."""
        return _key_id(self.name, self.public_key)


@dataclass(frozen=True, slots=True)
class OpenedNote:
    """A note whose signatures were checked.

    Attributes:
        text: The note text, including its final newline but not the blank line after it.
        signers: The trusted keys whose signatures verified, in the order they first
            appear in the note, each once.
    """

    text: str
    signers: tuple[VerifierKey, ...]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A transparency log's signed commitment to its Merkle tree head.

    tlog-checkpoint §Note text: the origin, the tree size and the root hash, then any
    extension lines. Construction validates, so a holder can serialise any instance.

    Attributes:
        origin: The log's identity, a non-empty line (e.g. ``example.com/log42``).
        size: The number of leaves in the tree, ``0 <= size < 2**64``.
        root: The 32-byte RFC 6962 root hash of the tree at ``size``.
        extensions: Opaque extra lines, each non-empty.

    Raises:
        CheckpointError: A field breaks one of the rules above.
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_checkpoint_line("origin", self.origin)
        # bool is an int subclass; True is not a tree size.
        if type(self.size) is not int or not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError("checkpoint tree size must be an integer from 0 to 2**64 - 1")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise CheckpointError("checkpoint root hash must be exactly 32 bytes")
        if not isinstance(self.extensions, tuple):
            raise CheckpointError("checkpoint extension lines must be a tuple of strings")
        for extension in self.extensions:
            _check_checkpoint_line("extension line", extension)

    def to_bytes(self) -> bytes:
        """Serialises the checkpoint as note text (tlog-checkpoint §Note text).

        Returns:
            The UTF-8 lines, each ending in a newline.
        """
        lines = (self.origin, str(self.size), _encode_base64(self.root), *self.extensions)
        return "".join(line + "\n" for line in lines).encode("utf-8")

    @classmethod
    def from_bytes(cls, body: bytes) -> Self:
        """Parses checkpoint note text, refusing anything but the canonical form.

        Only text from a note whose signature has verified should reach this (signed-note:
        the text MUST be ignored until then); :func:`verify_checkpoint` does both.

        Args:
            body: The note text: origin, size and root hash lines, then extension lines.

        Returns:
            The checkpoint; ``from_bytes(c.to_bytes()) == c`` for every checkpoint ``c``.

        Raises:
            CheckpointError: The text is not valid UTF-8, does not end in a newline, has
                fewer than three lines, has an empty line or a control character, a size
                that is not canonical decimal, or a root that is not 32 bytes in padded
                standard base64.
        """
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CheckpointError("checkpoint is not valid UTF-8") from e
        if _CONTROL_CHARACTER.search(text) is not None:
            raise CheckpointError("checkpoint contains a control character other than newline")
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("checkpoint must have origin, tree size and root hash lines")
        origin, size_text, root_text, *extensions = lines
        if _TREE_SIZE.fullmatch(size_text) is None:
            raise CheckpointError(
                "checkpoint tree size must be ASCII decimal digits without leading zeros"
            )
        root = _decode_base64(root_text)
        if root is None:
            raise CheckpointError("checkpoint root hash must be padded standard base64")
        return cls(origin, int(size_text), root, tuple(extensions))


def note_key_id(name: str, public_key: Ed25519PublicKey) -> KeyId:
    """Computes the key ID that an Ed25519 key signs under with a given name.

    Args:
        name: The key name.
        public_key: The Ed25519 public key.

    Returns:
        SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4].

    Raises:
        CheckpointError: The name is not a valid key name.
    """
    return VerifierKey.from_public_key(name, public_key).key_id


def format_verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """Encodes an Ed25519 key as a verifier key string ("vkey").

    Args:
        name: The key name.
        public_key: The Ed25519 public key.

    Returns:
        ``<name>+<hex key ID>+<base64(0x01 || public key)>`` (signed-note §Verifier keys).

    Raises:
        CheckpointError: The name is not a valid key name.
    """
    key = VerifierKey.from_public_key(name, public_key)
    material = bytes([ED25519_SIGNATURE_TYPE]) + key.public_key
    return f"{key.name}+{key.key_id.hex()}+{_encode_base64(material)}"


def parse_verifier_key(vkey: str) -> VerifierKey:
    """Decodes an Ed25519 verifier key string ("vkey"), checking its key ID.

    Args:
        vkey: ``<name>+<hex key ID>+<base64(0x01 || public key)>``.

    Returns:
        The verifier key.

    Raises:
        CheckpointError: The string is not in that form, its key is not Ed25519, or its
            key ID does not match its name and key.
    """
    # signed-note §Verifier keys. A name holds no '+', but base64 may: split twice only.
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise CheckpointError("a verifier key must be <name>+<key ID>+<key>")
    name, key_id_hex, encoded = parts
    _check_key_name(name)
    if _KEY_ID_HEX.fullmatch(key_id_hex) is None:
        raise CheckpointError("a verifier key's key ID must be 8 lowercase hex digits")
    material = _decode_base64(encoded)
    if not material:
        raise CheckpointError("a verifier key's key must be padded standard base64")
    if material[0] != ED25519_SIGNATURE_TYPE:
        raise CheckpointError("verifier key is not an Ed25519 (signature type 0x01) key")
    key = VerifierKey(name, material[1:])
    # The key ID is what signature lines are matched on: one that disagrees with the key
    # would make the key silently ignore every signature it made.
    if key.key_id != bytes.fromhex(key_id_hex):
        raise CheckpointError("verifier key's key ID does not match its name and key")
    return key


def sign_note(text: str, name: str, private_key: Ed25519PrivateKey) -> bytes:
    """Signs a text as a note with one Ed25519 signature.

    Args:
        text: The note text; it ends in a newline and holds no control characters other
            than newline. It may contain empty lines.
        name: The key name to sign under.
        private_key: The Ed25519 signing key.

    Returns:
        ``text``, a blank line, and the line ``— <name> <base64(key ID || signature)>``.

    Raises:
        CheckpointError: The text or name breaks the rules above, or the note would be
            larger than :data:`MAX_NOTE_SIZE`.
    """
    # signed-note §Format: a text ending in newline, valid UTF-8, no control characters
    # but newline.
    if not text.endswith("\n"):
        raise CheckpointError("note text must end with a newline")
    if _CONTROL_CHARACTER.search(text) is not None:
        raise CheckpointError("note text must not contain control characters other than newline")
    body = _encode_utf8(text, "note text")
    key = VerifierKey.from_public_key(name, private_key.public_key())
    # signed-note §Ed25519 signatures: RFC 8032 Ed25519 over the note text.
    signature = key.key_id + private_key.sign(body)
    line = f"{_SIGNATURE_PREFIX}{key.name} {_encode_base64(signature)}\n"
    note = body + b"\n" + line.encode("utf-8")
    if len(note) > MAX_NOTE_SIZE:
        raise CheckpointError(f"signed note would be larger than {MAX_NOTE_SIZE} bytes")
    return note


def open_note(note: bytes, verifiers: Iterable[VerifierKey]) -> OpenedNote:
    """Parses a signed note and checks its signatures against the trusted keys.

    Signatures whose (key name, key ID) matches no trusted key are ignored. Every
    signature from a trusted key must verify, and at least one must be present.

    Args:
        note: The signed note.
        verifiers: The trusted keys.

    Returns:
        The note text and the trusted keys that signed it.

    Raises:
        CheckpointError: The note is malformed or larger than :data:`MAX_NOTE_SIZE`, has
            more than :data:`MAX_SIGNATURES` signature lines, or two different trusted
            keys share a name and key ID.
        NoteSignatureError: A trusted key's signature does not verify, or no trusted key
            signed the note.
    """
    # Step 1, signed-note §Format: bound the work before reading anything.
    if len(note) > MAX_NOTE_SIZE:
        raise CheckpointError(f"note is larger than {MAX_NOTE_SIZE} bytes")
    # Step 2, §Format: valid UTF-8, no ASCII control characters other than newline.
    try:
        decoded = note.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CheckpointError("note is not valid UTF-8") from e
    if _CONTROL_CHARACTER.search(decoded) is not None:
        raise CheckpointError("note contains a control character other than newline")
    # Step 3, §Format: the text (which may hold empty lines) ends at the last empty line;
    # signature lines follow, each ending in a newline.
    split = decoded.rfind("\n\n")
    if split < 0:
        raise CheckpointError("note has no blank line before its signatures")
    text, block = decoded[: split + 1], decoded[split + 2 :]
    if not block:
        raise CheckpointError("note has no signature lines")
    if not block.endswith("\n"):
        raise CheckpointError("note's last signature line must end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"note has more than {MAX_SIGNATURES} signatures")
    signatures = [_parse_signature_line(line) for line in lines]
    # Step 4, §Signatures: a signature belongs to a trusted key only when both its key
    # name and key ID match; anything else is ignored, even if one of the two matches.
    trusted = _index_trusted_keys(verifiers)
    body = text.encode("utf-8")
    signers: list[VerifierKey] = []
    for signature in signatures:
        key = trusted.get((signature.name, signature.key_id))
        if key is None:
            continue
        # Step 5, §Signatures: a known key's signature MUST be verified, and the whole
        # note is refused if it fails (SHOULD, taken as MUST here). Every line is checked,
        # repeats included, so a bad line cannot hide behind a good one.
        if not _verify_ed25519(key, body, signature.signature):
            raise NoteSignatureError(f"signature by trusted key {key.name!r} does not verify")
        if key not in signers:
            signers.append(key)
    # Step 6, §Signatures: no verified signature from a known key, no note.
    if not signers:
        raise NoteSignatureError("note has no signature from a trusted key")
    return OpenedNote(text, tuple(signers))


def sign_checkpoint(checkpoint: Checkpoint, name: str, private_key: Ed25519PrivateKey) -> bytes:
    """Signs a checkpoint as a note with one Ed25519 signature.

    tlog-checkpoint §Signatures recommends, but does not require, that ``name`` be the
    checkpoint's origin.

    Args:
        checkpoint: The checkpoint to sign.
        name: The key name to sign under.
        private_key: The log's Ed25519 signing key.

    Returns:
        The signed note.

    Raises:
        CheckpointError: The name is not a valid key name, or the note would be too large.
    """
    return sign_note(checkpoint.to_bytes().decode("utf-8"), name, private_key)


def verify_checkpoint(
    note: bytes, origin: str, name: str, public_key: Ed25519PublicKey
) -> Checkpoint:
    """Checks a signed checkpoint from the log ``origin`` against that log's key.

    Signatures by other keys (witness cosignatures, a rotated key) are ignored.

    Args:
        note: The signed checkpoint note.
        origin: The origin line the checkpoint must carry.
        name: The key name the log signs under.
        public_key: The log's Ed25519 public key.

    Returns:
        The checkpoint.

    Raises:
        CheckpointError: The note or its checkpoint text is malformed, or the checkpoint
            is for another origin.
        NoteSignatureError: The log's key did not sign the note, or its signature does not
            verify.
    """
    trusted = VerifierKey.from_public_key(name, public_key)
    # signed-note: the text is ignored until a trusted signature on it has verified, so
    # the signature is checked before the checkpoint is parsed.
    opened = open_note(note, [trusted])
    checkpoint = Checkpoint.from_bytes(opened.text.encode("utf-8"))
    # A log's key may sign for several logs, or a key may be reused; a valid signature
    # only says the log said it, not that it is the checkpoint of the log asked about.
    if checkpoint.origin != origin:
        raise CheckpointError(f"checkpoint is for origin {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


@dataclass(frozen=True, slots=True)
class _SignatureLine:
    name: str
    key_id: KeyId
    signature: bytes


def _parse_signature_line(line: str) -> _SignatureLine:
    # signed-note §Format: em dash, space, key name, space, base64(key ID || signature).
    if not line.startswith(_SIGNATURE_PREFIX):
        raise CheckpointError("note signature line must start with an em dash and a space")
    name, space, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
    if not space:
        raise CheckpointError("note signature line must have a key name and a signature")
    _check_key_name(name)
    raw = _decode_base64(encoded)
    # §Format: 4 + n bytes. Lengths are only checked further for trusted keys: other
    # signature types are ignored whatever their size.
    if raw is None or len(raw) <= _KEY_ID_SIZE:
        raise CheckpointError("note signature must be padded standard base64 of over 4 bytes")
    return _SignatureLine(name, KeyId(raw[:_KEY_ID_SIZE]), raw[_KEY_ID_SIZE:])


def _index_trusted_keys(verifiers: Iterable[VerifierKey]) -> dict[tuple[str, KeyId], VerifierKey]:
    trusted: dict[tuple[str, KeyId], VerifierKey] = {}
    for key in verifiers:
        slot = (key.name, key.key_id)
        known = trusted.setdefault(slot, key)
        # Key IDs are short and easy to collide (signed-note §Signatures): two trusted
        # keys that share name and ID leave no way to tell which one a line names.
        if known != key:
            raise CheckpointError(f"two trusted keys share the key name {key.name!r} and key ID")
    return trusted


def _verify_ed25519(key: VerifierKey, body: bytes, signature: bytes) -> bool:
    if len(signature) != _ED25519_SIGNATURE_SIZE:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(signature, body)
    except InvalidSignature:
        return False
    return True


def _key_id(name: str, public_key: bytes) -> KeyId:
    # signed-note §Ed25519 signatures:
    # key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4]
    preimage = name.encode("utf-8") + b"\n" + bytes([ED25519_SIGNATURE_TYPE]) + public_key
    return KeyId(hashlib.sha256(preimage).digest()[:_KEY_ID_SIZE])


def _check_key_name(name: str) -> None:
    # signed-note §Format: key names are non-empty, with no Unicode space and no '+'
    # ('+' separates the parts of a verifier key). Control characters are barred from the
    # whole note. str.isspace() covers Unicode White_Space, as Go's unicode.IsSpace does.
    if (
        not isinstance(name, str)
        or not name
        or "+" in name
        or any(ch.isspace() for ch in name)
        or _CONTROL_CHARACTER.search(name) is not None
    ):
        raise CheckpointError(
            "key name must be non-empty, without spaces, '+' or control characters"
        )
    _encode_utf8(name, "key name")


def _check_checkpoint_line(what: str, line: str) -> None:
    # tlog-checkpoint §Note text: every line is non-empty; signed-note §Format bars
    # control characters, and a newline would shift the lines after it.
    if not isinstance(line, str) or not line or "\n" in line:
        raise CheckpointError(f"checkpoint {what} must be one non-empty line")
    if _CONTROL_CHARACTER.search(line) is not None:
        raise CheckpointError(f"checkpoint {what} must not contain control characters")
    _encode_utf8(line, f"checkpoint {what}")


def _encode_utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        # Lone surrogates: a str Python holds but UTF-8 cannot carry.
        raise CheckpointError(f"{what} is not valid Unicode") from e


def _encode_base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _decode_base64(encoded: str) -> bytes | None:
    """Decodes RFC 4648 §4 standard base64 in its one canonical, padded form, or None."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except ValueError:  # binascii.Error, or a non-ASCII character
        return None
    # Re-encoding refuses what the decoder tolerates: missing padding and set unused
    # trailing bits. Those decode to the same bytes, so accepting them would let anyone
    # alter a signed note's bytes and still have it verify, and give one root two texts.
    if _encode_base64(raw) != encoded:
        return None
    return raw


__all__ = [
    "ED25519_SIGNATURE_TYPE",
    "HASH_SIZE",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "MAX_TREE_SIZE",
    "Checkpoint",
    "CheckpointError",
    "KeyId",
    "NoteSignatureError",
    "OpenedNote",
    "VerifierKey",
    "format_verifier_key",
    "note_key_id",
    "open_note",
    "parse_verifier_key",
    "sign_checkpoint",
    "sign_note",
    "verify_checkpoint",
]
