"""Partners' notices: stolen payment instruments, fraudulent buyer accounts, reported
devices and compromised codes, in a STIX 2.1 bundle or a CSV file (docs/PARTNERS.md).

:func:`import_notices` takes the file's bytes and does, in order:

1. refuse a file larger than :data:`MAX_NOTICE_BYTES` before reading it;
2. refuse a sender that is not a registered anti-fraud partner;
3. check the detached Ed25519 signature over the file's exact bytes against the
   partner's registered keys that are valid now (required when the partner's policy or
   the caller says so; checked whenever one is given);
4. read every notice (all or nothing: the first bad line or object is named, its value
   never repeated); clear identifiers are turned into the platform's keyed pseudonyms
   or fingerprints here and go no further;
5. leave out the notices already in force (so a re-import writes nothing);
6. append one ledger entry per new notice, signed by the platform for the partner
   (``payment.stolen``, ``partner.account``, ``risk.taint`` for devices,
   ``partner.code``), and one ``partner.import`` entry with the file's SHA-256 and
   signature. Their projections take effect in the same transaction: a compromised code
   is blocked by the next verify, a stolen instrument taints the codes it paid for.

Nothing is written unless every step succeeds; the caller owns the transaction.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from provenance.codes import StolenKind, StolenPayment
from provenance.entries import Statement, format_time
from provenance.errors import CardtraceError
from provenance.fingerprints import (
    code_fingerprint,
    normalise_part,
    pseudonym,
    serial_fingerprint,
)
from provenance.imports import instrument_pseudonym
from provenance.ledger import Ledger
from provenance.parties import Party, PartyKey, PartyKind
from provenance.partners.entries import (
    ACCOUNT_TYPE,
    CODE_TYPE,
    IMPORT_TYPE,
    CodeScope,
    NoticeFormat,
)
from provenance.partners.errors import (
    NoticeFormatError,
    NoticeSignatureError,
    NoticeTooLargeError,
    UnknownPartnerError,
)
from provenance.partners.models import CompromisedCode, FlaggedAccount
from provenance.partners.policy import get_policy
from provenance.partners.stix_out import CARD_CODE, DEVICE, INSTRUMENT, validate_bundle
from provenance.risk.store import RiskTaint, TaintKind

MAX_NOTICE_BYTES = 2 * 1024 * 1024
MAX_NOTICES = 5_000
# The OASIS validator takes about 10 ms an object (its JSON-schema references are
# resolved again for each one): a bundle is kept to what it checks in seconds.
MAX_STIX_OBJECTS = 1_000
MAX_SIGNATURE_BYTES = 512
_CHUNK = 1_000

CSV_COLUMNS = (
    "kind",
    "id",
    "pseudonym",
    "fingerprint",
    "issuer",
    "product",
    "serial",
    "pin",
    "reported_at",
    "reason",
)
REQUIRED_COLUMNS = ("kind", "reported_at")
_REASON_RE = re.compile(r"[a-z][a-z0-9-]{0,63}")
_PSEUDONYM_RE = re.compile(r"[0-9a-f]{32}")
_FINGERPRINT_RE = re.compile(r"[0-9a-f]{64}")
_MAX_ID = 200


class NoticeKind(StrEnum):
    INSTRUMENT = "instrument"  # a stolen payment instrument (card token, instrument id)
    ACCOUNT = "account"  # a fraudulent buyer account
    DEVICE = "device"  # a device used for fraud
    CODE = "code"  # a compromised code, or every code of a serial


@dataclass(frozen=True, slots=True)
class Notice:
    """One notice, read and checked: ``subject`` is a platform pseudonym (32 hex digits)
    or, for codes, the base64 of a code or serial fingerprint."""

    kind: NoticeKind
    subject: str
    reported_at: datetime
    reason: str
    scope: CodeScope | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind.value, self.subject)


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did. ``added`` is 0 when every notice was already in force."""

    partner: str
    sha256: str
    format: NoticeFormat
    notices: int
    added: int
    key_id: str | None
    by_kind: Mapping[str, int] = field(default_factory=dict)
    seqs: tuple[int, ...] = ()
    statements: tuple[Statement, ...] = ()  # what was appended, for the risk state feed

    @property
    def skipped(self) -> int:
        return self.notices - self.added


