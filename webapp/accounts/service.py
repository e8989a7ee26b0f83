"""Accounts: create users, sign them in (password, then TOTP or a recovery code), lock them
out after failures, change roles, and keep server-side sessions. No Flask here: every
function takes a SQLAlchemy session, the time and plain values, flushes and never commits.

Every sign-in, failure, lockout, sign-out and role change is written to ``account_event``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from provenance.parties import Party
from webapp.accounts.errors import (
    AccountExistsError,
    AccountNotFoundError,
    InvalidAccountInputError,
    LockedOutError,
    SignInError,
)
from webapp.accounts.keys import AccountKeys
from webapp.accounts.models import (
    AccountEvent,
    AccountIpThrottle,
    AccountRecoveryCode,
    AccountSession,
    AccountUser,
)
from webapp.accounts.roles import Role

USERNAME_RE = re.compile(r"[a-z][a-z0-9._-]{1,63}")
MIN_PASSWORD = 12
MAX_PASSWORD = 256
LANGUAGES = ("en", "zh_CN")

TOTP_STEP_S = 30
TOTP_ISSUER = "cardtrace"
RECOVERY_CODES = 10

# Back-off: after ACCOUNT_FREE_FAILURES failures in a row an account waits
# BACKOFF_BASE * 2**(extra failures), at most BACKOFF_MAX; an address likewise after
# IP_FREE_FAILURES (more, since several people may share one address).
ACCOUNT_FREE_FAILURES = 5
IP_FREE_FAILURES = 20
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=1)
IP_FAILURE_MEMORY = timedelta(hours=24)

PENDING_SESSION_TTL = timedelta(minutes=10)
SESSION_IDLE = timedelta(minutes=30)
SESSION_ABSOLUTE = timedelta(hours=12)
# last_seen_at is written at most this often, not on every request.
SESSION_TOUCH = timedelta(minutes=1)


class EventKind:
    """The kinds of ``account_event`` rows."""

    CREATED = "account-created"
    SIGN_IN = "sign-in"
    PASSWORD_OK = "password-accepted"  # noqa: S105 (an event name)
    SIGN_IN_FAILED = "sign-in-failed"
    SECOND_FACTOR_FAILED = "second-factor-failed"
    LOCKED_OUT = "locked-out"
    REFUSED_LOCKED = "refused-while-locked"
    SIGN_OUT = "sign-out"
    ROLE_CHANGED = "role-changed"
    LOCKED = "locked-by-administrator"
    UNLOCKED = "unlocked"
    TOTP_ENROLLED = "totp-enrolled"
    TOTP_RESET = "totp-reset"
    RECOVERY_USED = "recovery-code-used"
    PASSWORD_CHANGED = "password-changed"  # noqa: S105
    LANGUAGE_CHANGED = "language-changed"
    API_KEY_CREATED = "api-key-created"
    API_KEY_ROTATED = "api-key-rotated"
    API_KEY_REVOKED = "api-key-revoked"
    DOCUMENT_VIEWED = "document-viewed"


class Stage:
    PASSWORD = "password"  # noqa: S105 (a stage name)
    ENROL = "enrol"
    FULL = "full"


_hasher = PasswordHasher()
# Verified against when the username is unknown, so both answers take as long.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_policy(password: str, username: str) -> None:
    """Raises InvalidAccountInputError if the password is too short, too long or the name."""
    if len(password) < MIN_PASSWORD:
        raise InvalidAccountInputError(
            f"the password must be at least {MIN_PASSWORD} characters", field="password"
        )
    if len(password) > MAX_PASSWORD:
        raise InvalidAccountInputError(
            f"the password must be at most {MAX_PASSWORD} characters", field="password"
        )
    if password.strip().lower() == username.lower():
        raise InvalidAccountInputError("the password must not be the username", field="password")


def record(
    session: Session,
    kind: str,
    *,
    now: datetime,
    user: AccountUser | None = None,
    actor: str | None = None,
    ip: str | None = None,
    detail: str | None = None,
) -> None:
    """Append an audit row. ``detail`` is a short fixed phrase, never a secret."""
    session.add(
        AccountEvent(
            at=now,
            kind=kind,
            user_id=user.id if user is not None else None,
            actor=actor,
            ip=(ip or None) and ip[:64],
            detail=detail[:200] if detail else None,
        )
    )


# --- users ----------------------------------------------------------------------------


def get_user(session: Session, username: str) -> AccountUser:
    """Raises AccountNotFoundError."""
    user = session.scalars(select(AccountUser).where(AccountUser.username == username)).first()
    if user is None:
        raise AccountNotFoundError(f"no account {username!r}")
    return user


def list_users(session: Session) -> list[AccountUser]:
    return list(session.scalars(select(AccountUser).order_by(AccountUser.username)))


def _check_party(session: Session, role: Role, party: str | None) -> str | None:
    if role is Role.MERCHANT:
        if not party:
            raise InvalidAccountInputError("a merchant account needs a party", field="party")
        if session.get(Party, party) is None:
            raise InvalidAccountInputError(f"no party {party!r} is registered", field="party")
        return party
    if party:
        raise InvalidAccountInputError("only a merchant account is bound to a party", field="party")
    return None


def create_user(
    session: Session,
    username: str,
    display_name: str,
    role: Role,
    password: str,
    *,
    now: datetime,
    party: str | None = None,
    actor: str = "cli",
    language: str | None = None,
) -> AccountUser:
    """Create an account. Staff enrol their TOTP at their first sign-in.

    Raises:
        InvalidAccountInputError: a malformed username, name, party or weak password.
        AccountExistsError: the username is taken.
    """
    if not USERNAME_RE.fullmatch(username):
        raise InvalidAccountInputError(
            "the username must be 2-64 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter",
            field="username",
        )
    display_name = display_name.strip()
    if not display_name or len(display_name) > 200:
        raise InvalidAccountInputError("the name must be 1-200 characters", field="display_name")
    if language is not None and language not in LANGUAGES:
        raise InvalidAccountInputError("unknown language", field="language")
    check_password_policy(password, username)
    bound = _check_party(session, role, party)
    if session.scalars(select(AccountUser.id).where(AccountUser.username == username)).first():
        raise AccountExistsError(f"the username {username!r} is taken")
    user = AccountUser(
        username=username,
        display_name=display_name,
        role=role.value,
        party=bound,
        password_hash=hash_password(password),
        totp_secret=None,
        totp_confirmed_at=None,
        totp_last_step=None,
        language=language,
        failed_attempts=0,
        locked_until=None,
        disabled_at=None,
        created_at=now,
    )
    session.add(user)
    session.flush()
    record(session, EventKind.CREATED, now=now, user=user, actor=actor, detail=f"role {role}")
    session.flush()
    return user


def change_role(
    session: Session,
    username: str,
    role: Role,
    *,
    now: datetime,
    actor: str,
    party: str | None = None,
    on_change: Callable[[AccountUser, Role, Role], None] | None = None,
) -> AccountUser:
    """Give an account another role and revoke its sessions (they carried the old role).

    Args:
        on_change: called with the user, the old and the new role before the flush (the
            web app writes the change to the ledger there).

    Raises:
        AccountNotFoundError, InvalidAccountInputError (party missing for a merchant).
    """
    user = get_user(session, username)
    old = Role(user.role)
    wanted = (party if party is not None else user.party) if role is Role.MERCHANT else None
    user.party = _check_party(session, role, wanted)
    if old is role:
        return user
    user.role = role.value
    revoke_sessions(session, user, now=now)
    record(
        session, EventKind.ROLE_CHANGED, now=now, user=user, actor=actor, detail=f"{old} -> {role}"
    )
    if on_change is not None:
        on_change(user, old, role)
    session.flush()
    return user


def lock_user(session: Session, username: str, *, now: datetime, actor: str) -> AccountUser:
    """Lock an account until an administrator unlocks it; its sessions end."""
    user = get_user(session, username)
    if user.disabled_at is None:
        user.disabled_at = now
        revoke_sessions(session, user, now=now)
        record(session, EventKind.LOCKED, now=now, user=user, actor=actor)
        session.flush()
    return user


def unlock_user(session: Session, username: str, *, now: datetime, actor: str) -> AccountUser:
    """Lift an administrator's lock and any back-off."""
    user = get_user(session, username)
    user.disabled_at = None
    user.locked_until = None
    user.failed_attempts = 0
    record(session, EventKind.UNLOCKED, now=now, user=user, actor=actor)
    session.flush()
    return user


