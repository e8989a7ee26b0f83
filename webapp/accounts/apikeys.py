"""API keys: a machine's, scoped to a party and a set of operations, or a person's,
acting as its user account; stored hashed.

A key reads ``ctk_<key id>_<secret>``: the 12-hex-digit key id finds the row, the SHA-256
of the whole key is compared in constant time. The key is returned once, at creation and
at rotation, and never stored. No Flask here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from provenance.parties import PLATFORM_PARTY, Party
from webapp.accounts.errors import (
    AccountNotFoundError,
    ApiKeyExpiredError,
    ApiKeyInvalidError,
    ApiKeyRevokedError,
    InvalidAccountInputError,
)
from webapp.accounts.models import AccountUser, ApiKey
from webapp.accounts.roles import Role, Scope, parse_scopes
from webapp.accounts.service import EventKind, get_user, record

KEY_PREFIX = "ctk_"
KEY_RE = re.compile(r"ctk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
DEFAULT_RATE_PER_MINUTE = 600
MAX_RATE_PER_MINUTE = 100_000


def digest_of(token: str) -> bytes:
    """The SHA-256 of a full key, as the key table keeps it."""
    return hashlib.sha256(token.encode("ascii")).digest()


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """The row and the full key, to show once."""

    key: ApiKey
    token: str


def key_scopes(key: ApiKey | LiveKey) -> frozenset[Scope]:
    return frozenset(Scope(s) for s in key.scopes.split() if s)


def _check_limits(
    name: str, rate_per_minute: int, expires_at: datetime | None, now: datetime
) -> str:
    """The stripped name. Raises InvalidAccountInputError."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidAccountInputError("the key's name must be 1-200 characters", field="name")
    if not 1 <= rate_per_minute <= MAX_RATE_PER_MINUTE:
        raise InvalidAccountInputError(
            f"the rate limit must be 1-{MAX_RATE_PER_MINUTE} requests a minute",
            field="rate_per_minute",
        )
    if expires_at is not None and expires_at <= now:
        raise InvalidAccountInputError("the expiry must be in the future", field="expires_at")
    return name


def _new_key_id(session: Session) -> str:
    key_id = secrets.token_hex(6)
    while session.scalars(select(ApiKey.id).where(ApiKey.key_id == key_id)).first():
        key_id = secrets.token_hex(6)
    return key_id


def _new_secret(key_id: str) -> tuple[str, bytes]:
    token = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return token, digest_of(token)


def create_key(
    session: Session,
    name: str,
    party: str,
    scopes: frozenset[Scope] | list[str] | str,
    *,
    now: datetime,
    actor: str,
    expires_at: datetime | None = None,
    rate_per_minute: int = DEFAULT_RATE_PER_MINUTE,
) -> IssuedKey:
    """Issue a key for ``party``.

    Raises:
        InvalidAccountInputError: empty name, unknown party or scope, no scope, a rate out
            of range, or an expiry in the past.
    """
    name = _check_limits(name, rate_per_minute, expires_at, now)
    if session.get(Party, party) is None:
        raise InvalidAccountInputError(f"no party {party!r} is registered", field="party")
    try:
        chosen = scopes if isinstance(scopes, frozenset) else parse_scopes(scopes)
    except ValueError as e:
        raise InvalidAccountInputError(str(e), field="scopes") from e
    if not chosen:
        raise InvalidAccountInputError("a key needs at least one scope", field="scopes")
    return _issue(
        session,
        name,
        party,
        " ".join(sorted(s.value for s in chosen)),
        None,
        now=now,
        actor=actor,
        expires_at=expires_at,
        rate_per_minute=rate_per_minute,
    )


def create_personal_key(
    session: Session,
    name: str,
    username: str,
    *,
    now: datetime,
    actor: str,
    expires_at: datetime | None = None,
    rate_per_minute: int = DEFAULT_RATE_PER_MINUTE,
) -> IssuedKey:
    """Issue a personal key: it acts as the account ``username`` would through a signed-in
    session, with the account's role at the time of each request. It carries no scopes of
    its own; its party is the account's (the platform's for staff), for listing only.

    Raises:
        AccountNotFoundError: no such account.
        InvalidAccountInputError: empty name, a rate out of range, an expiry in the past,
            or a staff account that has not enrolled its second factor (field
            ``second_factor``): a key must not be a way around it.
    """
    name = _check_limits(name, rate_per_minute, expires_at, now)
    user = get_user(session, username)
    if _lacks_second_factor(user):
        raise InvalidAccountInputError(
            f"account {user.username!r} has not enrolled its second factor (TOTP) yet: "
            "a staff account signs in once with it before it can have a personal key",
            field="second_factor",
        )
    return _issue(
        session,
        name,
        user.party or PLATFORM_PARTY,
        "",
        user,
        now=now,
        actor=actor,
        expires_at=expires_at,
        rate_per_minute=rate_per_minute,
    )


