# ruff: noqa: F811 (pytest fixtures imported from the support module)
"""Pages: security headers on every response, stored XSS escaped, every template string
translated, the language switcher and each user's language."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient

from tests.test_accounts_support import (  # noqa: F401 (fixtures)
    PASSWORD,
    SHOP,
    Accounts,
    accounts,
    csrf_token,
    enrol,
    sign_in_as,
    web,
)
from webapp.accounts.apikeys import create_key
from webapp.accounts.roles import Role
from webapp.accounts.service import create_user

WEBAPP = Path(__file__).resolve().parent.parent / "webapp"
TEMPLATES = WEBAPP / "templates"
CATALOG = WEBAPP / "translations" / "zh_Hans_CN" / "LC_MESSAGES"

# --- security headers -------------------------------------------------------------------

EXPECTED_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def assert_security_headers(response: object) -> None:
    headers = response.headers  # type: ignore[attr-defined]
    for name, value in EXPECTED_HEADERS.items():
        assert headers[name] == value
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
    assert "Permissions-Policy" in headers
    assert headers["Strict-Transport-Security"].startswith("max-age=")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/sign-in"),
        ("GET", "/"),
        ("GET", "/static/cardtrace.css"),
        ("GET", "/no-such-page"),
        ("GET", "/api/v1/ledger/checkpoint"),
        ("POST", "/api/v1/onboarding/applications"),
        ("POST", "/sign-in"),
        ("POST", "/test/verify"),
    ],
)
def test_every_response_carries_the_security_headers(
    accounts: Accounts, web: FlaskClient, method: str, path: str
) -> None:
    assert_security_headers(web.open(path, method=method))


def test_signed_in_pages_carry_the_security_headers(accounts: Accounts, web: FlaskClient) -> None:
    accounts.create("root.admin", Role.ADMINISTRATOR)
    enrol(web, "root.admin", accounts.clock())
    for path in ("/", "/admin/accounts", "/admin/api-keys"):
        response = web.get(path)
        assert response.status_code == 200
        assert_security_headers(response)
        assert response.headers["Cache-Control"] == "no-store"


def test_no_hsts_when_cookies_are_not_secure(app: Flask) -> None:
    app.config["SESSION_COOKIE_SECURE"] = False
    response = app.test_client().get("/sign-in")
    assert "Strict-Transport-Security" not in response.headers
    assert "Secure" not in response.headers["Set-Cookie"]


def test_the_pages_hold_no_inline_script_or_style(accounts: Accounts, web: FlaskClient) -> None:
    accounts.create("root.admin", Role.ADMINISTRATOR)
    enrol(web, "root.admin", accounts.clock())
    for path in ("/", "/admin/accounts", "/admin/api-keys", "/sign-in"):
        page = web.get(path).get_data(as_text=True)
        assert "<script" not in page and " style=" not in page
        assert not re.search(r"\son[a-z]+=", page)


# --- stored XSS ----------------------------------------------------------------------------

XSS = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def test_free_text_is_escaped_wherever_it_is_shown(accounts: Accounts, web: FlaskClient) -> None:
    create_user(
        accounts.session,
        "root.admin",
        XSS,
        Role.ADMINISTRATOR,
        PASSWORD,
        now=accounts.clock(),
    )
    create_user(
        accounts.session,
        "shop.owner",
        XSS,
        Role.MERCHANT,
        PASSWORD,
        now=accounts.clock(),
        party=SHOP,
    )
    create_key(accounts.session, XSS, SHOP, "codes:verify", now=accounts.clock(), actor="t")
    enrol(web, "root.admin", accounts.clock())
    for path in ("/", "/admin/accounts", "/admin/api-keys"):
        page = web.get(path).get_data(as_text=True)
        assert "<script>alert(1)" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_returned_sign_in_form_escapes_what_was_typed(
    accounts: Accounts, web: FlaskClient
) -> None:
    token = csrf_token(web)
    page = web.post(
        "/sign-in",
        data={"csrf_token": token, "username": '"><script>x()</script>', "password": "p"},
    ).get_data(as_text=True)
    assert "<script>x()" not in page


def test_next_cannot_send_a_signed_in_user_elsewhere(accounts: Accounts, web: FlaskClient) -> None:
    accounts.create("shop.owner", Role.MERCHANT, party=SHOP)
    token = csrf_token(web)
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = web.post(
            "/sign-in",
            data={
                "csrf_token": token,
                "username": "shop.owner",
                "password": "correct horse battery staple",
                "next": target,
            },
        )
        assert response.headers["Location"] == "/"
        web.post("/sign-out", data={"csrf_token": csrf_token(web, "/")})
        token = csrf_token(web)


# --- translations --------------------------------------------------------------------------

# Literal text a template may hold without translation: the product's name.
UNTRANSLATED_OK = {"cardtrace"}
_TAG = re.compile(r"<[^>]*>")
_ATTRIBUTE_TEXT = re.compile(r'\b(?:title|alt|placeholder|aria-label)="([^"{]*[^\W\d_][^"{]*)"')


def _literal_text(template: str, env: object) -> list[str]:
    """The words a template would show that are not inside an expression or a tag."""
    source = (TEMPLATES / template).read_text(encoding="utf-8")
    # Template data as written, each Jinja construct replaced by a NUL.
    text = "".join(
        value if kind == "data" else "\x00"
        for _line, kind, value in env.lex(source)  # type: ignore[attr-defined]
    )
    found: list[str] = _ATTRIBUTE_TEXT.findall(text)
    text = _TAG.sub(" ", text)
    text = re.sub(r"&[a-z]+;|&#\d+;", " ", text)
    found += [w for w in re.findall(r"[^\W\d_]+", text) if w not in UNTRANSLATED_OK]
    return found


def _templates() -> list[str]:
    return sorted(str(p.relative_to(TEMPLATES)) for p in TEMPLATES.rglob("*.html"))


@pytest.mark.parametrize("template", _templates())
def test_templates_hold_no_untranslated_text(app: Flask, template: str) -> None:
    assert _literal_text(template, app.jinja_env) == []


def _msgids() -> set[str]:
    ids: set[str] = set()
    method_map = [
        ("webapp/accounts/**.py", "python"),
        ("webapp/pages/**.py", "python"),
        ("webapp/templates/**.html", "jinja2"),
    ]
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(WEBAPP.parent),
        method_map,
        keywords={"_": None, "_l": None, "gettext": None, "lazy_gettext": None, "ngettext": (1, 2)},
    ):
        ids.add(message if isinstance(message, str) else message[0])
    return ids


def test_every_message_has_a_chinese_translation() -> None:
    with open(CATALOG / "messages.po", "rb") as f:
        catalog = read_po(f)
    translated = {
        m.id if isinstance(m.id, str) else m.id[0]  # a plural message by its singular
        for m in catalog
        if m.id and m.string and all(m.string) and not m.fuzzy
    }
    missing = sorted(_msgids() - translated)
    assert missing == [], "run `make translations-extract` and translate these"


def test_the_compiled_catalog_is_current() -> None:
    mo, po = CATALOG / "messages.mo", CATALOG / "messages.po"
    assert mo.exists(), "run `make translations` (part of `make setup`)"
    assert mo.stat().st_mtime >= po.stat().st_mtime, "run `make translations`"


def test_the_switcher_changes_the_language(accounts: Accounts, web: FlaskClient) -> None:
    assert "Sign in" in web.get("/sign-in").get_data(as_text=True)
    token = csrf_token(web)
    web.post("/language", data={"csrf_token": token, "language": "zh_CN", "next": "/sign-in"})
    page = web.get("/sign-in").get_data(as_text=True)
    assert "登录" in page and 'lang="zh-CN"' in page


def test_the_browser_language_is_the_default(accounts: Accounts, web: FlaskClient) -> None:
    page = web.get("/sign-in", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "用户名" in page.get_data(as_text=True)


def test_a_users_language_follows_them(accounts: Accounts, web: FlaskClient) -> None:
    create_user(
        accounts.session,
        "shop.owner",
        "店主",
        Role.MERCHANT,
        "a long enough password",
        now=accounts.clock(),
        party=SHOP,
        language="zh_CN",
    )
    token = csrf_token(web)
    web.post(
        "/sign-in",
        data={"csrf_token": token, "username": "shop.owner", "password": "a long enough password"},
    )
    page = web.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "欢迎，店主" in page and "商户" in page


# --- roles × routes -----------------------------------------------------------------------


def _sign_in_as(accounts: Accounts, client: FlaskClient, role: Role) -> str:
    username = f"{role.value}.one"
    sign_in_as(accounts, client, role, username)
    return username


@pytest.mark.parametrize("role", list(Role))
def test_each_role_gets_exactly_its_pages_and_operations(
    accounts: Accounts, web: FlaskClient, role: Role
) -> None:
    from webapp.accounts.roles import ROLE_SCOPES, Scope
    from webapp.accounts.service import list_users

    _sign_in_as(accounts, web, role)
    admin = role is Role.ADMINISTRATOR
    assert web.get("/").status_code == 200
    for path in ("/admin/accounts", "/admin/api-keys"):
        assert web.get(path).status_code == (200 if admin else 403)
    token = csrf_token(web, "/")
    created = web.post(
        "/admin/accounts",
        data={
            "csrf_token": token,
            "username": "made.here",
            "display_name": "Made",
            "role": "administrator",
            "password": "x" * 20,
        },
    )
    assert created.status_code == (302 if admin else 403)
    made = [u.username for u in list_users(accounts.session)]
    assert ("made.here" in made) is admin
    notice = web.post("/test/notices", headers={"X-CSRFToken": token})
    allowed = Scope.PARTNERS_NOTICE in ROLE_SCOPES[role]
    assert notice.status_code == (200 if allowed else 403)
    if allowed:
        assert notice.json["party"] == (SHOP if role is Role.MERCHANT else None)