# --- reading -------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _reported_at(value: Any, where: str, field_name: str = "reported_at") -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise NoticeFormatError(f"{where}: {field_name} is missing", field=field_name)
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise NoticeFormatError(
            f"{where}: {field_name} must be an ISO 8601 time with its zone, like "
            "2026-11-26T10:00:00Z",
            field=field_name,
        ) from None
    if moment.tzinfo is None:
        raise NoticeFormatError(f"{where}: {field_name} must give its time zone", field=field_name)
    return moment.astimezone(UTC)


def _reason(value: Any, where: str, default: str) -> str:
    text = (value or "").strip() if isinstance(value, str) else ""
    if not text:
        return default
    # A reason code, not free text: the ledger carries no personal data.
    if not _REASON_RE.fullmatch(text):
        raise NoticeFormatError(
            f"{where}: reason must be a code of lower-case letters, digits and '-' "
            "(for example card-reported-stolen)",
            field="reason",
        )
    return text


def _clear_id(value: str, where: str, field_name: str) -> str:
    if len(value) > _MAX_ID or not value.isprintable():
        raise NoticeFormatError(
            f"{where}: {field_name} must be 1-{_MAX_ID} printable characters", field=field_name
        )
    return value


def _subject_pseudonym(kind: NoticeKind, clear: str, given: str, key: bytes, where: str) -> str:
    """The platform pseudonym of an instrument, account or device: from its clear id
    (pseudonymised here) or as given (32 hex digits), never both."""
    if bool(clear) == bool(given):
        raise NoticeFormatError(
            f"{where}: give either id or pseudonym for a {kind.value}", field="id"
        )
    if given:
        if not _PSEUDONYM_RE.fullmatch(given):
            raise NoticeFormatError(
                f"{where}: pseudonym must be 32 lower-case hex digits", field="pseudonym"
            )
        return given
    clear = _clear_id(clear, where, "id")
    if kind is NoticeKind.INSTRUMENT:
        try:
            return instrument_pseudonym(key, clear)
        except CardtraceError as e:
            raise NoticeFormatError(f"{where}: {e.message}", field="id") from e
    return pseudonym(key, "buyer" if kind is NoticeKind.ACCOUNT else "device", clear)


def _code_subject(fields: Mapping[str, str], key: bytes, where: str) -> tuple[str, CodeScope]:
    """A code's fingerprint (64 hex, or issuer, product, serial and PIN), or a serial's
    (issuer, product, serial without a PIN)."""
    given = fields.get("fingerprint", "")
    issuer, product = fields.get("issuer", ""), fields.get("product", "")
    serial, pin = fields.get("serial", ""), fields.get("pin", "")
    if given:
        if issuer or product or serial or pin:
            raise NoticeFormatError(
                f"{where}: give either fingerprint or issuer, product and serial",
                field="fingerprint",
            )
        if not _FINGERPRINT_RE.fullmatch(given):
            raise NoticeFormatError(
                f"{where}: fingerprint must be 64 lower-case hex digits", field="fingerprint"
            )
        return _b64(bytes.fromhex(given)), CodeScope.CODE
    for name, value in (("issuer", issuer), ("product", product), ("serial", serial)):
        if not value:
            raise NoticeFormatError(f"{where}: a code notice needs {name}", field=name)
        if len(value) > _MAX_ID:
            raise NoticeFormatError(f"{where}: {name} is too long", field=name)
    try:
        serial = normalise_part(serial, "serial")
        if pin:
            pin = normalise_part(pin, "pin")
    except CardtraceError as e:
        raise NoticeFormatError(f"{where}: {e.message}", field=getattr(e, "field", None)) from e
    if pin:
        return _b64(code_fingerprint(key, issuer, product, serial, pin)), CodeScope.CODE
    return _b64(serial_fingerprint(key, issuer, product, serial)), CodeScope.SERIAL


