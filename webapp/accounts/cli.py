"""``cardtrace accounts`` and ``cardtrace apikeys``: thin commands over the services.

Passwords are read from a pipe or a hidden prompt, never from the command line (where
other users could read them); an API key is printed once, on standard output only.
"""

from __future__ import annotations

import getpass
import json
import sys
from datetime import UTC, datetime
from typing import Any

import click
from flask import Flask

from provenance.db import write_transaction
from webapp.accounts import apikeys, service
from webapp.accounts.ledger import record_role_change
from webapp.accounts.models import AccountUser
from webapp.accounts.roles import Role, Scope


def _app() -> Flask:
    from webapp import create_app

    return create_app()


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (KeyError, OSError):
        return "cli"


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


def _status(user: AccountUser, now: datetime) -> str:
    if user.disabled_at is not None:
        return "locked"
    if user.locked_until is not None and user.locked_until > now:
        return "backing-off"
    return "active"


ROLE_CHOICE = click.Choice([r.value for r in Role])


@click.group()
def accounts() -> None:
    """Web accounts: create, change roles, lock, unlock, list."""


@accounts.command("create")
@click.argument("username")
@click.option("--role", type=ROLE_CHOICE, required=True)
@click.option("--name", "display_name", required=True, help="The person's name, as shown.")
@click.option("--party", help="The party a merchant account acts for.")
@click.option("--language", type=click.Choice(list(service.LANGUAGES)), default=None)
def accounts_create(
    username: str, role: str, display_name: str, party: str | None, language: str | None
) -> None:
    """Create an account; the password is read from standard input (or asked for, hidden).

    Staff enrol their second factor (TOTP) at their first sign-in.
    """
    from webapp.runtime import current_runtime, db_session

    password = _read_password()
    app = _app()
    with app.app_context():
        session = db_session()
        with write_transaction(session):
            user = service.create_user(
                session,
                username,
                display_name,
                Role(role),
                password,
                now=current_runtime().now(),
                party=party,
                actor=_actor(),
                language=language,
            )
    second = "enrols TOTP at first sign-in" if Role(role).is_staff else "TOTP optional"
    click.echo(f"created {user.username} ({user.role}{', ' + party if party else ''}); {second}")


@accounts.command("role")
@click.argument("username")
@click.argument("role", type=ROLE_CHOICE)
@click.option("--party", help="The party, when the new role is merchant.")
def accounts_role(username: str, role: str, party: str | None) -> None:
    """Change an account's role (its sessions end; the change is signed on the ledger)."""
    from webapp.runtime import current_runtime, db_session

    app = _app()
    actor = _actor()
    with app.app_context():
        runtime = current_runtime()
        session = db_session()
        now = runtime.now()
        with write_transaction(session):
            service.change_role(
                session,
                username,
                Role(role),
                now=now,
                actor=actor,
                party=party,
                on_change=lambda user, old, new: record_role_change(
                    session,
                    runtime.ledger,
                    account=user.username,
                    role=new,
                    previous=old,
                    by=actor,
                    now=now,
                ),
            )
    click.echo(f"{username} is now {role}")


def _simple(action: str) -> click.Command:
    run = {
        "lock": service.lock_user,
        "unlock": service.unlock_user,
        "reset-totp": service.reset_totp,
    }[action]
    helps = {
        "lock": "Lock an account until it is unlocked; its sessions end.",
        "unlock": "Unlock an account and clear its back-off.",
        "reset-totp": "Forget an account's TOTP and recovery codes; it enrols again.",
    }

    @accounts.command(action, help=helps[action])
    @click.argument("username")
    def command(username: str) -> None:
        from webapp.runtime import current_runtime, db_session

        app = _app()
        with app.app_context():
            session = db_session()
            with write_transaction(session):
                run(session, username, now=current_runtime().now(), actor=_actor())
        click.echo(f"{username}: {action} done")

    return command


for _action in ("lock", "unlock", "reset-totp"):
    _simple(_action)


