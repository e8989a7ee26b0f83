"""Ledger entries: the signed statement, its canonical bytes, and the chained record.

Pure functions over bytes and values; ``docs/LEDGER_FORMAT.md`` describes the same bytes.

A *statement* is what an actor signs::

    {"v": 1, "type": "...", "time": "2026-11-26T17:44:04.123456Z", "actor": "...",
     "key": "...", "on_behalf": false, "body": {...}}

Its canonical form is RFC 8785 (JCS) JSON. The signature is Ed25519 over
``b"cardtrace/entry/v1\\n" + canonical(statement)``: the prefix keeps a party's entry
signatures from ever being valid for another kind of message the same key signs.

The platform sequences statements into *records*, the ledger's leaves::

    canonical({"entry": statement, "keyprev": k, "prev": hex(previous leaf hash),
               "seq": n, "sig": base64(signature)})

The record is hashed as an RFC 6962 leaf, ``SHA-256(0x00 || record)``, and that leaf
hash is the next record's ``prev``, so the log is both a hash chain and a Merkle tree.
``keyprev`` is the sequence number of the last key-management entry (party.register,
key.add, key.revoke) before this record, or -1: those entries form a chain of their own,
so a verifier given only a range of the log can tell that it saw every change of who
may sign.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NewType

import orjson
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from provenance.errors import ProvenanceError, ValidationError
from provenance.merkle import LeafHash, leaf_hash

FORMAT_VERSION = 1
SIGNATURE_CONTEXT = b"cardtrace/entry/v1\n"
GENESIS_PREV = "0" * 64
MAX_STATEMENT_BYTES = 64 * 1024

KeyId = NewType("KeyId", str)
PartyId = NewType("PartyId", str)

# Patterns are used with fullmatch: "$" would also accept a trailing newline.
PARTY_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
TYPE_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
KEY_ID_RE = re.compile(r"[0-9a-f]{16}")
_TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_STATEMENT_FIELDS = frozenset({"v", "type", "time", "actor", "key", "on_behalf", "body"})


class SignatureError(ProvenanceError):
    """A signature does not verify, or the key may not sign this entry."""

    code = "bad-signature"
    title = "Signature refused"


class EntryFormatError(ValidationError):
    """An entry or record is not in the ledger's format."""

    code = "bad-entry"
    title = "Malformed entry"


def key_id_for(public_key: bytes) -> KeyId:
    """A key's id: the first 8 bytes of SHA-256 of its raw 32 bytes, in hex."""
    return KeyId(hashlib.sha256(public_key).hexdigest()[:16])


