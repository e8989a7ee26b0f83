"""The demo's accounts: one per role, with a fresh password each run, printed once.

So that someone who has just run the demo can sign in to every page, the demo makes
``demo.<role>`` accounts. Each run gives them new random passwords (argon2-hashed like
any other; the clear text goes only to the terminal of the person running the demo),
enrols TOTP for the staff roles with a generated secret (sealed at rest like any other)
and binds the merchant account to an approved merchant of the demo.

Which accounts are the demo's is recorded where every account's history is: their
``account-created`` audit row names :data:`DEMO_ACTOR` as who created them. Only those
are touched again; an account someone else created under a ``demo.`` name is left as
it is, and nothing about a real account differs from before.
"""

from __future__ import annotations

import secrets
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyotp
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provenance.codes import Code
from provenance.db import write_transaction
from provenance.ledger import Ledger
from provenance.parties import Party, PartyKind, PartyStatus
from webapp.accounts.keys import AccountKeys
from webapp.accounts.ledger import record_role_change
from webapp.accounts.models import AccountEvent, AccountUser
from webapp.accounts.roles import Role
from webapp.accounts.service import (
    TOTP_ISSUER,
    TOTP_STEP_S,
    EventKind,
    change_role,
    create_user,
    hash_password,
    record,
    revoke_sessions,
)
from webapp.accounts.web import state
from webapp.runtime import current_runtime, db_session

# Who the audit says created (and later reset) the demo's accounts. The colon keeps it
# apart from every username (an administrator may well be called "demo") and it does not
# start with "cli:" as the command line's actors do.
DEMO_ACTOR = "cardtrace:demo"
USERNAME_PREFIX = "demo."


def demo_username(role: Role) -> str:
    return f"{USERNAME_PREFIX}{role.value}"


@dataclass(frozen=True, slots=True)
class DemoAccount:
    """What the terminal shows for one demo account (and nothing else ever holds in clear)."""

    username: str
    role: Role
    password: str
    party: str | None
    totp_secret: str | None

    @property
    def otpauth_uri(self) -> str | None:
        if self.totp_secret is None:
            return None
        totp = pyotp.TOTP(self.totp_secret, interval=TOTP_STEP_S)
        return totp.provisioning_uri(name=self.username, issuer_name=TOTP_ISSUER)


@dataclass(frozen=True, slots=True)
class DemoAccounts:
    """The accounts made ready, and the ``demo.`` names held by accounts that are not the
    demo's (left untouched)."""

    ready: list[DemoAccount]
    not_ours: list[str]


def is_demo_account(session: Session, user: AccountUser) -> bool:
    """Whether the demo created this account (its creation is audited as the demo's)."""
    found = session.scalars(
        select(AccountEvent.id).where(
            AccountEvent.user_id == user.id,
            AccountEvent.kind == EventKind.CREATED,
            AccountEvent.actor == DEMO_ACTOR,
        )
    ).first()
    return found is not None


def approved_merchant(session: Session, *, preferred: str | None = None) -> str | None:
    """An approved merchant party: ``preferred`` if it still is one, else the approved
    merchant holding the most codes (so its account has something to look at)."""
    approved = (Party.kind == PartyKind.MERCHANT.value) & (
        Party.status == PartyStatus.APPROVED.value
    )
    if preferred is not None and session.scalar(
        select(Party.id).where(approved, Party.id == preferred)
    ):
        return preferred
    held = select(Code.holder, func.count().label("codes")).group_by(Code.holder).subquery()
    return session.scalar(
        select(Party.id)
        .outerjoin(held, held.c.holder == Party.id)
        .where(approved)
        .order_by(func.coalesce(held.c.codes, 0).desc(), Party.id)
        .limit(1)
    )


def _enrol_totp(session: Session, user: AccountUser, keys: AccountKeys, now: datetime) -> str:
    """Enrol a generated TOTP secret, as if the person had confirmed it with a first code;
    or, if the account has one already, keep it (an authenticator app set up in an
    earlier run goes on working)."""
    if user.totp_secret is not None and user.totp_confirmed_at is not None:
        return keys.open_totp(user.username, user.totp_secret)
    secret = pyotp.random_base32()
    user.totp_secret = keys.seal_totp(user.username, secret)
    user.totp_confirmed_at = now
    user.totp_last_step = None
    record(session, EventKind.TOTP_ENROLLED, now=now, user=user, actor=DEMO_ACTOR, detail="demo")
    return secret


