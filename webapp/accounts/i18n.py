"""The language of each request: the signed-in user's choice, else the switcher's, else
the browser's, else English. Catalogs live in ``webapp/translations`` (``make setup``
compiles them)."""

from __future__ import annotations

from flask import Flask, request, session
from flask_babel import Babel, get_locale

from webapp.accounts.service import LANGUAGES

LANGUAGE_NAMES = {"en": "English", "zh_CN": "中文"}


def select_locale() -> str:
    """The request's language: ``en`` or ``zh_CN``.

    Babel reads ``zh_CN`` as ``zh_Hans_CN`` (its likely script), which is why the Chinese
    catalog lives in ``translations/zh_Hans_CN``.
    """
    from webapp.accounts.web import LANG, current_session

    if request:
        live = current_session() if session.get("sid") else None
        if live is not None and live.user.language in LANGUAGES:
            return live.user.language
        chosen = session.get(LANG)
        if chosen in LANGUAGES:
            return str(chosen)
        best = request.accept_languages.best_match(["en", "zh_CN", "zh", "zh_Hans"])
        if best and best.startswith("zh"):
            return "zh_CN"
    return "en"


def init_i18n(app: Flask) -> Babel:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "en")
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", "UTC")
    babel = Babel(app, locale_selector=select_locale)
    app.jinja_env.globals["language_names"] = LANGUAGE_NAMES
    return babel


def current_language() -> str:
    """``en`` or ``zh_CN``: the request's language as the switcher and accounts name it."""
    locale = get_locale()
    return "zh_CN" if locale is not None and locale.language == "zh" else "en"