def raw_public_key(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with exactly six fractional digits and ``Z``.

    Raises:
        EntryFormatError: ``moment`` is naive.
    """
    if moment.tzinfo is None:
        raise EntryFormatError("entry times must be timezone-aware", field="time")
    # isoformat zero-pads the year (strftime's %Y does not, below 1000).
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_time(text: str, field: str = "time") -> datetime:
    """Inverse of :func:`format_time`; refuses any other spelling.

    Raises:
        EntryFormatError: ``text`` is not in that exact form.
    """
    if not isinstance(text, str) or not _TIME_RE.fullmatch(text):
        raise EntryFormatError(
            f"{field} must look like 2026-01-31T23:59:59.000000Z (UTC, microseconds)",
            field=field,
        )
    try:
        # The pattern fixed the form; fromisoformat checks the date and reads "Z" as UTC.
        return datetime.fromisoformat(text)
    except ValueError as e:
        raise EntryFormatError(f"{field} is not a real date and time", field=field) from e


def canonical(value: Any) -> bytes:
    """RFC 8785 canonical JSON of a value holding no floats and no integers beyond 2**53.

    Raises:
        EntryFormatError: the value holds a float or a huge integer (a record could not be
            read back exactly), or is not representable.
    """
    if _inspect(value):
        # Only plain JSON types, and every key ASCII: sorted keys, no whitespace and only
        # the mandatory escapes are then exactly RFC 8785, which is what orjson writes.
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError as e:  # a lone surrogate, or nesting too deep
            raise EntryFormatError(f"value cannot be canonicalised: {e}") from e
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as e:
        raise EntryFormatError(f"value cannot be canonicalised: {e}") from e


def _reject_float(text: str) -> Any:
    raise EntryFormatError("numbers in entries must be integers; write amounts as strings")


MAX_SAFE_INTEGER = 2**53 - 1


def _bounded_int(text: str) -> int:
    # RFC 8785 section 3.2.2.3: numbers are IEEE 754 doubles; larger integers lose digits.
    value = int(text)
    if abs(value) > MAX_SAFE_INTEGER:
        raise EntryFormatError("integers in entries must be below 2**53")
    return value


# Built once: ``json.loads`` with hooks constructs a new decoder on every call.
_DECODER = json.JSONDecoder(
    parse_float=_reject_float, parse_constant=_reject_float, parse_int=_bounded_int
)


def _loads(raw: bytes) -> Any:
    try:
        # Records and statements are UTF-8 (RFC 8785 section 3.2.3); no other encoding.
        return _DECODER.decode(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EntryFormatError(f"not JSON: {e}") from e


@dataclass(frozen=True, slots=True)
class Statement:
    """What an actor says: the signed part of an entry."""

    type: str
    time: datetime
    actor: str
    key: str
    on_behalf: bool
    body: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "type": self.type,
            "time": format_time(self.time),
            "actor": self.actor,
            "key": self.key,
            "on_behalf": self.on_behalf,
            "body": self.body,
        }

    def to_bytes(self) -> bytes:
        """The canonical bytes that are signed (without the context prefix)."""
        return canonical(self.to_json())

    @classmethod
    def from_json(cls, value: Any) -> Statement:
        """Validate the envelope of a statement (bodies are checked by their entry type).

        Raises:
            EntryFormatError: a field is missing, unknown, or of the wrong type.
        """
        if not isinstance(value, dict):
            raise EntryFormatError("an entry must be a JSON object", field="entry")
        if value.keys() != _STATEMENT_FIELDS:
            _refuse_fields(value)
        if type(value["v"]) is not int or value["v"] != FORMAT_VERSION:
            raise EntryFormatError(f"entry format version must be {FORMAT_VERSION}", field="v")
        kind, actor, key = value["type"], value["actor"], value["key"]
        try:
            known = (kind, actor, key) in _GOOD_ENVELOPES
        except TypeError:  # a list or an object where a name belongs
            known = False
        if not known:
            _check_names(kind, actor, key)
        if not isinstance(value["on_behalf"], bool):
            raise EntryFormatError("on_behalf must be true or false", field="on_behalf")
        if not isinstance(value["body"], dict):
            raise EntryFormatError("body must be a JSON object", field="body")
        return cls(
            type=kind,
            time=parse_time(value["time"]),
            actor=actor,
            key=key,
            on_behalf=value["on_behalf"],
            body=value["body"],
        )


# (type, actor, key id) triples already found well-formed: a log has few of them and
# many entries. Bounded: cleared when full.
_GOOD_ENVELOPES: set[tuple[Any, Any, Any]] = set()
_GOOD_ENVELOPES_MAX = 4096


def _check_names(kind: Any, actor: Any, key: Any) -> None:
    if not isinstance(kind, str) or not TYPE_RE.fullmatch(kind):
        raise EntryFormatError("type must look like 'area.action'", field="type")
    if not isinstance(actor, str) or not PARTY_ID_RE.fullmatch(actor):
        raise EntryFormatError(
            "actor must be a party id (lower-case letters, digits, '.', '_', '-')",
            field="actor",
        )
    if not isinstance(key, str) or not KEY_ID_RE.fullmatch(key):
        raise EntryFormatError("key must be a 16-hex-digit key id", field="key")
    if len(_GOOD_ENVELOPES) >= _GOOD_ENVELOPES_MAX:
        _GOOD_ENVELOPES.clear()
    # Only exact str objects are remembered (a subclass could compare equal yet differ).
    if type(kind) is str and type(actor) is str and type(key) is str:
        _GOOD_ENVELOPES.add((kind, actor, key))


def _refuse_fields(value: dict[str, Any]) -> None:
    missing = _STATEMENT_FIELDS - value.keys()
    if missing:
        raise EntryFormatError(
            f"entry is missing {', '.join(sorted(missing))}", field=sorted(missing)[0]
        )
    unknown = sorted(value.keys() - _STATEMENT_FIELDS)
    raise EntryFormatError(f"entry has unknown fields {', '.join(unknown)}", field=unknown[0])


@lru_cache(maxsize=4096)
def load_public_key(raw: bytes) -> Ed25519PublicKey:
    """The key object for 32 raw bytes, kept: a log has few keys and many entries.

    Raises:
        ValueError: ``raw`` is not an Ed25519 public key.
    """
    return Ed25519PublicKey.from_public_bytes(raw)


def sign_statement(statement: Statement, private_key: Ed25519PrivateKey) -> SignedStatement:
    """Sign a statement with an actor's (or the platform's) key."""
    payload = statement.to_bytes()
    return SignedStatement(statement, payload, private_key.sign(SIGNATURE_CONTEXT + payload))


@dataclass(frozen=True, slots=True)
class SignedStatement:
    """A statement, its canonical bytes and the Ed25519 signature over them."""

    statement: Statement
    payload: bytes
    signature: bytes

    @property
    def statement_hash(self) -> bytes:
        """Identifies a signed statement, so that a replay of it is recognised."""
        return hashlib.sha256(SIGNATURE_CONTEXT + self.payload + self.signature).digest()

    def verify(self, public_key: bytes) -> None:
        """Raises SignatureError unless the signature is ``public_key``'s over the payload."""
        try:
            load_public_key(public_key).verify(self.signature, SIGNATURE_CONTEXT + self.payload)
        except (InvalidSignature, ValueError) as e:
            raise SignatureError(
                f"the signature on this {self.statement.type} entry does not verify with key "
                f"{self.statement.key}"
            ) from e

    @classmethod
    def from_json(cls, entry: Any, signature_b64: Any) -> SignedStatement:
        """Accept a statement and a base64 signature as a client sent them.

        The statement is re-encoded canonically; the client must have signed those bytes.

        Raises:
            EntryFormatError: the statement or the signature is malformed.
        """
        statement = Statement.from_json(entry)
        payload = canonical(entry)
        if len(payload) > MAX_STATEMENT_BYTES:
            raise EntryFormatError(
                f"entry is {len(payload)} bytes; the limit is {MAX_STATEMENT_BYTES}",
                field="entry",
            )
        return cls(statement, payload, decode_signature(signature_b64))