def reset_totp(session: Session, username: str, *, now: datetime, actor: str) -> AccountUser:
    """Forget an account's TOTP and recovery codes: it enrols again at its next sign-in."""
    user = get_user(session, username)
    user.totp_secret = None
    user.totp_confirmed_at = None
    user.totp_last_step = None
    session.execute(delete(AccountRecoveryCode).where(AccountRecoveryCode.user_id == user.id))
    revoke_sessions(session, user, now=now)
    record(session, EventKind.TOTP_RESET, now=now, user=user, actor=actor)
    session.flush()
    return user


def set_language(session: Session, user: AccountUser, language: str, *, now: datetime) -> None:
    if language not in LANGUAGES:
        raise InvalidAccountInputError("unknown language", field="language")
    if user.language != language:
        user.language = language
        record(session, EventKind.LANGUAGE_CHANGED, now=now, user=user, detail=language)
        session.flush()


def needs_second_factor(user: AccountUser) -> bool:
    """Staff always; a merchant once it has enrolled."""
    return Role(user.role).is_staff or user.totp_confirmed_at is not None


# --- throttling -------------------------------------------------------------------------


def _backoff(failures: int, free: int) -> timedelta | None:
    if failures < free:
        return None
    wait: timedelta = BACKOFF_BASE * 2 ** min(failures - free, 16)
    return min(wait, BACKOFF_MAX)


