"""Web accounts: users and roles, sign-in with a second factor, server-side sessions,
CSRF, security headers, rate limits and API keys.

``init_app`` installs it; JSON endpoints elsewhere use :func:`require_api_key` or
:func:`api_actor` (see :mod:`webapp.accounts.api`).
"""

from __future__ import annotations

from flask import Flask, Response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.middleware.proxy_fix import ProxyFix

from webapp.accounts.api import (
    ActorKind,
    ApiActor,
    api_actor,
    authenticate_api_actor,
    authenticate_api_key,
    current_api_actor,
    require_api_key,
)
from webapp.accounts.errors import AccountsError, CsrfTokenError
from webapp.accounts.i18n import init_i18n
from webapp.accounts.roles import Role, Scope
from webapp.accounts.views import init_views
from webapp.accounts.web import init_web, state
from webapp.errors import Problem, problem_response

__all__ = [
    "ActorKind",
    "ApiActor",
    "Role",
    "Scope",
    "api_actor",
    "authenticate_api_actor",
    "authenticate_api_key",
    "current_api_actor",
    "init_app",
    "require_api_key",
]

# The blueprints that serve HTML forms: their errors render as pages, and every unsafe
# request to them is CSRF-checked.
PAGE_BLUEPRINTS = {"accounts", "accounts_admin"}


def _wants_page() -> bool:
    return request.blueprint in state().form_blueprints


def _render_error(status: int, code: str, message: str) -> Response:
    body = render_template("accounts/error.html", status=status, code=code, message=message)
    return Response(body, status=status, mimetype="text/html")


def _on_accounts_error(error: AccountsError) -> Response:
    headers: dict[str, str] = {}
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if _wants_page():
        response = _render_error(error.status, error.code, error.message)
        response.headers.update(headers)
        return response
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="cardtrace"'
    problem = Problem(
        error.status, error.code, error.title, error.message, getattr(error, "field", None)
    )
    return problem_response(problem, headers)


def _on_csrf_error(error: CSRFError) -> Response:
    return _on_accounts_error(CsrfTokenError("the form's CSRF token is missing or wrong"))


def init_app(app: Flask) -> None:
    """Install accounts on the app: call after the app's settings are in ``app.config``."""
    hops = app.extensions["cardtrace"].settings.proxy_hops
    if hops:
        # Behind a reverse proxy the peer is the proxy: read the client's address and
        # scheme from the headers the trusted proxies set (and only those hops).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    init_web(app, PAGE_BLUEPRINTS)
    init_i18n(app)
    init_views(app)
    app.register_error_handler(AccountsError, _on_accounts_error)
    app.register_error_handler(CSRFError, _on_csrf_error)
