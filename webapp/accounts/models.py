"""Tables of web accounts: users, their second factors, sessions, API keys and the audit.

Nothing here holds a secret in clear: passwords are argon2 hashes, TOTP secrets are
sealed (AES-GCM), recovery codes, session ids and API keys are keyed or plain SHA-256
digests of high-entropy values.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from provenance.db import Base, hash32, intpk, str64, str200


class AccountUser(Base):
    __tablename__ = "account_user"

    id: Mapped[intpk]
    username: Mapped[str64] = mapped_column(unique=True)
    display_name: Mapped[str200]
    # One of webapp.accounts.roles.Role, stored by value.
    role: Mapped[str] = mapped_column(String(16))
    # The party a merchant account acts for; None for staff.
    party: Mapped[str | None] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    # AES-GCM sealed base32 secret; confirmed once the user typed a valid code.
    totp_secret: Mapped[bytes | None] = mapped_column(LargeBinary(128))
    totp_confirmed_at: Mapped[datetime | None]
    # The last TOTP time step accepted: a code of that step or earlier is a replay.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    language: Mapped[str | None] = mapped_column(String(8))
    failed_attempts: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[datetime | None]
    # Locked by an administrator until unlocked by one.
    disabled_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class AccountRecoveryCode(Base):
    __tablename__ = "account_recovery_code"

    id: Mapped[intpk]
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("account_user.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[hash32]
    used_at: Mapped[datetime | None]


class AccountSession(Base):
    """A browser's server-side session: its cookie holds the id, we keep its SHA-256."""

    __tablename__ = "account_session"

    id: Mapped[intpk]
    token_hash: Mapped[hash32] = mapped_column(unique=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("account_user.id", ondelete="CASCADE"), index=True
    )
    # "password" (second factor pending), "enrol" (must enrol TOTP first) or "full".
    stage: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class AccountIpThrottle(Base):
    """Failed sign-ins counted for a back-off: per address (``ip`` holds the address), or
    per username nobody holds (``ip`` holds ``name:`` and a keyed digest of the name), so
    that unknown names lock out like real ones and a lockout does not reveal which exist."""

    __tablename__ = "account_ip_throttle"

    ip: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]


class AccountEvent(Base):
    """The audit of accounts: sign-ins, failures, lockouts, sign-outs, role and key changes."""

    __tablename__ = "account_event"
    __table_args__ = (Index("ix_account_event_user_id_at", "user_id", "at"),)

    id: Mapped[intpk]
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("account_user.id", ondelete="SET NULL")
    )
    # Who did it, when not the user themself (an administrator, or "cli").
    actor: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(200))


class ApiKey(Base):
    """An API key: ``ctk_<key_id>_<secret>``; we keep the id and the SHA-256 of all.

    A machine's key acts for its party within its scopes. A personal key (``user_id`` set)
    acts as that user, with the user's current role; its party and scopes are unused.
    """

    __tablename__ = "api_key"

    id: Mapped[intpk]
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[hash32]
    name: Mapped[str200]
    party: Mapped[str64]
    # Space-separated webapp.accounts.api.Scope values.
    scopes: Mapped[str] = mapped_column(String(500))
    rate_per_minute: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    created_by: Mapped[str64]
    expires_at: Mapped[datetime | None]
    rotated_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("account_user.id", ondelete="CASCADE"), index=True
    )