def _inspect(value: Any) -> bool:
    """Refuse floats and integers beyond 2**53 anywhere; say whether every key is ASCII.

    Walks with a stack rather than recursion: statements are small but numerous.

    Raises:
        EntryFormatError: the value holds a float or an integer beyond 2**53.
    """
    ascii_keys = True
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or item is None or kind is bool:
            continue
        if kind is dict:
            for key, child in item.items():
                if type(key) is not str or not key.isascii():
                    ascii_keys = False
                if type(child) is not str:
                    stack.append(child)
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif isinstance(item, bool | str):
            continue
        elif isinstance(item, int):
            if abs(item) > MAX_SAFE_INTEGER:
                raise EntryFormatError("integers in entries must be below 2**53")
        elif isinstance(item, float):
            raise EntryFormatError("numbers in entries must be integers; write amounts as strings")
        elif isinstance(item, dict | list | tuple):
            # Subclasses: walked like their base, but left to the library to encode.
            stack.extend(item.values() if isinstance(item, dict) else item)
            ascii_keys = False
        else:
            # Anything else is left to the RFC 8785 library, which refuses it.
            ascii_keys = False
    return ascii_keys


def decode_signature(value: Any) -> bytes:
    """Raises EntryFormatError unless ``value`` is standard base64 of 64 bytes."""
    if not isinstance(value, str):
        raise EntryFormatError("sig must be a base64 string", field="sig")
    try:
        encoded = value.encode("ascii")
        raw = binascii.a2b_base64(encoded, strict_mode=True)
    except ValueError as e:  # binascii.Error and UnicodeEncodeError are ValueErrors
        raise EntryFormatError("sig is not valid base64", field="sig") from e
    # One spelling per signature: the padded standard alphabet, no stray bits.
    if len(raw) != 64 or binascii.b2a_base64(raw, newline=False) != encoded:
        raise EntryFormatError("sig must be the base64 of a 64-byte Ed25519 signature", field="sig")
    return raw