@accounts.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def accounts_list(as_json: bool) -> None:
    """List the accounts with their role, party, status and second factor."""
    from webapp.runtime import current_runtime, db_session

    app = _app()
    with app.app_context():
        now = current_runtime().now()
        rows = [
            {
                "username": u.username,
                "name": u.display_name,
                "role": u.role,
                "party": u.party,
                "status": _status(u, now),
                "totp": u.totp_confirmed_at is not None,
                "language": u.language,
            }
            for u in service.list_users(db_session())
        ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        totp = "totp" if row["totp"] else "no-totp"
        click.echo(
            f"{row['username']:24} {row['role']:14} {row['party'] or '-':16} "
            f"{row['status']:12} {totp}"
        )


@click.group()
def apikeys_group() -> None:
    """API keys for machines (and personal keys of accounts): create, rotate, revoke, list."""


@apikeys_group.command("create")
@click.option("--party", help="The party a machine's key acts for.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice([s.value for s in Scope]),
    help="An operation a machine's key may perform (repeatable).",
)
@click.option(
    "--user",
    "username",
    help="Make a personal key of this account instead: it acts as the account would "
    "signed in, with its current role (no --party, no --scope).",
)
@click.option("--name", required=True, help="What the key is for (e.g. 'till system').")
@click.option(
    "--expires", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Expiry date (UTC midnight)."
)
@click.option(
    "--rate",
    type=click.IntRange(1, apikeys.MAX_RATE_PER_MINUTE),
    default=apikeys.DEFAULT_RATE_PER_MINUTE,
    show_default=True,
    help="Requests a minute.",
)
def apikeys_create(
    party: str | None,
    scopes: tuple[str, ...],
    username: str | None,
    name: str,
    expires: datetime | None,
    rate: int,
) -> None:
    """Create a key and print it once: store it now, it cannot be shown again."""
    from webapp.runtime import current_runtime, db_session

    if username is not None and (party is not None or scopes):
        raise click.UsageError("a personal key (--user) takes no --party and no --scope")
    if username is None and (party is None or not scopes):
        raise click.UsageError("a machine's key needs --party and at least one --scope")
    app = _app()
    with app.app_context():
        session = db_session()
        expires_at = expires.replace(tzinfo=UTC) if expires else None
        with write_transaction(session):
            if username is not None:
                issued = apikeys.create_personal_key(
                    session,
                    name,
                    username,
                    now=current_runtime().now(),
                    actor=_actor(),
                    expires_at=expires_at,
                    rate_per_minute=rate,
                )
            else:
                issued = apikeys.create_key(
                    session,
                    name,
                    party or "",
                    list(scopes),
                    now=current_runtime().now(),
                    actor=_actor(),
                    expires_at=expires_at,
                    rate_per_minute=rate,
                )
    whose = f"personal key of {username}" if username else f"for {party}: {issued.key.scopes}"
    click.echo(f"key {issued.key.key_id} {whose}", err=True)
    click.echo(issued.token)


@apikeys_group.command("rotate")
@click.argument("key_id")
def apikeys_rotate(key_id: str) -> None:
    """Give a key a new secret and print it once; the old secret stops working."""
    from webapp.runtime import current_runtime, db_session

    app = _app()
    with app.app_context():
        session = db_session()
        with write_transaction(session):
            issued = apikeys.rotate_key(
                session, key_id, now=current_runtime().now(), actor=_actor()
            )
    click.echo(f"key {key_id} rotated", err=True)
    click.echo(issued.token)


@apikeys_group.command("revoke")
@click.argument("key_id")
def apikeys_revoke(key_id: str) -> None:
    """Revoke a key for good."""
    from webapp.runtime import current_runtime, db_session

    app = _app()
    with app.app_context():
        session = db_session()
        with write_transaction(session):
            apikeys.revoke_key(session, key_id, now=current_runtime().now(), actor=_actor())
    click.echo(f"key {key_id} revoked")


@apikeys_group.command("list")
@click.option("--party", help="Only this party's keys.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def apikeys_list(party: str | None, as_json: bool) -> None:
    """List keys (never their secrets): id, party, scopes, limits, expiry, last use."""
    from webapp.runtime import current_runtime, db_session

    app = _app()
    with app.app_context():
        now = current_runtime().now()
        rows: list[dict[str, Any]] = [
            {
                "key_id": k.key_id,
                "name": k.name,
                "party": k.party,
                "scopes": k.scopes.split(),
                "personal": k.user_id is not None,
                "rate_per_minute": k.rate_per_minute,
                "expires_at": k.expires_at.isoformat() if k.expires_at else None,
                "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                "status": "revoked"
                if k.revoked_at
                else ("expired" if k.expires_at and k.expires_at <= now else "active"),
            }
            for k in apikeys.list_keys(db_session(), party)
        ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        click.echo(
            f"{row['key_id']}  {row['party']:16} {row['status']:8} "
            f"{' '.join(row['scopes']):40} last used {row['last_used_at'] or 'never'}"
        )


apikeys_group.name = "apikeys"
