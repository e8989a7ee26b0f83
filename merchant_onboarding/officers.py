"""Who acts: officers with roles and API tokens, applicants with their application's token.

A token is 32 random bytes (URL-safe base64 with a prefix saying whose it is); only its
SHA-256 is stored, so a copy of the database lets no one act. Identity comes only from
the token: no request field can name the acting officer, so four eyes cannot be
bypassed by claiming to be someone else.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from merchant_onboarding.errors import (
    AuthenticationError,
    InvalidApplicationError,
    PermissionDeniedError,
)
from merchant_onboarding.models import Application, Officer
from provenance.errors import ConflictError

OFFICER_TOKEN_PREFIX = "cto_"  # noqa: S105 (a prefix, not a secret)
APPLICANT_TOKEN_PREFIX = "cta_"  # noqa: S105
OFFICER_ID_RE = re.compile(r"[a-z][a-z0-9._-]{1,63}")
SYSTEM = "system"
APPLICANT = "applicant"


class Role(StrEnum):
    REVIEWER = "reviewer"
    APPROVER = "approver"


class ActorKind(StrEnum):
    OFFICER = "officer"
    APPLICANT = "applicant"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting. ``id`` is the officer id, ``applicant`` or ``system``."""

    kind: ActorKind
    id: str
    roles: frozenset[Role] = frozenset()
    application_id: int | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(ActorKind.SYSTEM, SYSTEM)

    @classmethod
    def applicant(cls, application_id: int) -> Actor:
        return cls(ActorKind.APPLICANT, APPLICANT, application_id=application_id)

    def require_role(self, role: Role, what: str) -> None:
        """Raises PermissionDeniedError unless an officer with ``role`` is acting."""
        if self.kind is not ActorKind.OFFICER or role not in self.roles:
            raise PermissionDeniedError(f"only an officer with the {role.value} role may {what}")

    def require_officer(self, what: str) -> None:
        if self.kind is not ActorKind.OFFICER:
            raise PermissionDeniedError(f"only an officer may {what}")

    def require_applicant_of(self, application_id: int, what: str) -> None:
        if self.kind is not ActorKind.APPLICANT or self.application_id != application_id:
            raise PermissionDeniedError(
                f"only the applicant of application {application_id} may {what}"
            )


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_token(prefix: str) -> tuple[str, bytes]:
    """A fresh token and the hash to store."""
    token = prefix + secrets.token_urlsafe(32)
    return token, token_hash(token)


@dataclass(frozen=True, slots=True)
class NewOfficer:
    officer: Officer
    token: str


def add_officer(
    session: Session, officer_id: str, name: str, roles: set[Role], *, now: datetime
) -> NewOfficer:
    """Register an officer; the token is returned once and never stored.

    Raises:
        InvalidApplicationError: the id, name or roles are malformed.
        ConflictError: the id is taken.
    """
    if not OFFICER_ID_RE.fullmatch(officer_id) or officer_id in (SYSTEM, APPLICANT):
        raise InvalidApplicationError(
            "officer id must be 2-64 lower-case letters, digits, '.', '_' or '-', starting "
            "with a letter, and not 'system' or 'applicant'",
            field="id",
        )
    if not name.strip() or len(name) > 200:
        raise InvalidApplicationError("officer name must be 1-200 characters", field="name")
    if not roles:
        raise InvalidApplicationError("an officer needs at least one role", field="roles")
    if session.get(Officer, officer_id) is not None:
        raise ConflictError(f"officer {officer_id!r} already exists", code="officer-exists")
    token, hashed = new_token(OFFICER_TOKEN_PREFIX)
    officer = Officer(
        id=officer_id,
        name=name.strip(),
        roles=",".join(sorted(r.value for r in roles)),
        token_hash=hashed,
        created_at=now,
        disabled_at=None,
    )
    session.add(officer)
    session.flush()
    return NewOfficer(officer, token)


def rotate_token(session: Session, officer_id: str) -> str:
    """Give an officer a new token; the old one stops working."""
    officer = session.get(Officer, officer_id)
    if officer is None:
        raise AuthenticationError(f"no officer {officer_id!r}")
    token, officer.token_hash = new_token(OFFICER_TOKEN_PREFIX)
    session.flush()
    return token


def disable_officer(session: Session, officer_id: str, *, now: datetime) -> None:
    officer = session.get(Officer, officer_id)
    if officer is None:
        raise AuthenticationError(f"no officer {officer_id!r}")
    officer.disabled_at = now
    session.flush()


def roles_of(officer: Officer) -> frozenset[Role]:
    return frozenset(Role(r) for r in officer.roles.split(",") if r)


def authenticate(session: Session, token: str | None) -> Actor:
    """The actor a bearer token stands for.

    Raises:
        AuthenticationError: no token, or one that matches no active officer or application.
    """
    if not token:
        raise AuthenticationError("send 'Authorization: Bearer <token>'")
    hashed = token_hash(token)
    if token.startswith(OFFICER_TOKEN_PREFIX):
        officer = session.scalars(select(Officer).where(Officer.token_hash == hashed)).first()
        if officer is not None and officer.disabled_at is None:
            return Actor(ActorKind.OFFICER, officer.id, roles_of(officer))
    elif token.startswith(APPLICANT_TOKEN_PREFIX):
        application_id = session.scalars(
            select(Application.id).where(Application.applicant_token_hash == hashed)
        ).first()
        if application_id is not None:
            return Actor.applicant(application_id)
    raise AuthenticationError("the token is not valid")
