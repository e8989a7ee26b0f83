"""Who calls a JSON endpoint: an API key, or a signed-in browser with its CSRF token.

Other blueprints use these::

    @bp.post("/notices")
    @api_actor(Scope.PARTNERS_NOTICE)       # or @require_api_key(Scope.PARTNERS_NOTICE)
    def import_notices() -> Response:
        actor = current_api_actor()          # actor.party, actor.kind, actor.id
        ...

An API key travels as ``Authorization: Bearer ctk_...``; a browser sends its session
cookie and the page's CSRF token in ``X-CSRFToken``. A personal key (one bound to a user
account) acts exactly as its user signed in would: the user's current role gives its
scopes (:data:`ROLE_SCOPES`) and the user's party its party; its own scopes are none.
A request carrying both is refused (``mixed-credentials``): which of the two acts would
otherwise be a guess.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import current_app, g, request, session
from flask_wtf.csrf import validate_csrf
from sqlalchemy import update
from sqlalchemy.orm import Session
from wtforms import ValidationError as WTFormsValidationError

from webapp.accounts.apikeys import (
    KEY_PREFIX,
    LiveKey,
    authenticate_key,
    key_scopes,
    key_user,
)
from webapp.accounts.errors import (
    ApiKeyInvalidError,
    CsrfTokenError,
    MixedCredentialsError,
    ScopeError,
    UnauthenticatedError,
)
from webapp.accounts.models import AccountUser, ApiKey
from webapp.accounts.roles import ROLE_SCOPES, Role, Scope
from webapp.accounts.web import (
    SID,
    client_ip,
    current_session,
    hit_limit,
    now,
    read_aside,
    write_aside,
)

P = ParamSpec("P")
R = TypeVar("R")

API_KEY_SCHEME = "Bearer"
# last_used_at is written at most this often per key.
_LAST_USED_EVERY_S = 60


class ActorKind(StrEnum):
    API_KEY = "api-key"
    USER = "user"


@dataclass(frozen=True, slots=True)
class ApiActor:
    """Who acts on a JSON request.

    Attributes:
        kind: an API key or a signed-in user.
        id: the key id (``3f2a...``) or the username.
        party: the party the actor acts for: the key's party, a merchant's party; None for
            staff (who act for the platform).
        scopes: what it may do.
        role: the user's role (None for a key).
    """

    kind: ActorKind
    id: str
    party: str | None
    scopes: frozenset[Scope]
    role: Role | None = None

    def require(self, scope: Scope) -> None:
        """Raises ScopeError unless ``scope`` is among the actor's."""
        if scope not in self.scopes:
            raise ScopeError(f"this credential may not perform {scope.value}")


def api_key_token(header: str) -> str | None:
    """The API key an ``Authorization`` header carries: ``None`` for no header, ``""``
    for one that is not ``Bearer ctk_...``."""
    scheme, _, token = header.partition(" ")
    if not header:
        return None
    if scheme != API_KEY_SCHEME or not token.strip().startswith(KEY_PREFIX):
        return ""
    return token.strip()


def _api_key_token() -> str | None:
    return api_key_token(request.headers.get("Authorization", ""))


def _signed_in_cookie() -> bool:
    # Without the cookie there is no session to open (and no signature to check).
    if current_app.config["SESSION_COOKIE_NAME"] not in request.cookies:
        return False
    return isinstance(session.get(SID), str)


def authenticate_bearer_key(token: str) -> tuple[LiveKey, AccountUser | None]:
    """The live key ``token`` is and, for a personal key, its (enabled) account, both
    detached; counts the request against the key's rate limit and marks it used.

    Raises:
        UnauthenticatedError (or its ApiKey* subclasses): a bad, revoked or expired key,
            or a personal key whose account is disabled or locked.
        RateLimitedError: the key's (or, for failures, the address's) limit is reached.
    """
    at = now()

    def _read(aside: Session) -> tuple[LiveKey, AccountUser | None]:
        key = authenticate_key(aside, token, now=at)
        return key, key_user(aside, key, now=at)

    try:
        key, user = read_aside(_read)
    except UnauthenticatedError:
        # Guessing keys costs a request each, and only so many a minute from one address.
        hit_limit(current_app.config["ACCOUNTS_API_FAILURE_LIMIT"], "api-fail", client_ip())
        raise
    hit_limit(key_limit(key), "api-key", key.key_id)
    mark_used(key, at)
    return key, user


