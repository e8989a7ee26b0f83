"""Who acts on the officer APIs, and its two answers.

Onboarding, risk rules, alerts and cases share it. The acting officer (or applicant)
comes only from the credential, never from a request field:

- ``Authorization: Bearer <API key>``: a personal API key (``cardtrace apikeys create
  --user``), which acts exactly as its user's signed-in session would (below), with the
  user's role at the time of the request; a machine's key (bound to a party, not a user)
  is refused here with a 403;
- or a signed-in web session (its CSRF token in ``X-CSRFToken`` on unsafe methods,
  checked before the view runs): the user's role decides, per API, what it may read and
  what it may change (:data:`SESSION_ROLES`); a merchant acts as the applicant of its
  own applications only.

Never both: a request with a key and a signed-in session is refused. A missing or
unknown credential (any bearer token that is not an API key) is a 401 with a
``WWW-Authenticate`` challenge, a known one without the role a 403, another merchant's
application a 404.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, request, session
from sqlalchemy import select
from sqlalchemy.orm import Session

from merchant_onboarding.applications import get_application
from merchant_onboarding.errors import (
    ApplicationNotFoundError,
    AuthenticationError,
    PermissionDeniedError,
)
from merchant_onboarding.officers import Actor, ActorKind
from merchant_onboarding.officers import Role as OfficerRole
from webapp.accounts.api import authenticate_bearer_key
from webapp.accounts.apikeys import KEY_PREFIX
from webapp.accounts.errors import UnauthenticatedError
from webapp.accounts.models import AccountUser
from webapp.accounts.roles import Role
from webapp.accounts.web import SID, current_session, hit_limit
from webapp.cli_acting import AS_VARIABLE, acting_username
from webapp.errors import Problem, problem_response
from webapp.runtime import current_runtime, db_session

_READERS = frozenset({Role.REVIEWER, Role.APPROVER, Role.ANALYST, Role.AUDITOR})

# Per API blueprint: the staff roles that may read (GET) and that may change (any other
# method) through a signed-in session. The services then apply their own rules (a
# reviewer recommends, an approver decides, four eyes).
SESSION_ROLES: dict[str, tuple[frozenset[Role], frozenset[Role]]] = {
    "onboarding_api": (_READERS, frozenset({Role.REVIEWER, Role.APPROVER})),
    "analysis_api": (_READERS, frozenset({Role.ANALYST})),
    "cases_api": (frozenset({Role.ANALYST, Role.AUDITOR}), frozenset({Role.ANALYST})),
    "risk_api": (
        frozenset({Role.ANALYST, Role.APPROVER, Role.AUDITOR}),
        frozenset({Role.ANALYST, Role.APPROVER}),
    ),
}

_ONBOARDING_ROLES = {
    Role.REVIEWER: frozenset({OfficerRole.REVIEWER}),
    Role.APPROVER: frozenset({OfficerRole.APPROVER}),
}


def bearer_actor() -> Actor:
    """The actor the request's personal API key, or its signed-in session, stands for.

    Raises:
        AuthenticationError: neither a key nor a signed-in session, an unknown, revoked or
            expired key (or one whose account is disabled), or both a key and a session.
        PermissionDeniedError: a machine's key, or a role that may not use this API this
            way.
        ApplicationNotFoundError: a merchant asked for an application not its own.
    """
    return _user_actor(_credential_user())


def bearer_merchant() -> str:
    """The party of the merchant account acting (by session or personal key).

    Raises:
        AuthenticationError: as :func:`bearer_actor`.
        PermissionDeniedError: the account is staff, or a machine's key was sent.
    """
    user = _credential_user()
    if Role(user.role) is not Role.MERCHANT or not user.party:
        raise PermissionDeniedError("only a merchant account may apply, for its own party")
    return user.party


def _credential_user() -> AccountUser:
    """The account behind the request's one credential (found once a request: a view
    that asks twice counts once against the rate limits)."""
    if "officer_auth_user" not in g:
        g.officer_auth_user = _find_credential_user()
    user: AccountUser = g.officer_auth_user
    return user


def _find_credential_user() -> AccountUser:
    header = request.headers.get("Authorization", "")
    signed_in = isinstance(session.get(SID), str)
    if not header and signed_in:
        live = current_session()
        if live is None:
            raise AuthenticationError("the session has ended; sign in again")
        hit_limit(current_app.config["ACCOUNTS_API_SESSION_LIMIT"], "api-user", str(live.user.id))
        return live.user
    if header and signed_in:
        raise AuthenticationError("send either an API key or a signed-in session, not both")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("send 'Authorization: Bearer <API key>' or sign in")
    if not token.startswith(KEY_PREFIX):
        raise AuthenticationError(
            "unknown credential: send a personal API key ('Bearer ctk_...') or sign in"
        )
    try:
        key, user = authenticate_bearer_key(token)
    except UnauthenticatedError as e:
        raise AuthenticationError(e.message, code=e.code) from e
    if user is None:
        raise PermissionDeniedError(
            f"API key {key.key_id} is a machine's key; this API takes a personal API key "
            "or a signed-in session"
        )
    return user


def _user_actor(user: AccountUser) -> Actor:
    """What ``user`` may do on this API (see :data:`SESSION_ROLES`), as an actor."""
    role = Role(user.role)
    if role is Role.MERCHANT:
        return _applicant_of_own(user.party)
    readers, writers = SESSION_ROLES.get(request.blueprint or "", (frozenset(), frozenset()))
    allowed = readers if request.method in ("GET", "HEAD") else writers
    if role not in allowed:
        raise PermissionDeniedError(f"the {role.value} role may not do this through the API")
    return Actor(ActorKind.OFFICER, user.username, _ONBOARDING_ROLES.get(role, frozenset()))


def _applicant_of_own(party: str | None) -> Actor:
    """A merchant acts as the applicant of the application in the path, if it is its own."""
    application_id = (request.view_args or {}).get("application_id")
    if request.blueprint != "onboarding_api" or not isinstance(application_id, int):
        raise PermissionDeniedError("a merchant account may act only on its own applications")
    application = get_application(db_session(), application_id)
    if party is None or application.merchant != party:
        raise ApplicationNotFoundError(f"no application {application_id}")
    return Actor.applicant(application_id)


def bearer_officer(purpose: str) -> Actor:
    """The acting officer; ``purpose`` completes "only an officer may ...".

    Raises:
        AuthenticationError: no valid token.
        PermissionDeniedError: the token is not an officer's.
    """
    actor = bearer_actor()
    actor.require_officer(purpose)
    return actor


def init_officer_auth(bp: Blueprint, realm: str) -> None:
    """Answer the blueprint's authentication errors as 401 (with a challenge) and 403."""

    @bp.errorhandler(AuthenticationError)
    def _unauthenticated(error: AuthenticationError) -> Response:
        response = problem_response(Problem(401, error.code, error.title, error.message))
        response.headers["WWW-Authenticate"] = f'Bearer realm="{realm}"'
        return response

    @bp.errorhandler(PermissionDeniedError)
    def _forbidden(error: PermissionDeniedError) -> Response:
        return problem_response(Problem(403, error.code, error.title, error.message))


# --- the command line ---------------------------------------------------------------------


def cli_actor(db: Session, blueprint: str, purpose: str) -> Actor:
    """The account named by ``--as`` (:mod:`webapp.cli_acting`), as an officer that may
    change what ``blueprint``'s API changes; ``purpose`` completes "... may not ...".

    Raises:
        AuthenticationError: no account named, or none active by that name.
        PermissionDeniedError: the account's role may not do this.
    """
    username = acting_username()
    if not username:
        raise AuthenticationError(
            f"name the staff account this acts as: --as USERNAME (or {AS_VARIABLE})"
        )
    user = db.scalars(select(AccountUser).where(AccountUser.username == username)).first()
    now = current_runtime().now()
    if (
        user is None
        or user.disabled_at is not None
        or (user.locked_until is not None and user.locked_until > now)
    ):
        raise AuthenticationError(f"no active account {username!r}")
    role = Role(user.role)
    if role not in SESSION_ROLES[blueprint][1]:
        raise PermissionDeniedError(f"the {role.value} role may not {purpose}")
    return Actor(ActorKind.OFFICER, user.username, _ONBOARDING_ROLES.get(role, frozenset()))
