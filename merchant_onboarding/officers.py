"""Who acts on an application: an officer (with the reviewer and/or approver role), the
applicant, or the system.

The web app and the command line make the actor from a user account (a signed-in
session, a personal API key, or ``--as``), never from a request field, so four eyes
cannot be bypassed by claiming to be someone else.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from merchant_onboarding.errors import PermissionDeniedError

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