def _throttle(session: Session, key: str | None, now: datetime) -> AccountIpThrottle | None:
    if not key:
        return None
    row = session.get(AccountIpThrottle, key[:64])
    if row is not None and now - row.last_failure_at > IP_FAILURE_MEMORY:
        row.failures = 0
        row.locked_until = None
    return row


def _unknown_name_key(keys: AccountKeys, username: str) -> str:
    """The throttle row of a username nobody holds (a keyed digest: what was typed may be
    a password)."""
    return "name:" + keys.name_digest(username)[:32]


def _locked_until(
    session: Session, user: AccountUser | None, keys_: tuple[str | None, ...], now: datetime
) -> datetime | None:
    until: list[datetime] = []
    if user is not None and user.locked_until is not None and user.locked_until > now:
        until.append(user.locked_until)
    for key in keys_:
        row = _throttle(session, key, now)
        if row is not None and row.locked_until is not None and row.locked_until > now:
            until.append(row.locked_until)
    return max(until) if until else None


def _count(session: Session, key: str, free: int, now: datetime, ip: str | None, what: str) -> None:
    row = _throttle(session, key, now)
    if row is None:
        row = AccountIpThrottle(ip=key[:64], failures=0, last_failure_at=now, locked_until=None)
        session.add(row)
    row.failures += 1
    row.last_failure_at = now
    wait = _backoff(row.failures, free)
    if wait is not None:
        row.locked_until = now + wait
        record(
            session,
            EventKind.LOCKED_OUT,
            now=now,
            user=None,
            ip=ip,
            detail=f"{what}, {int(wait.total_seconds())} s",
        )


def _fail(
    session: Session,
    user: AccountUser | None,
    ip: str | None,
    now: datetime,
    kind: str,
    unknown_name: str | None = None,
) -> None:
    """Count a failure against the account (or the unknown name, which backs off just the
    same, so a lockout does not tell which usernames exist) and the address."""
    detail = None if user is not None else "unknown account"
    record(session, kind, now=now, user=user, ip=ip, detail=detail)
    if user is not None:
        user.failed_attempts += 1
        wait = _backoff(user.failed_attempts, ACCOUNT_FREE_FAILURES)
        if wait is not None:
            user.locked_until = now + wait
            revoke_pending(session, user, now=now)
            record(
                session,
                EventKind.LOCKED_OUT,
                now=now,
                user=user,
                ip=ip,
                detail=f"account, {int(wait.total_seconds())} s",
            )
    elif unknown_name:
        _count(session, unknown_name, ACCOUNT_FREE_FAILURES, now, ip, "account")
    if ip:
        _count(session, ip, IP_FREE_FAILURES, now, ip, "address")
    session.flush()