def key_limit(key: LiveKey) -> str:
    """The key's own rate limit, as :func:`hit_limit` counts it."""
    return f"{key.rate_per_minute}/minute"


def mark_used(key: LiveKey, at: datetime) -> bool:
    """Record when the key was last used, at most once a minute (a write of its own);
    whether it wrote."""
    if key.last_used_at is None or (at - key.last_used_at).total_seconds() >= _LAST_USED_EVERY_S:
        key_pk = key.id

        def _mark(aside: Session) -> None:
            aside.execute(update(ApiKey).where(ApiKey.id == key_pk).values(last_used_at=at))

        write_aside(_mark)
        return True
    return False


def _from_key(token: str, scope: Scope) -> ApiActor:
    key, user = authenticate_bearer_key(token)
    if user is None:
        actor = ApiActor(ActorKind.API_KEY, key.key_id, key.party, key_scopes(key))
    else:
        role = Role(user.role)
        actor = ApiActor(ActorKind.USER, user.username, user.party, ROLE_SCOPES[role], role)
    actor.require(scope)
    return actor


def _from_session(scope: Scope) -> ApiActor:
    live = current_session()
    if live is None:
        raise UnauthenticatedError("send an API key ('Authorization: Bearer ctk_...') or sign in")
    try:
        validate_csrf(request.headers.get("X-CSRFToken") or request.headers.get("X-CSRF-Token"))
    except WTFormsValidationError as e:
        raise CsrfTokenError("a signed-in request needs the page's X-CSRFToken header") from e
    hit_limit(current_app.config["ACCOUNTS_API_SESSION_LIMIT"], "api-user", str(live.user.id))
    role = Role(live.user.role)
    actor = ApiActor(ActorKind.USER, live.user.username, live.user.party, ROLE_SCOPES[role], role)
    actor.require(scope)
    return actor


def authenticate_api_key(scope: Scope, *, machines_only: bool = True) -> ApiActor:
    """The API key of this request, allowed ``scope``.

    Args:
        machines_only: refuse a personal key, as a signed-in session is refused (a
            personal key acts as its user would signed in).

    Raises:
        UnauthenticatedError (or its ApiKey* subclasses): no key, or a bad one.
        MixedCredentialsError: a signed-in session cookie came along.
        ScopeError: the key may not perform ``scope``, or is a personal key where only a
            machine's is taken.
        RateLimitedError: the key's (or the address's) limit is reached.
    """
    token = _api_key_token()
    if token is None:
        raise UnauthenticatedError("send 'Authorization: Bearer ctk_...' with an API key")
    if _signed_in_cookie():
        raise MixedCredentialsError("send either an API key or a signed-in session, not both")
    if not token:
        raise ApiKeyInvalidError("the API key is malformed or unknown")
    actor = _from_key(token, scope)
    if machines_only and actor.kind is ActorKind.USER:
        raise ScopeError("a personal API key acts as its user; this takes a machine's key")
    g.api_actor = actor
    return actor


def authenticate_api_actor(scope: Scope) -> ApiActor:
    """An API key, or else a signed-in session with a valid CSRF header; never both.

    Raises:
        as :func:`authenticate_api_key`, and CsrfTokenError for a session without its
        token.
    """
    if request.headers.get("Authorization"):
        return authenticate_api_key(scope, machines_only=False)
    actor = _from_session(scope)
    g.api_actor = actor
    return actor


def current_api_actor() -> ApiActor:
    """The actor a :func:`require_api_key` or :func:`api_actor` view was called for."""
    actor: ApiActor = g.api_actor
    return actor


def require_api_key(scope: Scope) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a JSON view: only a machine's API key allowed ``scope`` gets in."""

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            authenticate_api_key(scope)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def api_actor(scope: Scope) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a JSON view: an API key or a signed-in session (with CSRF), never both."""

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            authenticate_api_actor(scope)
            return view(*args, **kwargs)

        return wrapper

    return decorate