def _reset(
    session: Session,
    ledger: Ledger,
    user: AccountUser,
    role: Role,
    party: str | None,
    password: str,
    now: datetime,
) -> None:
    """Bring a demo account from an earlier run back to its role, party and a usable
    state, with this run's password; its sessions end (they began with the old one)."""
    change_role(
        session,
        user.username,
        role,
        now=now,
        actor=DEMO_ACTOR,
        party=party,
        on_change=lambda changed, old, new: record_role_change(
            session,
            ledger,
            account=changed.username,
            role=new,
            previous=old,
            by=DEMO_ACTOR,
            now=now,
        ),
    )
    user.password_hash = hash_password(password)
    user.failed_attempts = 0
    user.locked_until = None
    if user.disabled_at is not None:
        user.disabled_at = None
        record(session, EventKind.UNLOCKED, now=now, user=user, actor=DEMO_ACTOR)
    revoke_sessions(session, user, now=now)
    record(session, EventKind.PASSWORD_CHANGED, now=now, user=user, actor=DEMO_ACTOR)


def provide_demo_accounts(
    session: Session,
    keys: AccountKeys,
    ledger: Ledger,
    *,
    merchant_party: str | None,
    now: datetime,
) -> DemoAccounts:
    """Create the demo's accounts, one per role, or reset those of an earlier run.

    Every run draws new passwords; staff keep the TOTP secret they were enrolled with.
    Flushes, never commits.

    Args:
        merchant_party: the approved merchant the merchant account acts for; without
            one, no merchant account is made.

    Raises:
        AccountsError: from the account services (a party that is not registered).
    """
    ready: list[DemoAccount] = []
    not_ours: list[str] = []
    for role in Role:
        username = demo_username(role)
        party = merchant_party if role is Role.MERCHANT else None
        if role is Role.MERCHANT and party is None:
            continue
        password = secrets.token_urlsafe(18)
        user = session.scalars(select(AccountUser).where(AccountUser.username == username)).first()
        if user is None:
            user = create_user(
                session,
                username,
                f"Demo {role.value}",
                role,
                password,
                now=now,
                party=party,
                actor=DEMO_ACTOR,
            )
        elif is_demo_account(session, user):
            _reset(session, ledger, user, role, party, password, now)
        else:
            not_ours.append(username)
            continue
        secret = _enrol_totp(session, user, keys, now) if role.is_staff else None
        ready.append(DemoAccount(username, role, password, party, secret))
    session.flush()
    return DemoAccounts(ready, not_ours)


def _python() -> str:
    """This interpreter, relative to the working directory when it lies below it."""
    path = Path(sys.executable)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def show_demo_accounts(accounts: DemoAccounts, say: Callable[[str], None]) -> None:
    """Print each account with what signing in needs. The only place the passwords and
    secrets appear in clear: the terminal of the person running the demo."""
    python = _python()
    for account in accounts.ready:
        bound = f" of {account.party}" if account.party else ""
        say(f"  {account.username:20} {account.role.value}{bound}")
        say(f"      password:    {account.password}")
        if account.totp_secret is None:
            say("      second factor: none (optional for merchants)")
            continue
        code = f'import pyotp; print(pyotp.TOTP("{account.totp_secret}").now())'
        say(f"      TOTP secret: {account.totp_secret} (add it to an authenticator app)")
        say(f"      {account.otpauth_uri}")
        say(f"      current code: {shlex.quote(python)} -c {shlex.quote(code)}")
    for username in accounts.not_ours:
        say(f"  {username}: an account the demo did not create holds this name; left as it is")


def run_accounts_demo(app: Flask, say: Callable[[str], None]) -> DemoAccounts:
    """The demo's last step: its accounts, made ready and printed."""
    with app.app_context():
        runtime, session = current_runtime(), db_session()
        say("\n8. Sign in: one demo account per role (new passwords each run, shown only here)")
        with write_transaction(session):
            earlier = session.scalar(
                select(AccountUser.party).where(
                    AccountUser.username == demo_username(Role.MERCHANT)
                )
            )
            party = approved_merchant(session, preferred=earlier)
            accounts = provide_demo_accounts(
                session, state().keys(), runtime.ledger, merchant_party=party, now=runtime.now()
            )
        if party is None:
            say("  no merchant is approved: no merchant account")
        show_demo_accounts(accounts, say)
    return accounts