def _succeed(session: Session, user: AccountUser, ip: str | None, now: datetime) -> None:
    user.failed_attempts = 0
    user.locked_until = None
    row = _throttle(session, ip, now)
    if row is not None:
        row.failures = 0
        row.locked_until = None


def _refuse_if_locked(
    session: Session,
    user: AccountUser | None,
    ip: str | None,
    now: datetime,
    unknown_name: str | None = None,
) -> None:
    until = _locked_until(session, user, (ip, unknown_name), now)
    if until is not None:
        record(session, EventKind.REFUSED_LOCKED, now=now, user=user, ip=ip)
        session.flush()
        raise LockedOutError("too many failed attempts; try again later") from None


# --- sessions ---------------------------------------------------------------------------


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii")).digest()


@dataclass(frozen=True, slots=True)
class IssuedSession:
    """A session record and the token its cookie carries (never stored)."""

    token: str
    record: AccountSession


def _issue(session: Session, user: AccountUser, stage: str, now: datetime) -> IssuedSession:
    token = secrets.token_urlsafe(32)
    ttl = SESSION_ABSOLUTE if stage == Stage.FULL else PENDING_SESSION_TTL
    row = AccountSession(
        token_hash=_token_hash(token),
        user_id=user.id,
        stage=stage,
        created_at=now,
        last_seen_at=now,
        expires_at=now + ttl,
        revoked_at=None,
    )
    session.add(row)
    session.flush()
    return IssuedSession(token, row)