def _notice(
    kind_text: str,
    fields: Mapping[str, str],
    reported_at: datetime,
    reason: str,
    key: bytes,
    where: str,
) -> Notice:
    try:
        kind = NoticeKind(kind_text)
    except ValueError:
        choices = ", ".join(k.value for k in NoticeKind)
        raise NoticeFormatError(f"{where}: kind must be one of {choices}", field="kind") from None
    if kind is NoticeKind.CODE:
        subject, scope = _code_subject(fields, key, where)
        return Notice(kind, subject, reported_at, reason, scope)
    for name in ("fingerprint", "issuer", "product", "serial", "pin"):
        if fields.get(name):
            raise NoticeFormatError(f"{where}: {name} is only for code notices", field=name)
    subject = _subject_pseudonym(
        kind, fields.get("id", ""), fields.get("pseudonym", ""), key, where
    )
    return Notice(kind, subject, reported_at, reason)


def read_csv(data: bytes, key: bytes) -> list[Notice]:
    """Notices from the CSV format of docs/PARTNERS.md.

    Raises:
        NoticeFormatError: the first bad line, by number (the header is line 1).
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise NoticeFormatError("the file is not UTF-8 text", field="file") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames
    except csv.Error as e:
        raise NoticeFormatError("line 1: not a CSV header", field="file", line=1) from e
    if not header:
        raise NoticeFormatError("the file is empty", field="file")
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if unknown:
        raise NoticeFormatError(
            f"line 1: unknown column {unknown[0]!r}; the columns are {', '.join(CSV_COLUMNS)}",
            field=unknown[0][:64],
            line=1,
        )
    for name in REQUIRED_COLUMNS:
        if name not in header:
            raise NoticeFormatError(f"line 1: the column {name} is missing", field=name, line=1)
    notices: list[Notice] = []
    try:
        for row in reader:
            line = reader.line_num
            where = f"line {line}"
            if None in row or any(v is None for v in row.values()):
                raise NoticeFormatError(
                    f"{where}: {len(header)} fields expected", field="row", line=line
                )
            fields = {k: (v or "").strip() for k, v in row.items() if k is not None}
            if not any(fields.values()):
                continue
            try:
                notices.append(
                    _notice(
                        fields.get("kind", ""),
                        fields,
                        _reported_at(fields.get("reported_at"), where),
                        _reason(fields.get("reason"), where, "reported-by-partner"),
                        key,
                        where,
                    )
                )
            except NoticeFormatError as e:
                raise NoticeFormatError(e.message, field=e.field, line=line) from e
            if len(notices) > MAX_NOTICES:
                raise NoticeTooLargeError(
                    f"a file holds at most {MAX_NOTICES:,} notices", field="file", line=line
                )
    except csv.Error as e:
        line = reader.line_num
        raise NoticeFormatError(f"line {line}: not valid CSV", field="file", line=line) from e
    return notices


_STIX_CONTEXT_TYPES = frozenset(
    {
        "report",
        "identity",
        "marking-definition",
        "extension-definition",
        "language-content",
        "note",
        "opinion",
        "relationship",
        "sighting",
        "indicator",
        "observed-data",
        "grouping",
    }
)


def _stix_context(objects: Sequence[Mapping[str, Any]]) -> tuple[datetime | None, str]:
    """The report's publication time and its first reason-code label, if any."""
    for obj in objects:
        if obj.get("type") == "report":
            published = obj.get("published")
            when = (
                _reported_at(published, "report", "published")
                if isinstance(published, str)
                else None
            )
            labels = [label for label in obj.get("labels", []) if isinstance(label, str)]
            reason = next((lb for lb in labels if _REASON_RE.fullmatch(lb)), "")
            return when, reason
    return None, ""


def _stix_fingerprint(obj: Mapping[str, Any], where: str) -> str:
    scheme = obj.get("fingerprint_scheme", "platform-hmac-v1")
    if scheme != "platform-hmac-v1":
        # A partner pseudonym was keyed for that partner; it names nothing here.
        raise NoticeFormatError(
            f"{where}: only fingerprints with fingerprint_scheme platform-hmac-v1 can be "
            "matched; send the clear id instead",
            field="fingerprint_scheme",
        )
    value = obj.get("fingerprint")
    return value if isinstance(value, str) else ""


