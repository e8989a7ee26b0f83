"""Parties and their Ed25519 keys: registration, rotation, revocation.

The rules live in :class:`KeyRegistry`, a plain in-memory object, so that appending and
offline verification apply exactly the same ones. The ``party`` and ``party_key`` tables
are projections of the ``party.register``, ``key.add`` and ``key.revoke`` entries.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, Field
from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from provenance.catalog import AppliedEntry, Body, EntryType, each
from provenance.db import Base
from provenance.entries import (
    KEY_ID_RE,
    PARTY_ID_RE,
    SignatureError,
    Statement,
    format_time,
    key_id_for,
    parse_time,
)
from provenance.errors import ConflictError

PLATFORM_PARTY = "platform"
MAX_KEYS_PER_REGISTRATION = 8


class PartyStatus(StrEnum):
    """Whether a party may take part: set by vetting, read by verify-before-sale."""

    ACTIVE = "active"
    PENDING = "pending"
    APPROVED = "approved"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"


class PartyKind(StrEnum):
    ISSUER = "issuer"
    DISTRIBUTOR = "distributor"
    MERCHANT = "merchant"
    PLATFORM = "platform"
    PARTNER = "partner"


# --- errors: each names why a key may not sign, with its own stable code -----------


class UnknownKeyError(SignatureError):
    code = "unknown-key"
    title = "Unknown signing key"


class KeyNotOfActorError(SignatureError):
    code = "key-not-of-actor"
    title = "Key belongs to another party"


class KeyRevokedError(SignatureError):
    code = "key-revoked"
    title = "Key revoked"


class KeyNotValidError(SignatureError):
    code = "key-not-valid"
    title = "Key not valid at that time"


class NotPermittedError(SignatureError):
    code = "not-permitted"
    title = "Signer may not write this entry"


class UnknownPartyError(SignatureError):
    code = "unknown-party"
    title = "Unknown party"


class PartyExistsError(ConflictError):
    code = "party-exists"
    title = "Party already registered"


class KeyExistsError(ConflictError):
    code = "key-exists"
    title = "Key already registered"


class KeyStateError(ConflictError):
    code = "key-state"
    title = "Key cannot change that way"


# --- bodies ------------------------------------------------------------------------


def _party_id(value: str) -> str:
    if not PARTY_ID_RE.fullmatch(value):
        raise ValueError("must be a party id: lower-case letters, digits, '.', '_', '-'")
    return value


def _key_id(value: str) -> str:
    if not KEY_ID_RE.fullmatch(value):
        raise ValueError("must be a 16-hex-digit key id")
    return value


def _time(value: str) -> str:
    try:
        parse_time(value)
    except Exception as e:
        raise ValueError("must look like 2026-01-31T23:59:59.000000Z") from e
    return value


def _public_key(value: str) -> str:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError("must be standard base64") from e
    if len(raw) != 32 or base64.b64encode(raw).decode() != value:
        raise ValueError("must be the base64 of a 32-byte Ed25519 public key")
    return value


PartyIdStr = Annotated[str, AfterValidator(_party_id)]
KeyIdStr = Annotated[str, AfterValidator(_key_id)]
TimeStr = Annotated[str, AfterValidator(_time)]
PublicKeyStr = Annotated[str, AfterValidator(_public_key)]


class KeyBody(Body):
    key_id: KeyIdStr
    public_key: PublicKeyStr
    not_before: TimeStr
    not_after: TimeStr | None = None

    def state(self, party: str) -> KeyState:
        raw = base64.b64decode(self.public_key)
        if key_id_for(raw) != self.key_id:
            raise KeyStateError(
                f"key_id {self.key_id} is not the id of that public key ({key_id_for(raw)})"
            )
        not_before = parse_time(self.not_before)
        not_after = parse_time(self.not_after) if self.not_after else None
        if not_after is not None and not_after <= not_before:
            raise KeyStateError(f"key {self.key_id}: not_after must be later than not_before")
        return KeyState(self.key_id, party, raw, not_before, not_after)


class PartyRegisterBody(Body):
    party: PartyIdStr
    kind: PartyKind = Field(strict=False)  # JSON carries the value; lax accepts only values
    name: str = Field(min_length=1, max_length=200)
    keys: list[KeyBody] = Field(max_length=MAX_KEYS_PER_REGISTRATION)


class KeyAddBody(Body):
    party: PartyIdStr
    key: KeyBody


class KeyRevokeBody(Body):
    party: PartyIdStr
    key_id: KeyIdStr
    revoked_at: TimeStr
    reason: str = Field(min_length=1, max_length=500)


def key_body(
    public_key: bytes, not_before: datetime, not_after: datetime | None = None
) -> dict[str, Any]:
    """The JSON of a :class:`KeyBody` for a raw public key."""
    return {
        "key_id": key_id_for(public_key),
        "public_key": base64.b64encode(public_key).decode("ascii"),
        "not_before": format_time(not_before),
        "not_after": format_time(not_after) if not_after else None,
    }


class PartyStatusBody(Body):
    party: PartyIdStr
    status: PartyStatus = Field(strict=False)
    reason: str = Field(min_length=1, max_length=500)


def initial_status(kind: PartyKind) -> PartyStatus:
    return PartyStatus.PENDING if kind is PartyKind.MERCHANT else PartyStatus.ACTIVE


# --- the rules ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyState:
    key_id: str
    party: str
    public_key: bytes
    not_before: datetime
    not_after: datetime | None = None
    revoked_at: datetime | None = None
    revoke_reason: str | None = None

    def check_valid_at(self, moment: datetime) -> None:
        """Raises KeyRevokedError or KeyNotValidError unless the key may sign at ``moment``."""
        if self.revoked_at is not None and moment >= self.revoked_at:
            raise KeyRevokedError(
                f"key {self.key_id} of {self.party} was revoked at "
                f"{format_time(self.revoked_at)}, before this entry's time {format_time(moment)}"
            )
        if moment < self.not_before or (self.not_after is not None and moment >= self.not_after):
            raise KeyNotValidError(
                f"key {self.key_id} of {self.party} is not valid at {format_time(moment)}"
            )


@dataclass(slots=True)
class KeyRegistry:
    """Who may sign what, as of some point in the log."""

    keys: dict[str, KeyState] = field(default_factory=dict)
    parties: dict[str, PartyKind] = field(default_factory=dict)
    platform: str = PLATFORM_PARTY

    def authorize(self, statement: Statement, entry_type: EntryType, body: Any) -> KeyState:
        """Return the key that must have signed ``statement``, if it may.

        Raises:
            SignatureError: (a subclass naming the reason) it may not.
        """
        if not self.parties:
            return self._authorize_genesis(statement, body)
        if statement.actor not in self.parties:
            raise UnknownPartyError(f"no party {statement.actor!r} is registered")
        if statement.on_behalf and statement.actor == self.platform:
            # One encoding per meaning: the platform acting as itself is not "on behalf".
            raise NotPermittedError("the platform signs as itself with on_behalf false")
        key = self.keys.get(statement.key)
        if key is None:
            raise UnknownKeyError(f"no key {statement.key} is registered")
        signer = self.platform if statement.on_behalf else statement.actor
        if key.party != signer:
            who = "the platform's" if statement.on_behalf else f"{statement.actor}'s"
            raise KeyNotOfActorError(f"key {key.key_id} belongs to {key.party}, not {who}")
        if entry_type.platform_only and (statement.actor != self.platform or statement.on_behalf):
            raise NotPermittedError(f"only the platform may write {statement.type} entries")
        if isinstance(body, KeyAddBody | KeyRevokeBody) and statement.actor not in (
            self.platform,
            body.party,
        ):
            raise NotPermittedError(f"{statement.actor} may not change the keys of {body.party}")
        key.check_valid_at(statement.time)
        return key

    def _authorize_genesis(self, statement: Statement, body: Any) -> KeyState:
        # The log starts with the platform registering itself, signed by its own key.
        if not (
            isinstance(body, PartyRegisterBody)
            and body.party == statement.actor == self.platform
            and body.kind is PartyKind.PLATFORM
            and not statement.on_behalf
        ):
            raise NotPermittedError("the first entry must be the platform registering itself")
        for key in body.keys:
            if key.key_id == statement.key:
                state = key.state(body.party)
                state.check_valid_at(statement.time)
                return state
        raise UnknownKeyError("the platform's first entry must be signed by a key it registers")

    def apply(self, body: Any, at: datetime) -> None:
        """Apply a key-management body written at time ``at`` (other bodies are ignored).

        Raises:
            ConflictError: the change contradicts the registry.
        """
        if isinstance(body, PartyRegisterBody):
            if body.party in self.parties:
                raise PartyExistsError(f"party {body.party!r} is already registered")
            if body.kind is PartyKind.PLATFORM and self.parties:
                raise NotPermittedError("only the log's first entry registers the platform")
            states = [key.state(body.party) for key in body.keys]
            if len({state.key_id for state in states}) != len(states):
                raise KeyExistsError(f"party {body.party!r} lists the same key twice")
            for state in states:
                self._check_new_key(state)
            self.parties[body.party] = body.kind
            for state in states:
                self.keys[state.key_id] = state
        elif isinstance(body, KeyAddBody):
            if body.party not in self.parties:
                raise UnknownPartyError(f"no party {body.party!r} is registered")
            state = body.key.state(body.party)
            self._check_new_key(state)
            self.keys[state.key_id] = state
        elif isinstance(body, KeyRevokeBody):
            key = self.keys.get(body.key_id)
            if key is None or key.party != body.party:
                raise UnknownKeyError(f"{body.party} has no key {body.key_id}")
            if key.revoked_at is not None:
                raise KeyStateError(f"key {body.key_id} is already revoked")
            revoked_at = parse_time(body.revoked_at)
            if revoked_at > at:
                # Revocation records what happened; a planned end of use is not_after.
                raise KeyStateError(
                    f"key {body.key_id}: revoked_at may not be later than the entry's time"
                )
            self.keys[key.key_id] = replace(key, revoked_at=revoked_at, revoke_reason=body.reason)

    def _check_new_key(self, state: KeyState) -> None:
        if state.key_id in self.keys:
            raise KeyExistsError(f"key {state.key_id} is already registered")


# --- projection tables -------------------------------------------------------------


class Party(Base):
    __tablename__ = "party"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    registered_seq: Mapped[int] = mapped_column(BigInteger)
    registered_at: Mapped[datetime]
    # Merchants start "pending" until vetting approves them; other parties are "active".
    status: Mapped[str] = mapped_column(String(16))
    status_seq: Mapped[int] = mapped_column(BigInteger)


class PartyKey(Base):
    __tablename__ = "party_key"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    party_id: Mapped[str] = mapped_column(ForeignKey("party.id"), index=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    not_before: Mapped[datetime]
    not_after: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoke_reason: Mapped[str | None] = mapped_column(String(500))
    added_seq: Mapped[int] = mapped_column(BigInteger)

    def state(self) -> KeyState:
        return KeyState(
            self.key_id,
            self.party_id,
            self.public_key,
            self.not_before,
            self.not_after,
            self.revoked_at,
            self.revoke_reason,
        )


def referenced_ids(statement: Statement, body: Any) -> tuple[set[str], set[str]]:
    """The key ids and party ids the registry needs to judge one entry."""
    keys, parties = {statement.key}, {statement.actor}
    if isinstance(body, PartyRegisterBody):
        keys.update(k.key_id for k in body.keys)
        parties.add(body.party)
    elif isinstance(body, KeyAddBody):
        keys.add(body.key.key_id)
        parties.add(body.party)
    elif isinstance(body, KeyRevokeBody):
        keys.add(body.key_id)
        parties.add(body.party)
    return keys, parties


def load_registry(
    session: Session, key_ids: Iterable[str], party_ids: Iterable[str], platform: str
) -> KeyRegistry:
    """The part of the registry a batch of entries touches, read from the projections."""
    registry = KeyRegistry(platform=platform)
    wanted_parties = set(party_ids) | {platform}
    for party in session.scalars(select(Party).where(Party.id.in_(wanted_parties))):
        registry.parties[party.id] = PartyKind(party.kind)
    wanted_keys = set(key_ids)
    if wanted_keys:
        for key in session.scalars(select(PartyKey).where(PartyKey.key_id.in_(wanted_keys))):
            registry.keys[key.key_id] = key.state()
    return registry


def _add_key_row(session: Session, state: KeyState, seq: int) -> None:
    session.add(
        PartyKey(
            key_id=state.key_id,
            party_id=state.party,
            public_key=state.public_key,
            not_before=state.not_before,
            not_after=state.not_after,
            revoked_at=None,
            revoke_reason=None,
            added_seq=seq,
        )
    )


def _project_register(session: Session, entry: AppliedEntry[PartyRegisterBody]) -> None:
    body = entry.body
    session.add(
        Party(
            id=body.party,
            kind=body.kind.value,
            name=body.name,
            registered_seq=entry.seq,
            registered_at=entry.time,
            status=initial_status(body.kind).value,
            status_seq=entry.seq,
        )
    )
    session.flush()
    for key in body.keys:
        _add_key_row(session, key.state(body.party), entry.seq)


def _project_key_add(session: Session, entry: AppliedEntry[KeyAddBody]) -> None:
    _add_key_row(session, entry.body.key.state(entry.body.party), entry.seq)


def _project_key_revoke(session: Session, entry: AppliedEntry[KeyRevokeBody]) -> None:
    row = session.get(PartyKey, entry.body.key_id)
    if row is None:  # the registry checked this before the entry was written
        raise UnknownKeyError(f"{entry.body.party} has no key {entry.body.key_id}")
    row.revoked_at = parse_time(entry.body.revoked_at)
    row.revoke_reason = entry.body.reason


def _project_status(session: Session, entry: AppliedEntry[PartyStatusBody]) -> None:
    row = session.get(Party, entry.body.party)
    if row is None:
        raise UnknownPartyError(f"no party {entry.body.party!r} is registered")
    row.status = entry.body.status.value
    row.status_seq = entry.seq
    session.flush()


ENTRY_TYPES = (
    EntryType("party.register", PartyRegisterBody, each(_project_register), platform_only=True),
    EntryType("key.add", KeyAddBody, each(_project_key_add)),
    EntryType("key.revoke", KeyRevokeBody, each(_project_key_revoke)),
    EntryType("party.status", PartyStatusBody, each(_project_status), platform_only=True),
)
PROJECTION_TABLES = ("party_key", "party")
KEY_MANAGEMENT_TYPES = ("party.register", "key.add", "key.revoke")