def _issue(
    session: Session,
    name: str,
    party: str,
    scopes: str,
    user: AccountUser | None,
    *,
    now: datetime,
    actor: str,
    expires_at: datetime | None,
    rate_per_minute: int,
) -> IssuedKey:
    """Store a new key (its secret hashed), record its creation, return its secret once."""
    key_id = _new_key_id(session)
    token, digest = _new_secret(key_id)
    key = ApiKey(
        key_id=key_id,
        secret_hash=digest,
        name=name,
        party=party,
        scopes=scopes,
        rate_per_minute=rate_per_minute,
        created_at=now,
        created_by=actor,
        expires_at=expires_at,
        rotated_at=None,
        revoked_at=None,
        last_used_at=None,
        user_id=None if user is None else user.id,
    )
    session.add(key)
    session.flush()
    detail = (
        f"key {key_id} for {party}: {scopes}"
        if user is None
        else f"personal key {key_id} for {user.username}"
    )
    record(session, EventKind.API_KEY_CREATED, now=now, user=user, actor=actor, detail=detail)
    session.flush()
    return IssuedKey(key, token)


def _lacks_second_factor(user: AccountUser) -> bool:
    """Staff sign in with a second factor; an account whose TOTP is not (or no longer)
    enrolled acts through no key either."""
    return Role(user.role).is_staff and user.totp_confirmed_at is None


def key_user(session: Session, key: ApiKey | LiveKey, *, now: datetime) -> AccountUser | None:
    """The account a personal key acts as; None for a machine's key.

    Raises:
        ApiKeyInvalidError: the account is disabled or locked out, or is a staff account
            whose second factor was reset (no secret or name said).
    """
    if key.user_id is None:
        return None
    user = session.get(AccountUser, key.user_id)
    if user is None or user.disabled_at is not None:
        raise ApiKeyInvalidError("the API key's account is disabled")
    if user.locked_until is not None and user.locked_until > now:
        raise ApiKeyInvalidError("the API key's account is locked")
    if _lacks_second_factor(user):
        raise ApiKeyInvalidError("the API key's account has no second factor enrolled")
    return user


def get_key(session: Session, key_id: str) -> ApiKey:
    """Raises AccountNotFoundError."""
    key = session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).first()
    if key is None:
        raise AccountNotFoundError(f"no API key {key_id!r}")
    return key


def list_keys(session: Session, party: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.party, ApiKey.created_at, ApiKey.id)
    if party is not None:
        query = query.where(ApiKey.party == party)
    return list(session.scalars(query))


def key_usernames(session: Session) -> dict[int, str]:
    """The usernames of the accounts personal keys belong to, by account id."""
    query = (
        select(AccountUser.id, AccountUser.username)
        .join(ApiKey, ApiKey.user_id == AccountUser.id)
        .distinct()
    )
    return {user_id: username for user_id, username in session.execute(query)}


def rotate_key(session: Session, key_id: str, *, now: datetime, actor: str) -> IssuedKey:
    """Give the key a new secret (same id, scopes and limits); the old one stops at once.

    Raises:
        AccountNotFoundError: no such key.
        InvalidAccountInputError: the key is revoked.
    """
    key = get_key(session, key_id)
    if key.revoked_at is not None:
        raise InvalidAccountInputError("a revoked key cannot be rotated; create a new one")
    token, key.secret_hash = _new_secret(key.key_id)
    key.rotated_at = now
    record(session, EventKind.API_KEY_ROTATED, now=now, actor=actor, detail=f"key {key_id}")
    session.flush()
    return IssuedKey(key, token)


def revoke_key(session: Session, key_id: str, *, now: datetime, actor: str) -> ApiKey:
    """Revoke the key for good (idempotent). Raises AccountNotFoundError."""
    key = get_key(session, key_id)
    if key.revoked_at is None:
        key.revoked_at = now
        record(session, EventKind.API_KEY_REVOKED, now=now, actor=actor, detail=f"key {key_id}")
        session.flush()
    return key


@dataclass(frozen=True, slots=True)
class LiveKey:
    """An API key as a request sees it: its row, read as a plain row (every request with a
    key reads one), with the attributes of :class:`ApiKey` that a check needs."""

    id: int
    key_id: str
    party: str
    scopes: str
    rate_per_minute: int
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    user_id: int | None


_KEY_ROW = select(ApiKey.secret_hash, *(ApiKey.__table__.c[f.name] for f in fields(LiveKey))).where(
    ApiKey.key_id == bindparam("key_id")
)


def authenticate_key(session: Session | Connection, token: str, *, now: datetime) -> LiveKey:
    """The live key ``token`` is, read through ``session`` (or a connection of its own).

    Raises:
        ApiKeyInvalidError: malformed or unknown, or a secret that is not the current one.
        ApiKeyRevokedError, ApiKeyExpiredError.
    """
    match = KEY_RE.fullmatch(token)
    if match is None:
        raise ApiKeyInvalidError("the API key is malformed or unknown")
    # A Core statement on the session's connection: the ORM's execution adds nothing here.
    connection = session if isinstance(session, Connection) else session.connection()
    row = connection.execute(_KEY_ROW, {"key_id": match.group(1)}).first()
    if row is None or not hmac.compare_digest(row[0], digest_of(token)):
        raise ApiKeyInvalidError("the API key is malformed or unknown")
    return check_standing(LiveKey(*row[1:]), now=now)


def check_standing(key: LiveKey, *, now: datetime) -> LiveKey:
    """``key``, if it is neither revoked nor expired at ``now``.

    Raises:
        ApiKeyRevokedError, ApiKeyExpiredError.
    """
    if key.revoked_at is not None:
        raise ApiKeyRevokedError("the API key has been revoked")
    if key.expires_at is not None and now >= key.expires_at:
        raise ApiKeyExpiredError("the API key has expired")
    return key