def _account_fields(obj: Mapping[str, Any], where: str) -> dict[str, str]:
    """A user-account names a clear account id, unless its ``account_type`` says it
    carries a cardtrace pseudonym (as the accounts in our own bundles do)."""
    user_id = str(obj.get("user_id", ""))
    account_type = obj.get("account_type")
    if account_type == "x-cardtrace-platform-hmac-v1":
        return {"pseudonym": user_id}
    if isinstance(account_type, str) and account_type.startswith("x-cardtrace-"):
        raise NoticeFormatError(
            f"{where}: only accounts with account_type x-cardtrace-platform-hmac-v1 can be "
            "matched; send the clear account id instead",
            field="account_type",
        )
    return {"id": user_id}


def read_stix(data: bytes, key: bytes, *, now: datetime) -> list[Notice]:
    """Notices from a STIX 2.1 bundle (see docs/PARTNERS.md for the objects read).

    Raises:
        NoticeFormatError: not JSON, not a bundle, refused by the OASIS validator, or an
            object that cannot be read (named by its index in ``objects``).
    """
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise NoticeFormatError("the file is not valid JSON", field="file") from None
    if not isinstance(document, dict) or document.get("type") != "bundle":
        raise NoticeFormatError("a STIX notice must be a bundle", field="type")
    objects = document.get("objects")
    if not isinstance(objects, list) or not objects:
        raise NoticeFormatError("the bundle has no objects", field="objects")
    if len(objects) > MAX_STIX_OBJECTS:
        raise NoticeTooLargeError(
            f"a STIX bundle holds at most {MAX_STIX_OBJECTS:,} objects; send longer lists as CSV",
            field="objects",
        )
    report = validate_bundle(data)
    if not report.ok:
        # The validator's first error, cut short: it names the object and the property.
        raise NoticeFormatError(
            f"the STIX 2.1 validator refused the bundle: {report.errors[0][:300]}",
            field="objects",
        )
    published, label = _stix_context(objects)
    reported_at = published or now
    reason = label or "reported-by-partner"
    notices: list[Notice] = []
    for index, obj in enumerate(objects):
        where = f"objects[{index}]"
        kind = obj.get("type")
        fields: dict[str, str] = {}
        if kind == INSTRUMENT.type:
            notice_kind = NoticeKind.INSTRUMENT
            fields = {"id": str(obj.get("token", "")), "pseudonym": _stix_fingerprint(obj, where)}
        elif kind == DEVICE.type:
            notice_kind = NoticeKind.DEVICE
            fields = {
                "id": str(obj.get("device_id", "")),
                "pseudonym": _stix_fingerprint(obj, where),
            }
        elif kind == "user-account":
            notice_kind = NoticeKind.ACCOUNT
            fields = _account_fields(obj, where)
        elif kind == CARD_CODE.type:
            notice_kind = NoticeKind.CODE
            fields = {
                name: str(obj.get(name, ""))
                for name in ("fingerprint", "issuer", "product", "serial", "pin")
            }
        elif kind in _STIX_CONTEXT_TYPES or (isinstance(kind, str) and not kind.startswith("x-")):
            continue  # context, or an observable that names nothing cardtrace can match
        else:
            raise NoticeFormatError(f"{where}: unknown custom object type", field="type")
        fields = {k: v.strip() for k, v in fields.items()}
        notices.append(_notice(notice_kind.value, fields, reported_at, reason, key, where))
        if len(notices) > MAX_NOTICES:
            raise NoticeTooLargeError(f"a bundle holds at most {MAX_NOTICES:,} notices")
    if not notices:
        raise NoticeFormatError(
            "the bundle names no stolen instrument, account, device or code", field="objects"
        )
    return notices


def sniff_format(data: bytes) -> NoticeFormat:
    """STIX if the file is a JSON object, else CSV."""
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return NoticeFormat.STIX if head == b"{" else NoticeFormat.CSV


def read_notices(data: bytes, key: bytes, *, now: datetime) -> tuple[NoticeFormat, list[Notice]]:
    """Raises: NoticeFormatError, NoticeTooLargeError."""
    if len(data) > MAX_NOTICE_BYTES:
        raise NoticeTooLargeError(
            f"a notice file is at most {MAX_NOTICE_BYTES:,} bytes; this one has {len(data):,}",
            field="file",
        )
    fmt = sniff_format(data)
    notices = read_stix(data, key, now=now) if fmt is NoticeFormat.STIX else read_csv(data, key)
    if not notices:
        raise NoticeFormatError("the file holds no notices", field="file")
    return fmt, notices