def revoke_sessions(session: Session, user: AccountUser, *, now: datetime) -> None:
    """End every session of the account (sign-out everywhere, role change, lock)."""
    session.execute(
        update(AccountSession)
        .where(AccountSession.user_id == user.id, AccountSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_pending(session: Session, user: AccountUser, *, now: datetime) -> None:
    session.execute(
        update(AccountSession)
        .where(
            AccountSession.user_id == user.id,
            AccountSession.revoked_at.is_(None),
            AccountSession.stage != Stage.FULL,
        )
        .values(revoked_at=now)
    )


@dataclass(frozen=True, slots=True)
class LiveSession:
    user: AccountUser
    record: AccountSession


def resolve_session(
    session: Session, token: str, *, now: datetime, stages: tuple[str, ...] = (Stage.FULL,)
) -> LiveSession | None:
    """The live session a cookie's token names, or None (unknown, revoked, expired, idle,
    at another stage, or its account locked)."""
    if not token:
        return None
    row = session.scalars(
        select(AccountSession).where(AccountSession.token_hash == _token_hash(token))
    ).first()
    if row is None or row.revoked_at is not None or row.stage not in stages:
        return None
    if now >= row.expires_at or (row.stage == Stage.FULL and now - row.last_seen_at > SESSION_IDLE):
        return None
    user = session.get(AccountUser, row.user_id)
    if user is None or user.disabled_at is not None:
        return None
    if user.locked_until is not None and user.locked_until > now:
        return None
    return LiveSession(user, row)


def touch_session(live: LiveSession, *, now: datetime) -> bool:
    """Move the idle deadline on, at most once a minute. Returns whether it changed."""
    if now - live.record.last_seen_at >= SESSION_TOUCH:
        live.record.last_seen_at = now
        return True
    return False


def sign_out(session: Session, live: LiveSession, *, now: datetime, ip: str | None) -> None:
    """End this session (``live`` may come from another, closed session)."""
    session.execute(
        update(AccountSession).where(AccountSession.id == live.record.id).values(revoked_at=now)
    )
    record(session, EventKind.SIGN_OUT, now=now, user=live.user, ip=ip)
    session.flush()


# --- signing in -------------------------------------------------------------------------


def begin_sign_in(
    session: Session,
    username: str,
    password: str,
    keys: AccountKeys,
    *,
    now: datetime,
    ip: str | None,
) -> IssuedSession:
    """Check the password. Returns a session at the next stage: the second factor,
    enrolment (staff without TOTP), or full (a merchant without TOTP).

    Raises:
        LockedOutError: the account or the address is backing off (nothing is checked).
        SignInError: unknown account, wrong password or a locked account (one message for
            all, so the answer does not tell which usernames exist).
    """
    user = session.scalars(select(AccountUser).where(AccountUser.username == username)).first()
    unknown = _unknown_name_key(keys, username) if user is None else None
    _refuse_if_locked(session, user, ip, now, unknown)
    if user is None:
        with contextlib.suppress(VerificationError):
            _hasher.verify(_DUMMY_HASH, password)
        _fail(session, None, ip, now, EventKind.SIGN_IN_FAILED, unknown)
        raise SignInError("the username or password is wrong")
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        _fail(session, user, ip, now, EventKind.SIGN_IN_FAILED)
        raise SignInError("the username or password is wrong") from None
    if user.disabled_at is not None:
        record(
            session,
            EventKind.REFUSED_LOCKED,
            now=now,
            user=user,
            ip=ip,
            detail="locked by an administrator",
        )
        session.flush()
        raise SignInError("the username or password is wrong")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    revoke_pending(session, user, now=now)
    if not needs_second_factor(user):
        _succeed(session, user, ip, now)
        record(session, EventKind.SIGN_IN, now=now, user=user, ip=ip, detail="password")
        return _issue(session, user, Stage.FULL, now)
    record(session, EventKind.PASSWORD_OK, now=now, user=user, ip=ip)
    stage = Stage.PASSWORD if user.totp_confirmed_at is not None else Stage.ENROL
    return _issue(session, user, stage, now)


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, interval=TOTP_STEP_S)


def _match_totp(secret: str, code: str, now: datetime, after_step: int | None) -> int | None:
    """The time step whose code ``code`` is (now, or one step either side for clock drift),
    if it is later than ``after_step``; else None. A code is never accepted twice."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = _totp(secret)
    step = int(now.timestamp()) // TOTP_STEP_S
    for candidate in (step - 1, step, step + 1):
        if after_step is not None and candidate <= after_step:
            continue
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            return candidate
    return None


def _finish(
    session: Session, pending: LiveSession, now: datetime, ip: str | None, how: str
) -> IssuedSession:
    pending.record.revoked_at = now
    _succeed(session, pending.user, ip, now)
    record(session, EventKind.SIGN_IN, now=now, user=pending.user, ip=ip, detail=how)
    return _issue(session, pending.user, Stage.FULL, now)


def complete_sign_in(
    session: Session,
    pending: LiveSession,
    code: str,
    keys: AccountKeys,
    *,
    now: datetime,
    ip: str | None,
) -> IssuedSession:
    """Check the second factor: a TOTP code, or else an unused recovery code. The pending
    session ends and a full one begins (a new id: nothing from before sign-in survives).

    Raises:
        LockedOutError: backing off.
        SignInError: the code is wrong, replayed or already used.
    """
    user = pending.user
    _refuse_if_locked(session, user, ip, now)
    if user.totp_secret is None or user.totp_confirmed_at is None:
        raise SignInError("this account has no second factor yet")
    secret = keys.open_totp(user.username, user.totp_secret)
    step = _match_totp(secret, code, now, user.totp_last_step)
    if step is not None:
        user.totp_last_step = step
        return _finish(session, pending, now, ip, "password+totp")
    if use_recovery_code(session, user, code, keys, now=now, ip=ip):
        return _finish(session, pending, now, ip, "password+recovery-code")
    _fail(session, user, ip, now, EventKind.SECOND_FACTOR_FAILED)
    raise SignInError("the code is wrong or was already used")


def use_recovery_code(
    session: Session,
    user: AccountUser,
    code: str,
    keys: AccountKeys,
    *,
    now: datetime,
    ip: str | None,
) -> bool:
    """Spend one recovery code. Returns False if it is unknown or already spent."""
    if len(code) > 64:
        return False
    digest = keys.recovery_digest(user.id, code)
    # Single use even when two requests race: the UPDATE only matches an unused code.
    result = session.execute(
        update(AccountRecoveryCode)
        .where(
            AccountRecoveryCode.user_id == user.id,
            AccountRecoveryCode.code_hash == digest,
            AccountRecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    record(session, EventKind.RECOVERY_USED, now=now, user=user, ip=ip)
    return True


def remaining_recovery_codes(session: Session, user: AccountUser) -> int:
    return len(
        session.scalars(
            select(AccountRecoveryCode.id).where(
                AccountRecoveryCode.user_id == user.id, AccountRecoveryCode.used_at.is_(None)
            )
        ).all()
    )


# --- enrolment --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What the enrolment page shows: the secret and the otpauth:// URI of its QR code."""

    secret: str
    uri: str


def start_enrolment(
    session: Session, user: AccountUser, keys: AccountKeys, *, issuer: str = TOTP_ISSUER
) -> Enrolment:
    """The account's candidate TOTP secret (made and sealed on first call).

    Raises:
        InvalidAccountInputError: the account has enrolled already.
    """
    if user.totp_confirmed_at is not None:
        raise InvalidAccountInputError("this account has enrolled a second factor already")
    if user.totp_secret is None:
        user.totp_secret = keys.seal_totp(user.username, pyotp.random_base32())
        session.flush()
    secret = keys.open_totp(user.username, user.totp_secret)
    uri = _totp(secret).provisioning_uri(name=user.username, issuer_name=issuer)
    return Enrolment(secret, uri)


def new_recovery_code() -> str:
    raw = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def _confirm_secret(
    session: Session,
    user: AccountUser,
    code: str,
    keys: AccountKeys,
    *,
    now: datetime,
    ip: str | None,
) -> list[str]:
    _refuse_if_locked(session, user, ip, now)
    if user.totp_secret is None or user.totp_confirmed_at is not None:
        raise SignInError("start the enrolment again")
    secret = keys.open_totp(user.username, user.totp_secret)
    step = _match_totp(secret, code, now, user.totp_last_step)
    if step is None:
        _fail(session, user, ip, now, EventKind.SECOND_FACTOR_FAILED)
        raise SignInError("the code is wrong or was already used")
    user.totp_last_step = step
    user.totp_confirmed_at = now
    codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
    session.execute(delete(AccountRecoveryCode).where(AccountRecoveryCode.user_id == user.id))
    session.add_all(
        AccountRecoveryCode(
            user_id=user.id, code_hash=keys.recovery_digest(user.id, c), used_at=None
        )
        for c in codes
    )
    record(session, EventKind.TOTP_ENROLLED, now=now, user=user, ip=ip)
    return codes


def confirm_enrolment(
    session: Session,
    pending: LiveSession,
    code: str,
    keys: AccountKeys,
    *,
    now: datetime,
    ip: str | None,
) -> tuple[IssuedSession, list[str]]:
    """Confirm the candidate secret with a code from the app; returns the full session and
    the recovery codes, which are shown once and kept only as keyed digests.

    Raises:
        LockedOutError: backing off.
        SignInError: the code does not match.
    """
    codes = _confirm_secret(session, pending.user, code, keys, now=now, ip=ip)
    issued = _finish(session, pending, now, ip, "password+totp-enrolment")
    return issued, codes


def enrol_signed_in(
    session: Session,
    live: LiveSession,
    code: str,
    keys: AccountKeys,
    *,
    now: datetime,
    ip: str | None,
) -> list[str]:
    """A signed-in account without TOTP (a merchant) enrols one. Its other sessions, begun
    with the password alone, end; this one goes on. Returns the recovery codes.

    Raises:
        LockedOutError, SignInError: as :func:`confirm_enrolment`.
    """
    user = session.get(AccountUser, live.user.id)
    if user is None:
        raise SignInError("start the enrolment again")
    codes = _confirm_secret(session, user, code, keys, now=now, ip=ip)
    session.execute(
        update(AccountSession)
        .where(
            AccountSession.user_id == user.id,
            AccountSession.id != live.record.id,
            AccountSession.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    session.flush()
    return codes


def events_of(
    session: Session, user: AccountUser | None = None, limit: int = 100
) -> list[AccountEvent]:
    query = select(AccountEvent).order_by(AccountEvent.id.desc()).limit(limit)
    if user is not None:
        query = query.where(AccountEvent.user_id == user.id)
    return list(session.scalars(query))
