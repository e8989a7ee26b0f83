"""Who acts on the officer APIs: ``Authorization: Bearer <token>``, and its two answers.

Onboarding, risk rules and alerts share it: the acting officer (or applicant) comes only
from the token, never from a request field; a missing or unknown token is a 401 with a
``WWW-Authenticate`` challenge, a known one without the role a 403.
"""

from __future__ import annotations

import os
import sys

import click
from flask import Blueprint, Response, request

from merchant_onboarding.errors import AuthenticationError, PermissionDeniedError
from merchant_onboarding.officers import Actor, authenticate
from webapp.errors import Problem, problem_response
from webapp.runtime import db_session


def bearer_actor() -> Actor:
    """The actor the request's bearer token belongs to.

    Raises:
        AuthenticationError: no bearer token, or one nobody holds.
    """
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("send 'Authorization: Bearer <token>'")
    return authenticate(db_session(), token.strip())


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


TOKEN_VARIABLE = "CARDTRACE_OFFICER_TOKEN"  # noqa: S105 (the variable's name)


def cli_token() -> str:
    """The officer's token for a command: from the environment, a pipe, or a hidden prompt
    (never from a command-line argument, where other users could read it)."""
    token = os.environ.get(TOKEN_VARIABLE)
    if token:
        return token
    if not sys.stdin.isatty():
        return sys.stdin.readline().strip()
    value: str = click.prompt("Officer token", hide_input=True)
    return value