# --- authenticating ------------------------------------------------------------------------


def require_partner(session: Session, partner: str) -> Party:
    """Raises: UnknownPartnerError unless ``partner`` is a registered anti-fraud partner."""
    party = session.get(Party, partner) if len(partner) <= 64 else None
    if party is None or party.kind != PartyKind.PARTNER.value:
        raise UnknownPartnerError(f"no anti-fraud partner {partner!r} is registered")
    return party


def decode_signature(raw: bytes) -> bytes:
    """A detached signature file: the 64 raw bytes, or their base64 (whitespace ignored).

    Raises:
        NoticeSignatureError: neither.
    """
    if len(raw) > MAX_SIGNATURE_BYTES:
        raise NoticeSignatureError("the signature file is too large", code="bad-notice-signature")
    if len(raw) == 64:
        return raw
    try:
        decoded = base64.b64decode(b"".join(raw.split()), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) != 64:
        raise NoticeSignatureError(
            "the signature must be 64 bytes of Ed25519 signature, raw or in base64"
        )
    return decoded


def verify_signature(
    session: Session, partner: str, data: bytes, signature: bytes, *, now: datetime
) -> str:
    """The id of the partner's key that signed ``data`` (Ed25519, RFC 8032, over the
    file's exact bytes), among its keys valid at ``now``.

    Raises:
        NoticeSignatureError: no such key verifies it (tampered file, wrong key, revoked
            or expired key).
    """
    signature = decode_signature(signature)
    keys = session.scalars(
        select(PartyKey).where(PartyKey.party_id == partner).order_by(PartyKey.key_id)
    )
    for row in keys:
        state = row.state()
        try:
            state.check_valid_at(now)
        except CardtraceError:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(row.public_key).verify(signature, data)
        except InvalidSignature:
            continue
        return row.key_id
    raise NoticeSignatureError(
        f"the signature does not verify with any key {partner} may sign with now: the file "
        "was changed, or signed with another key"
    )


# --- importing -----------------------------------------------------------------------------


def _in_force(session: Session, notice: Notice) -> bool:
    if notice.kind is NoticeKind.INSTRUMENT:
        return session.get(StolenPayment, (StolenKind.INSTRUMENT.value, notice.subject)) is not None
    if notice.kind is NoticeKind.DEVICE:
        return session.get(RiskTaint, (TaintKind.DEVICE.value, notice.subject)) is not None
    if notice.kind is NoticeKind.ACCOUNT:
        return session.get(FlaggedAccount, notice.subject) is not None
    return session.get(CompromisedCode, base64.b64decode(notice.subject)) is not None


def _entry(notice: Notice, tag: str) -> tuple[str, dict[str, Any]]:
    reason = f"{notice.reason} (partner notice {tag})"
    when = format_time(notice.reported_at)
    if notice.kind is NoticeKind.INSTRUMENT:
        body = {
            "kind": StolenKind.INSTRUMENT.value,
            "pseudonym": notice.subject,
            "reported_at": when,
            "reason": reason,
        }
        return "payment.stolen", body
    if notice.kind is NoticeKind.DEVICE:
        return "risk.taint", {
            "kind": TaintKind.DEVICE.value,
            "pseudonym": notice.subject,
            "reason": reason,
        }
    if notice.kind is NoticeKind.ACCOUNT:
        return ACCOUNT_TYPE, {"pseudonym": notice.subject, "reported_at": when, "reason": reason}
    assert notice.scope is not None
    return CODE_TYPE, {
        "fingerprint": notice.subject,
        "scope": notice.scope.value,
        "reported_at": when,
        "reason": reason,
    }


def _unique(notices: Sequence[Notice]) -> Iterator[Notice]:
    seen: set[tuple[str, str]] = set()
    for notice in notices:
        if notice.key not in seen:
            seen.add(notice.key)
            yield notice


@dataclass(frozen=True, slots=True)
class NoticeFile:
    """A notice file read and authenticated, not yet applied."""

    partner: str
    sha256: str
    format: NoticeFormat
    notices: tuple[Notice, ...]
    key_id: str | None
    signature: bytes | None  # the 64 signature bytes, when one came