def encode_record(signed: SignedStatement, seq: int, prev: bytes, keyprev: int) -> bytes:
    """The record bytes: ``canonical({"entry", "keyprev", "prev", "seq", "sig"})``.

    The keys are already in RFC 8785 order and the values are a canonical object, a hex
    string, an integer and a base64 string, so concatenation *is* the canonical form (a
    property test checks this against the RFC 8785 library).
    """
    return b"".join(
        (
            b'{"entry":',
            signed.payload,
            b',"keyprev":',
            str(keyprev).encode("ascii"),
            b',"prev":"',
            prev.hex().encode("ascii"),
            b'","seq":',
            str(seq).encode("ascii"),
            b',"sig":"',
            base64.b64encode(signed.signature),
            b'"}',
        )
    )


@dataclass(frozen=True, slots=True)
class Record:
    """A record read back from bytes: the signed statement and its place in the chain."""

    seq: int
    prev: bytes
    keyprev: int
    signed: SignedStatement
    raw: bytes

    @property
    def leaf_hash(self) -> LeafHash:
        return leaf_hash(self.raw)

    @property
    def statement(self) -> Statement:
        return self.signed.statement


_HEX64_RE = re.compile(r"[0-9a-f]{64}")
_RECORD_PREFIX = b'{"entry":'
_RECORD_KEYPREV = b',"keyprev":'
_RECORD_FIELDS = frozenset({"entry", "keyprev", "prev", "seq", "sig"})


def decode_record(raw: bytes) -> Record:
    """Parse record bytes and check that they are exactly canonical.

    Raises:
        EntryFormatError: the bytes are not a canonical record.
    """
    try:
        # orjson reads only strict UTF-8 JSON (no NaN, no lone surrogates); numbers it
        # cannot hold as integers come back as floats, which canonical() refuses below.
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise EntryFormatError(f"not JSON: {e}") from e
    if type(value) is not dict or value.keys() != _RECORD_FIELDS:
        raise EntryFormatError("a record has exactly the fields entry, keyprev, prev, seq, sig")
    seq, prev_hex, sig_b64 = value["seq"], value["prev"], value["sig"]
    keyprev = value["keyprev"]
    if type(seq) is not int or type(keyprev) is not int or seq > MAX_SAFE_INTEGER:
        _inspect((seq, keyprev))  # the messages for floats and huge integers
    if type(seq) is not int or seq < 0:
        raise EntryFormatError("record seq must be a non-negative integer", field="seq")
    if type(keyprev) is not int or not -1 <= keyprev < seq:
        raise EntryFormatError(
            "record keyprev must be -1 or the number of an earlier entry", field="keyprev"
        )
    if type(prev_hex) is not str or not _HEX64_RE.fullmatch(prev_hex):
        raise EntryFormatError("record prev must be 64 lower-case hex digits", field="prev")
    signature = decode_signature(sig_b64)
    entry = value["entry"]
    statement = Statement.from_json(entry)
    # from_json has checked every envelope field's type and spelling (all ASCII) and the
    # record fields are checked above, so once the body holds only plain JSON values with
    # ASCII keys, orjson's sorted output of the whole record is its RFC 8785 form.
    if _inspect(entry["body"]):
        expected = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    else:
        expected = b"".join(
            (
                _RECORD_PREFIX,
                canonical(entry),
                f',"keyprev":{keyprev},"prev":"{prev_hex}","seq":{seq},"sig":"{sig_b64}"}}'.encode(
                    "ascii"
                ),
            )
        )
    if raw != expected:
        raise EntryFormatError("record is not in canonical form")
    # The last ',"keyprev":' ends the entry: the fields after it cannot hold that text.
    payload = raw[len(_RECORD_PREFIX) : raw.rfind(_RECORD_KEYPREV)]
    return Record(
        seq, bytes.fromhex(prev_hex), keyprev, SignedStatement(statement, payload, signature), raw
    )
