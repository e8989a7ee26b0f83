"""Personal API keys for the officer-API tests: an account of a role, and its key."""

from __future__ import annotations

from datetime import datetime

import pyotp
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.ledger_support import NOW
from webapp.accounts.apikeys import MAX_RATE_PER_MINUTE, create_personal_key
from webapp.accounts.models import AccountUser
from webapp.accounts.roles import Role
from webapp.accounts.service import (
    Stage,
    begin_sign_in,
    change_role,
    confirm_enrolment,
    create_user,
    resolve_session,
    start_enrolment,
)
from webapp.accounts.web import state
from webapp.runtime import current_runtime

PASSWORD = "correct horse battery staple"


def personal_key(
    app: Flask, session: Session, username: str, role: Role, party: str | None = None
) -> str:
    """A personal API key of the account ``username`` (created with ``role`` and, for a
    merchant, ``party``, unless it exists)."""
    with app.app_context():
        current_runtime().ledger.ensure_genesis(session, name="test", now=NOW)
        exists = session.scalars(
            select(AccountUser.id).where(AccountUser.username == username)
        ).first()
        if exists is None:
            create_user(session, username, username.title(), role, PASSWORD, now=NOW, party=party)
            if role.is_staff:
                enrol_second_factor(session, username)
        issued = create_personal_key(
            session, "tests", username, now=NOW, actor="tests", rate_per_minute=MAX_RATE_PER_MINUTE
        )
        session.flush()
    return issued.token


def enrol_second_factor(session: Session, username: str, at: datetime = NOW) -> str:
    """Enrol the account's TOTP as its first sign-in does (password, then a code from the
    new secret); returns the secret. Needs an app context."""
    keys = state().keys()
    issued = begin_sign_in(session, username, PASSWORD, keys, now=at, ip=None)
    pending = resolve_session(session, issued.token, now=at, stages=(Stage.ENROL,))
    assert pending is not None, "a staff account without TOTP signs in to enrolment"
    secret = start_enrolment(session, pending.user, keys).secret
    confirm_enrolment(session, pending, pyotp.TOTP(secret).at(at), keys, now=at, ip=None)
    session.flush()
    return secret


def staff_keys(app: Flask, session: Session) -> dict[str, str]:
    """Personal keys of the usual officers: two reviewers and an approver (four eyes need
    two different people), an analyst, a second analyst and an auditor."""
    return {
        username: personal_key(app, session, username, role)
        for username, role in (
            ("li.reviewer", Role.REVIEWER),
            ("zhao.reviewer", Role.REVIEWER),
            ("wang.approver", Role.APPROVER),
            ("sun.analyst", Role.ANALYST),
            ("zhou.analyst", Role.ANALYST),
            ("qian.auditor", Role.AUDITOR),
        )
    }


def onboarding_officer_keys(app: Flask, session: Session) -> dict[str, str]:
    """Personal keys of two reviewers and an approver. ``chen.officer`` starts as a
    reviewer and may be made an approver (:func:`promote`): four eyes are one person's."""
    return {
        username: personal_key(app, session, username, role)
        for username, role in (
            ("li.reviewer", Role.REVIEWER),
            ("wang.approver", Role.APPROVER),
            ("chen.officer", Role.REVIEWER),
        )
    }


def promote(session: Session, username: str = "chen.officer") -> None:
    """Make a reviewer an approver; the role counts from the next request."""
    change_role(session, username, Role.APPROVER, now=NOW, actor="tests")
    session.flush()
