"""Verify before sale, answered in front of Flask's request machinery.

``POST /api/v1/codes/verify`` runs before every sale, thousands of times a second, almost
always in one shape: the sale system's API key, one code, no sale context. That shape is
answered here, in a WSGI layer in front of the Flask app, with the same steps the Flask
view takes, in the same functions: the key read (revoked, expired and unknown keys
refused), its scope and party, the body validated against the same model, the key's
rate limit counted, its last use recorded, the verdict with its custody and proofs, the
same JSON and the same headers. What it leaves out is the general machinery every Flask
request pays for (request and session objects, URL routing, before- and after-request
hooks, a response object), which costs as much as the verify itself.

Everything else goes to the Flask app untouched (its body handed on as it came): other
paths and methods, a request with any cookie (a signed-in browser, or mixed
credentials), a personal API key, a sale context (the risk step), a product this process
has not seen yet, and every request that fails a check, so that each error answer has
one source, the Flask view. A check that fails here has written nothing and counted
nothing, but for a request over the key's limit, which both count. Only apps that read
through their own read engine use it (production, and tests that build the app on its
own engines); ``VERIFY_FAST_PATH = False`` in the app's config turns it off. On
PostgreSQL the key's row comes from :mod:`webapp.accounts.key_cache` while the process
listens for key changes.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pydantic
from flask import current_app
from werkzeug.http import parse_options_header

from provenance.errors import CardtraceError
from webapp.accounts.api import api_key_token, key_limit, mark_used
from webapp.accounts.apikeys import authenticate_key, key_scopes
from webapp.accounts.roles import Scope
from webapp.accounts.web import hit_limit, security_headers
from webapp.api_codes import (
    SaleVerify,
    VerifyRequest,
    code_query,
    codes_state,
    may_verify_for,
    read_verdicts,
)
from webapp.runtime import current_runtime

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from flask import Flask

log = logging.getLogger(__name__)

VERIFY_PATH = "/api/v1/codes/verify"


class VerifyFastPath:
    """WSGI middleware: answers the plain verify request, hands every other to ``wrapped``.

    ``served`` and ``handed_on`` count the verify requests answered here and those given
    to the Flask app.
    """

    def __init__(self, app: Flask, wrapped: WSGIApplication) -> None:
        self.app = app
        self.wrapped = wrapped
        self.served = 0
        self.handed_on = 0
        self._headers: list[tuple[str, str]] | None = None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if (
            environ.get("PATH_INFO") != VERIFY_PATH
            or environ.get("REQUEST_METHOD") != "POST"
            or not self.app.config.get("VERIFY_FAST_PATH", True)
        ):
            return self.wrapped(environ, start_response)
        answer = self._answer(environ)
        if answer is None:
            self.handed_on += 1
            return self.wrapped(environ, start_response)
        self.served += 1
        if self._headers is None:
            self._headers = list(security_headers(self.app).items())
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(answer))),
                *self._headers,
            ],
        )
        return [answer]

    def _answer(self, environ: WSGIEnvironment) -> bytes | None:
        """The answer's bytes, or ``None`` for the Flask app to answer (the body it was
        sent is put back in ``environ`` for it)."""
        token = api_key_token(environ.get("HTTP_AUTHORIZATION", ""))
        if not token or "HTTP_COOKIE" in environ:
            return None
        mimetype, _ = parse_options_header(environ.get("CONTENT_TYPE", ""))
        if mimetype != "application/json" or environ.get("HTTP_TRANSFER_ENCODING"):
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return None
        limit = self.app.config.get("MAX_CONTENT_LENGTH")
        if length <= 0 or (limit is not None and length > limit):
            return None
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)  # the Flask app reads it again if need be
        if len(body) != length:
            return None
        try:
            with self.app.app_context():
                return _verify_plain(token, body)
        except (CardtraceError, pydantic.ValidationError):
            # A bad key, body or code, or the key's limit reached: the Flask view answers
            # it, with its problem document (the limit is counted there again).
            return None
        except Exception as e:
            # Whatever went wrong (a dropped connection, ...) is the Flask view's to meet
            # and report; nothing here wrote anything. Only the error's kind is logged: a
            # message could quote what the request held.
            log.warning("verify handed to the app after an error (%s)", type(e).__name__)
            return None


def _verify_plain(token: str, body: bytes) -> bytes | None:
    runtime = current_runtime()
    reader = runtime.reader()
    if reader is None:
        return None
    at = runtime.now()
    cache = runtime.key_cache()
    if cache is not None:
        key = cache.check(reader, token, now=at)
    else:
        with reader.connect() as connection:
            key = authenticate_key(connection, token, now=at)
    if key.user_id is not None or Scope.CODES_VERIFY not in key_scopes(key):
        return None  # a personal key acts as its user; a missing scope is refused there
    request = VerifyRequest.model_validate_json(body)
    if request.context is not None or not may_verify_for(key.party, request.merchant):
        return None
    state = codes_state()
    code = request.code
    if code is not None and (code.issuer, code.product) not in state.products:
        return None  # the view looks the product up (and refuses an unknown one)
    query = code_query(request, runtime.secrets.fingerprint_key, state.products)
    hit_limit(key_limit(key), "api-key", key.key_id)
    if mark_used(key, at) and cache is not None:
        cache.touch(key.key_id, at)
    result = read_verdicts([query], request.merchant)
    document = SaleVerify(result, (None,)).to_json(single=True)
    return f"{current_app.json.dumps(document)}\n".encode()