def read_notice_file(
    session: Session,
    *,
    partner: str,
    data: bytes,
    signature: bytes | None,
    fingerprint_key: bytes,
    now: datetime,
    require_signature: bool = False,
) -> NoticeFile:
    """Steps 1-4 of the module docstring: size, partner, signature, notices. Reads only
    (reading a STIX bundle runs the OASIS validator, which can take seconds).

    Args:
        signature: the detached signature file's bytes, or ``None``.
        require_signature: refuse an unsigned file even if the partner's policy does not.

    Raises:
        NoticeTooLargeError: the file is too large (or holds too many notices).
        UnknownPartnerError: ``partner`` is not a registered anti-fraud partner.
        NoticeSignatureError: unsigned when required, or a signature that does not verify.
        NoticeFormatError: the file cannot be read; names the line or object.
    """
    if len(data) > MAX_NOTICE_BYTES:
        raise NoticeTooLargeError(
            f"a notice file is at most {MAX_NOTICE_BYTES:,} bytes; this one has {len(data):,}",
            field="file",
        )
    require_partner(session, partner)
    required = require_signature or get_policy(session, partner).require_signature
    key_id: str | None = None
    raw_signature: bytes | None = None
    if signature is not None:
        key_id = verify_signature(session, partner, data, signature, now=now)
        raw_signature = decode_signature(signature)
    elif required:
        raise NoticeSignatureError(
            f"notices from {partner} must come with a detached Ed25519 signature",
            code="notice-unsigned",
        )
    fmt, notices = read_notices(data, fingerprint_key, now=now)
    sha256 = hashlib.sha256(data).hexdigest()
    return NoticeFile(partner, sha256, fmt, tuple(notices), key_id, raw_signature)


def apply_notices(
    session: Session, ledger: Ledger, notice_file: NoticeFile, *, now: datetime
) -> ImportReport:
    """Steps 5-6: append the notices not already in force, and the file's record.

    Call in a write transaction (the check of what is in force and the append belong
    together).
    """
    partner, notices = notice_file.partner, notice_file.notices
    fresh = [n for n in _unique(notices) if not _in_force(session, n)]
    if not fresh:
        return ImportReport(
            partner, notice_file.sha256, notice_file.format, len(notices), 0, notice_file.key_id
        )
    tag = notice_file.sha256[:16]
    statements = []
    by_kind: dict[str, int] = {}
    for notice in fresh:
        kind, body = _entry(notice, tag)
        statements.append(ledger.statement(kind, body, now=now, actor=partner))
        by_kind[notice.kind.value] = by_kind.get(notice.kind.value, 0) + 1
    signature = notice_file.signature
    record: dict[str, Any] = {
        "partner": partner,
        "sha256": notice_file.sha256,
        "format": notice_file.format.value,
        "notices": len(notices),
        "added": len(fresh),
        "key_id": notice_file.key_id,
        "signature": _b64(signature) if signature is not None else None,
    }
    statements.append(ledger.statement(IMPORT_TYPE, record, now=now))
    seqs: list[int] = []
    for start in range(0, len(statements), _CHUNK):
        appended = ledger.append_as_platform(session, statements[start : start + _CHUNK], now=now)
        seqs += [a.seq for a in appended]
    return ImportReport(
        partner,
        notice_file.sha256,
        notice_file.format,
        len(notices),
        len(fresh),
        notice_file.key_id,
        by_kind,
        tuple(seqs),
        tuple(statements),
    )


def import_notices(
    session: Session,
    ledger: Ledger,
    *,
    partner: str,
    data: bytes,
    signature: bytes | None,
    fingerprint_key: bytes,
    now: datetime,
    require_signature: bool = False,
) -> ImportReport:
    """Authenticate and import one notice file from ``partner`` (see the module
    docstring): :func:`read_notice_file`, then :func:`apply_notices`.

    Raises:
        as :func:`read_notice_file`; nothing is written when it raises.
    """
    notice_file = read_notice_file(
        session,
        partner=partner,
        data=data,
        signature=signature,
        fingerprint_key=fingerprint_key,
        now=now,
        require_signature=require_signature,
    )
    return apply_notices(session, ledger, notice_file, now=now)
