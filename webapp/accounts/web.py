"""The accounts package's Flask glue: who is signed in, CSRF, rate limits, security
headers and the language of each request."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import limits
from flask import Flask, Response, current_app, g, redirect, request, session, url_for
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as BaseResponse

from provenance.db import write_transaction
from webapp.accounts.errors import ForbiddenError, RateLimitedError
from webapp.accounts.keys import AccountKeys
from webapp.accounts.models import AccountSession
from webapp.accounts.roles import Role
from webapp.accounts.service import (
    IssuedSession,
    LiveSession,
    Stage,
    resolve_session,
    touch_session,
)
from webapp.config import load_personal_data_key
from webapp.runtime import current_runtime, db_session

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

# Keys of the Flask (cookie) session. "sid" is a signed-in session's token; "pending" a
# session waiting for its second factor or enrolment.
SID = "sid"
PENDING = "pending"
LANG = "lang"

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Content-Security-Policy: everything from this origin only, no inline script or style,
# no plugins, no framing, forms post only here.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}
HSTS = "max-age=31536000; includeSubDomains"

DEFAULT_LIMITS = {
    # Sign-in form posts (password, second factor, enrolment) from one address.
    "ACCOUNTS_SIGN_IN_LIMIT": "10/minute",
    # Requests with a bad API key from one address.
    "ACCOUNTS_API_FAILURE_LIMIT": "30/minute",
    # JSON API requests by one signed-in user (API keys carry their own limit).
    "ACCOUNTS_API_SESSION_LIMIT": "600/minute",
}


@dataclass
class AccountsState:
    limiter: Limiter
    csrf: CSRFProtect
    # Blueprints whose unsafe requests are forms: CSRF is checked even without a cookie.
    form_blueprints: set[str]
    _keys: AccountKeys | None = None

    def keys(self) -> AccountKeys:
        """Raises ConfigError if the personal-data key is missing."""
        if self._keys is None:
            self._keys = AccountKeys(load_personal_data_key(current_runtime().settings))
        return self._keys


def state() -> AccountsState:
    value: AccountsState = current_app.extensions["cardtrace.accounts"]
    return value


def client_ip() -> str:
    return get_remote_address() or "unknown"


def now() -> Any:
    return current_runtime().now()


# --- rate limits --------------------------------------------------------------------------


_parse_limit = functools.lru_cache(maxsize=256)(limits.parse)


def hit_limit(limit: str, *identifiers: str) -> None:
    """Count one request against ``limit`` (e.g. ``"10/minute"``) for these identifiers.

    Raises:
        RateLimitedError: the limit is reached; carries the seconds until it resets.
    """
    item = _parse_limit(limit)
    strategy = state().limiter.limiter
    prefix = current_app.config.get("RATELIMIT_KEY_PREFIX") or "cardtrace"
    if not strategy.hit(item, prefix, *identifiers):
        stats = strategy.get_window_stats(item, prefix, *identifiers)
        retry = max(1, int(stats.reset_time - time.time()) + 1)
        raise RateLimitedError("too many requests; slow down and retry later", retry_after=retry)


# --- sessions -------------------------------------------------------------------------------


def write_aside(change: Callable[[Session], None]) -> None:
    """Commit a small bookkeeping write (last used, last seen) in a session of its own, so
    a read-only request need not commit, and a failing one does not lose it."""
    aside = current_runtime().make_session()
    try:
        with write_transaction(aside):
            change(aside)
    finally:
        aside.close()


def read_aside(read: Callable[[Session], T]) -> T:
    """Run a read in a session of its own and return what it loaded, detached.

    Authentication reads this way, before the request's own transaction begins: what it
    finds, and the bookkeeping it writes, do not depend on how the request ends. On
    PostgreSQL it reads through the app's read engine (autocommit, no ping: one round
    trip per statement).
    """
    runtime = current_runtime()
    reader = runtime.reader()
    if reader is None:
        return _read_in(runtime.make_session(), read)
    try:
        return _read_in(Session(reader), read)
    except DBAPIError as e:
        if not e.connection_invalidated:
            raise
    # The server dropped a pooled connection (a restart, a failover): the pool has been
    # discarded, and a read changes nothing, so asking again is safe.
    return _read_in(Session(reader), read)


def _read_in(aside: Session, read: Callable[[Session], T]) -> T:
    try:
        value = read(aside)
        aside.expunge_all()
        return value
    finally:
        aside.close()


def current_session() -> LiveSession | None:
    """The signed-in (fully authenticated) session of this request, if any."""
    if "accounts_live" not in g:
        token = session.get(SID)
        live = None
        if isinstance(token, str):
            at = now()
            live = read_aside(lambda aside: resolve_session(aside, token, now=at))
            if live is not None and touch_session(live, now=at):
                record_id = live.record.id

                def _touch(aside: Session) -> None:
                    aside.execute(
                        update(AccountSession)
                        .where(AccountSession.id == record_id)
                        .values(last_seen_at=at)
                    )

                write_aside(_touch)
        g.accounts_live = live
    value: LiveSession | None = g.accounts_live
    return value


def pending_session() -> LiveSession | None:
    token = session.get(PENDING)
    if not isinstance(token, str):
        return None
    return resolve_session(db_session(), token, now=now(), stages=(Stage.PASSWORD, Stage.ENROL))


def start_cookie_session(issued: IssuedSession) -> None:
    """Put a new session's token in a fresh cookie: everything the cookie held before
    (including its CSRF token) is dropped, so a planted cookie gains nothing."""
    lang = session.get(LANG)
    session.clear()
    if lang:
        session[LANG] = lang
    key = SID if issued.record.stage == Stage.FULL else PENDING
    session[key] = issued.token
    session.permanent = False
    g.pop("accounts_live", None)


def end_cookie_session() -> None:
    lang = session.get(LANG)
    session.clear()
    if lang:
        session[LANG] = lang
    g.pop("accounts_live", None)


def login_required(*roles: Role) -> Callable[[Callable[P, R]], Callable[P, R | BaseResponse]]:
    """Pages: redirect to sign-in when nobody is signed in; 403 for another role."""

    def decorate(view: Callable[P, R]) -> Callable[P, R | BaseResponse]:
        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | BaseResponse:
            live = current_session()
            if live is None:
                return redirect(url_for("accounts.sign_in", next=request.path))
            if roles and Role(live.user.role) not in roles:
                raise ForbiddenError("your role may not open this page")
            return view(*args, **kwargs)

        return wrapper

    return decorate


# --- CSRF and headers --------------------------------------------------------------------


def _csrf_guard() -> None:
    """Check the CSRF token of every unsafe request that a browser could have sent with
    our cookie: form posts to the pages, and anything carrying the session cookie without
    a header credential (an API key or a bearer token is not sent by a browser on its own,
    so those requests are not forgeable this way)."""
    if request.method not in UNSAFE_METHODS:
        return
    if request.blueprint in state().form_blueprints:
        state().csrf.protect()
        return
    if request.headers.get("Authorization"):
        return
    if current_app.config["SESSION_COOKIE_NAME"] in request.cookies:
        state().csrf.protect()


def security_headers(app: Flask) -> dict[str, str]:
    """The headers every answer of ``app`` carries (and, with a cookie or a form page,
    ``Cache-Control: no-store``)."""
    headers = dict(SECURITY_HEADERS)
    if app.config.get("SESSION_COOKIE_SECURE"):
        headers["Strict-Transport-Security"] = HSTS
    return headers


def _security_headers(response: Response) -> Response:
    for name, value in security_headers(current_app).items():
        response.headers.setdefault(name, value)
    if "Set-Cookie" in response.headers or request.blueprint in state().form_blueprints:
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def init_web(app: Flask, form_blueprints: set[str]) -> AccountsState:
    """Install CSRF, the rate limiter, the security headers and the session check."""
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", False)
    for name, value in DEFAULT_LIMITS.items():
        app.config.setdefault(name, value)
    csrf = CSRFProtect(app)
    limiter = Limiter(get_remote_address, app=app, key_prefix="cardtrace")
    accounts = AccountsState(limiter=limiter, csrf=csrf, form_blueprints=set(form_blueprints))
    app.extensions["cardtrace.accounts"] = accounts
    app.before_request(_csrf_guard)
    app.after_request(_security_headers)
    return accounts
