"""Pages: sign-in, the second factor, TOTP enrolment, sign-out, home, language; and the
administrator's accounts and API keys. Each view parses the form, calls one service,
and renders; the view owns the transaction."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

import segno
from flask import (
    Blueprint,
    Flask,
    Response,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from provenance.db import write_transaction
from webapp.accounts import apikeys, service
from webapp.accounts.errors import (
    AccountExistsError,
    AccountNotFoundError,
    InvalidAccountInputError,
    SignInError,
)
from webapp.accounts.i18n import current_language
from webapp.accounts.ledger import record_role_change
from webapp.accounts.models import AccountUser
from webapp.accounts.roles import Role, Scope
from webapp.accounts.service import LANGUAGES, Stage
from webapp.accounts.web import (
    LANG,
    client_ip,
    current_session,
    end_cookie_session,
    hit_limit,
    login_required,
    now,
    pending_session,
    start_cookie_session,
    state,
)
from webapp.runtime import current_runtime, db_session

bp = Blueprint("accounts", __name__)
admin_bp = Blueprint("accounts_admin", __name__, url_prefix="/admin")

ROLE_LABELS = {
    Role.MERCHANT: _l("Merchant"),
    Role.REVIEWER: _l("Reviewer"),
    Role.APPROVER: _l("Approver"),
    Role.ANALYST: _l("Analyst / investigator"),
    Role.AUDITOR: _l("Auditor (read-only)"),
    Role.ADMINISTRATOR: _l("Administrator"),
}

SCOPE_LABELS = {
    Scope.CODES_VERIFY: _l("Verify codes before sale"),
    Scope.CODES_IMPORT: _l("Import codes"),
    Scope.ENTRIES_APPEND: _l("Append ledger entries"),
    Scope.PARTNERS_NOTICE: _l("Send partner notices"),
    Scope.LEDGER_READ: _l("Read the ledger"),
    Scope.ALERTS_READ: _l("Read alerts"),
}

EVENT_LABELS = {
    "account-created": _l("Account created"),
    "sign-in": _l("Signed in"),
    "password-accepted": _l("Password accepted"),
    "sign-in-failed": _l("Sign-in failed"),
    "second-factor-failed": _l("Wrong second factor"),
    "locked-out": _l("Locked out after failures"),
    "refused-while-locked": _l("Refused while locked"),
    "sign-out": _l("Signed out"),
    "role-changed": _l("Role changed"),
    "locked-by-administrator": _l("Locked by an administrator"),
    "unlocked": _l("Unlocked"),
    "totp-enrolled": _l("Second factor enrolled"),
    "totp-reset": _l("Second factor reset"),
    "recovery-code-used": _l("Recovery code used"),
    "language-changed": _l("Language changed"),
    "document-viewed": _l("Document viewed"),
}

# Messages by error code: what the pages say, in the reader's language.
ERROR_MESSAGES = {
    "sign-in-failed": _l("The username, password or code is wrong."),
    "locked-out": _l("Too many failed attempts. Wait a while, then try again."),
    "rate-limited": _l("Too many requests. Wait a minute, then try again."),
    "csrf-failed": _l("The form has expired or did not come from this site. Reload it."),
    "forbidden": _l("Your role may not do this."),
    "account-exists": _l("That username is taken."),
    "account-not-found": _l("No such account or key."),
    "unauthenticated": _l("Sign in first."),
}

FIELD_MESSAGES = {
    "username": _l("Use 2-64 lower-case letters, digits, dots, dashes or underscores."),
    "display_name": _l("The name must be 1-200 characters."),
    "password": _l("The password must be 12-256 characters and not the username."),
    "party": _l("A merchant account needs a registered party; staff accounts have none."),
    "language": _l("Unknown language."),
    "name": _l("The key's name must be 1-200 characters."),
    "scopes": _l("Choose at least one operation."),
    "rate_per_minute": _l("The rate limit must be a whole number of requests a minute."),
    "expires_at": _l("The expiry must be a date in the future."),
    "role": _l("Unknown role."),
    "self": _l("You cannot change your own role or lock yourself out."),
    "user": _l("A personal key needs an existing account, and takes no party and no operations."),
    "second_factor": _l(
        "A staff account's personal key needs its second factor: the account signs in once "
        "and enrols TOTP first."
    ),
}


def error_message(code: str, message: str) -> str:
    text = ERROR_MESSAGES.get(code)
    return str(text) if text is not None else message


def _field_message(error: InvalidAccountInputError) -> str:
    text = FIELD_MESSAGES.get(error.field or "")
    return str(text) if text is not None else error.message


def _safe_next(target: str | None) -> str:
    """Only a path on this site: no scheme, no host, no backslash tricks."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and "\n" not in target
    ):
        return target
    return url_for("accounts.home")


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return Response(render_template(template, **context), status=status, mimetype="text/html")


# --- signing in ------------------------------------------------------------------------------


@bp.get("/sign-in")
def sign_in() -> ResponseReturnValue:
    if current_session() is not None:
        return redirect(url_for("accounts.home"))
    return _page("accounts/sign_in.html", next=request.args.get("next", ""))


@bp.post("/sign-in")
def sign_in_post() -> ResponseReturnValue:
    hit_limit(_sign_in_limit(), "sign-in", client_ip())
    username = request.form.get("username", "").strip()[:64]
    password = request.form.get("password", "")[:1024]
    target = request.form.get("next", "")
    failure: SignInError | None = None
    with write_transaction(db_session()):
        try:
            issued = service.begin_sign_in(
                db_session(), username, password, state().keys(), now=now(), ip=client_ip()
            )
        except SignInError as e:
            failure = e
    if failure is not None:
        status = 429 if failure.code == "locked-out" else 401
        return _page(
            "accounts/sign_in.html",
            status,
            error=error_message(failure.code, failure.message),
            # Shown again only if it looks like a username: a password typed into the
            # wrong field is not sent back.
            username=username if service.USERNAME_RE.fullmatch(username) else "",
            next=target,
        )
    start_cookie_session(issued)
    if issued.record.stage == Stage.FULL:
        return redirect(_safe_next(target))
    session["next"] = _safe_next(target)
    if issued.record.stage == Stage.ENROL:
        return redirect(url_for("accounts.enrol"))
    return redirect(url_for("accounts.second_factor"))


def _sign_in_limit() -> str:
    from flask import current_app

    return str(current_app.config["ACCOUNTS_SIGN_IN_LIMIT"])


@bp.get("/sign-in/code")
def second_factor() -> ResponseReturnValue:
    pending = pending_session()
    if pending is None or pending.record.stage != Stage.PASSWORD:
        return redirect(url_for("accounts.sign_in"))
    return _page("accounts/second_factor.html")


@bp.post("/sign-in/code")
def second_factor_post() -> ResponseReturnValue:
    hit_limit(_sign_in_limit(), "sign-in", client_ip())
    code = request.form.get("code", "")[:64]
    failure: SignInError | None = None
    with write_transaction(db_session()):
        pending = pending_session()
        if pending is None or pending.record.stage != Stage.PASSWORD:
            return redirect(url_for("accounts.sign_in"))
        try:
            issued = service.complete_sign_in(
                db_session(), pending, code, state().keys(), now=now(), ip=client_ip()
            )
        except SignInError as e:
            failure = e
    if failure is not None:
        status = 429 if failure.code == "locked-out" else 401
        return _page("accounts/second_factor.html", status, error=error_message(failure.code, ""))
    target = session.get("next")
    start_cookie_session(issued)
    return redirect(_safe_next(target if isinstance(target, str) else None))


def _qr_svg(uri: str) -> Markup:
    # segno writes the SVG itself: no external request, no script; the URI is escaped by it.
    svg: str = segno.make(uri, error="m").svg_inline(scale=5, border=2, omitsize=False)
    return Markup(svg)  # noqa: S704 (segno's own output, not user input)


@bp.get("/sign-in/enrol")
def enrol() -> ResponseReturnValue:
    with write_transaction(db_session()):
        pending = pending_session()
        if pending is None or pending.record.stage != Stage.ENROL:
            return redirect(url_for("accounts.sign_in"))
        enrolment = service.start_enrolment(db_session(), pending.user, state().keys())
    return _enrol_page(enrolment)


def _enrol_page(enrolment: service.Enrolment, status: int = 200, **extra: Any) -> Response:
    grouped = " ".join(enrolment.secret[i : i + 4] for i in range(0, len(enrolment.secret), 4))
    return _page("accounts/enrol.html", status, qr=_qr_svg(enrolment.uri), secret=grouped, **extra)


@bp.post("/sign-in/enrol")
def enrol_post() -> ResponseReturnValue:
    hit_limit(_sign_in_limit(), "sign-in", client_ip())
    code = request.form.get("code", "")[:64]
    failure: SignInError | None = None
    with write_transaction(db_session()):
        pending = pending_session()
        if pending is None or pending.record.stage != Stage.ENROL:
            return redirect(url_for("accounts.sign_in"))
        try:
            issued, codes = service.confirm_enrolment(
                db_session(), pending, code, state().keys(), now=now(), ip=client_ip()
            )
        except SignInError as e:
            failure = e
    if failure is not None:
        with write_transaction(db_session()):
            pending = pending_session()
            if pending is None:
                return redirect(url_for("accounts.sign_in"))
            enrolment = service.start_enrolment(db_session(), pending.user, state().keys())
        return _enrol_page(enrolment, 401, error=error_message(failure.code, ""))
    start_cookie_session(issued)
    # Shown this once: only keyed digests are kept.
    return _page("accounts/recovery_codes.html", codes=codes)


@bp.get("/account/second-factor")
@login_required()
def own_second_factor() -> ResponseReturnValue:
    live = current_session()
    assert live is not None
    if live.user.totp_confirmed_at is not None:
        return redirect(url_for("accounts.home"))
    with write_transaction(db_session()):
        user = db_session().get(AccountUser, live.user.id)
        assert user is not None
        enrolment = service.start_enrolment(db_session(), user, state().keys())
    return _enrol_page(enrolment, action="accounts.own_second_factor_post")


@bp.post("/account/second-factor")
@login_required()
def own_second_factor_post() -> ResponseReturnValue:
    hit_limit(_sign_in_limit(), "sign-in", client_ip())
    live = current_session()
    assert live is not None
    code = request.form.get("code", "")[:64]
    failure: SignInError | None = None
    with write_transaction(db_session()):
        try:
            codes = service.enrol_signed_in(
                db_session(), live, code, state().keys(), now=now(), ip=client_ip()
            )
        except SignInError as e:
            failure = e
    if failure is not None:
        with write_transaction(db_session()):
            user = db_session().get(AccountUser, live.user.id)
            assert user is not None
            if user.totp_confirmed_at is not None:
                return redirect(url_for("accounts.home"))
            enrolment = service.start_enrolment(db_session(), user, state().keys())
        return _enrol_page(
            enrolment,
            401,
            action="accounts.own_second_factor_post",
            error=error_message(failure.code, ""),
        )
    return _page("accounts/recovery_codes.html", codes=codes)


@bp.post("/sign-out")
def sign_out() -> ResponseReturnValue:
    with write_transaction(db_session()):
        live = current_session()
        if live is not None:
            service.sign_out(db_session(), live, now=now(), ip=client_ip())
    end_cookie_session()
    flash(str(_l("You have signed out.")), "info")
    return redirect(url_for("accounts.sign_in"))


@bp.post("/language")
def language() -> ResponseReturnValue:
    chosen = request.form.get("language", "")
    if chosen in LANGUAGES:
        session[LANG] = chosen
        live = current_session()
        if live is not None:
            with write_transaction(db_session()):
                user = db_session().get(AccountUser, live.user.id)
                if user is not None:
                    service.set_language(db_session(), user, chosen, now=now())
    return redirect(_safe_next(request.form.get("next")))


@bp.get("/")
@login_required()
def home() -> ResponseReturnValue:
    live = current_session()
    assert live is not None
    user = live.user
    return _page(
        "accounts/home.html",
        user=user,
        recovery_left=service.remaining_recovery_codes(db_session(), user),
        events=service.events_of(db_session(), user, limit=20),
    )


# --- administration ----------------------------------------------------------------------


def _admin() -> AccountUser:
    live = current_session()
    assert live is not None
    return live.user


def _users_page(status: int = 200, **extra: Any) -> Response:
    return _page(
        "accounts/admin_users.html",
        status,
        users=service.list_users(db_session()),
        roles=list(Role),
        languages=LANGUAGES,
        at=now(),
        **extra,
    )


@admin_bp.get("/accounts")
@login_required(Role.ADMINISTRATOR)
def users() -> ResponseReturnValue:
    return _users_page()


@admin_bp.post("/accounts")
@login_required(Role.ADMINISTRATOR)
def create_user() -> ResponseReturnValue:
    form = request.form
    try:
        role = Role(form.get("role", ""))
    except ValueError:
        return _users_page(422, error=str(FIELD_MESSAGES["role"]), form=form)
    language = form.get("language") or None
    try:
        with write_transaction(db_session()):
            user = service.create_user(
                db_session(),
                form.get("username", "").strip(),
                form.get("display_name", ""),
                role,
                form.get("password", ""),
                now=now(),
                party=form.get("party", "").strip() or None,
                actor=_admin().username,
                language=language,
            )
    except InvalidAccountInputError as e:
        return _users_page(422, error=_field_message(e), form=form)
    except AccountExistsError as e:
        return _users_page(409, error=error_message(e.code, e.message), form=form)
    flash(str(_l("Account %(name)s created.", name=user.username)), "info")
    return redirect(url_for("accounts_admin.users"))


def _not_self(username: str) -> None:
    if username == _admin().username:
        raise InvalidAccountInputError(
            "an administrator cannot change or lock themself", field="self"
        )


@admin_bp.post("/accounts/<username>/role")
@login_required(Role.ADMINISTRATOR)
def change_role(username: str) -> ResponseReturnValue:
    try:
        role = Role(request.form.get("role", ""))
    except ValueError:
        return _users_page(422, error=str(FIELD_MESSAGES["role"]))
    admin = _admin().username
    runtime = current_runtime()
    try:
        _not_self(username)
        with write_transaction(db_session()):

            def on_ledger(user: AccountUser, old: Role, new: Role) -> None:
                record_role_change(
                    db_session(),
                    runtime.ledger,
                    account=user.username,
                    role=new,
                    previous=old,
                    by=admin,
                    now=now(),
                )

            service.change_role(
                db_session(),
                username,
                role,
                now=now(),
                actor=admin,
                party=request.form.get("party", "").strip() or None,
                on_change=on_ledger,
            )
    except InvalidAccountInputError as e:
        return _users_page(422, error=_field_message(e))
    except AccountNotFoundError as e:
        return _users_page(404, error=error_message(e.code, e.message))
    flash(str(_l("Role of %(name)s changed; their sessions have ended.", name=username)), "info")
    return redirect(url_for("accounts_admin.users"))


@admin_bp.post("/accounts/<username>/<action>")
@login_required(Role.ADMINISTRATOR)
def account_action(username: str, action: str) -> ResponseReturnValue:
    actions = {
        "lock": (service.lock_user, _l("Account %(name)s locked.")),
        "unlock": (service.unlock_user, _l("Account %(name)s unlocked.")),
        "reset-totp": (service.reset_totp, _l("Second factor of %(name)s reset.")),
    }
    if action not in actions:
        return _users_page(404, error=error_message("account-not-found", ""))
    run, done = actions[action]
    try:
        if action != "unlock":
            _not_self(username)
        with write_transaction(db_session()):
            run(db_session(), username, now=now(), actor=_admin().username)
    except InvalidAccountInputError as e:
        return _users_page(422, error=_field_message(e))
    except AccountNotFoundError as e:
        return _users_page(404, error=error_message(e.code, e.message))
    flash(str(done) % {"name": username}, "info")
    return redirect(url_for("accounts_admin.users"))


def _keys_page(status: int = 200, **extra: Any) -> Response:
    return _page(
        "accounts/admin_api_keys.html",
        status,
        keys=apikeys.list_keys(db_session()),
        key_users=apikeys.key_usernames(db_session()),
        scopes=list(Scope),
        scope_labels=SCOPE_LABELS,
        at=now(),
        **extra,
    )


@admin_bp.get("/api-keys")
@login_required(Role.ADMINISTRATOR)
def api_keys() -> ResponseReturnValue:
    return _keys_page()


def _parse_expiry(raw: str) -> datetime | None:
    if not raw.strip():
        return None
    try:
        day = datetime.strptime(raw.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise InvalidAccountInputError("not a date", field="expires_at") from None
    return datetime.combine(day, time(0, 0), tzinfo=UTC)


@admin_bp.post("/api-keys")
@login_required(Role.ADMINISTRATOR)
def create_api_key() -> ResponseReturnValue:
    form = request.form
    try:
        try:
            rate = int(form.get("rate_per_minute") or apikeys.DEFAULT_RATE_PER_MINUTE)
        except ValueError:
            raise InvalidAccountInputError("not a number", field="rate_per_minute") from None
        username = form.get("user", "").strip()
        with write_transaction(db_session()):
            if username:
                # A personal key acts as its account: it takes no party and no scopes.
                if form.get("party", "").strip() or form.getlist("scopes"):
                    raise InvalidAccountInputError("no party or scope", field="user")
                issued = apikeys.create_personal_key(
                    db_session(),
                    form.get("name", ""),
                    username,
                    now=now(),
                    actor=_admin().username,
                    expires_at=_parse_expiry(form.get("expires_at", "")),
                    rate_per_minute=rate,
                )
            else:
                issued = apikeys.create_key(
                    db_session(),
                    form.get("name", ""),
                    form.get("party", "").strip(),
                    form.getlist("scopes"),
                    now=now(),
                    actor=_admin().username,
                    expires_at=_parse_expiry(form.get("expires_at", "")),
                    rate_per_minute=rate,
                )
    except InvalidAccountInputError as e:
        return _keys_page(422, error=_field_message(e), form=form)
    except AccountNotFoundError:
        return _keys_page(422, error=str(FIELD_MESSAGES["user"]), form=form)
    return _keys_page(201, issued=issued)


@admin_bp.post("/api-keys/<key_id>/<action>")
@login_required(Role.ADMINISTRATOR)
def api_key_action(key_id: str, action: str) -> ResponseReturnValue:
    try:
        with write_transaction(db_session()):
            if action == "rotate":
                issued = apikeys.rotate_key(
                    db_session(), key_id, now=now(), actor=_admin().username
                )
            elif action == "revoke":
                apikeys.revoke_key(db_session(), key_id, now=now(), actor=_admin().username)
                issued = None
            else:
                raise AccountNotFoundError(f"no action {action!r}")
    except AccountNotFoundError as e:
        return _keys_page(404, error=error_message(e.code, e.message))
    except InvalidAccountInputError as e:
        return _keys_page(422, error=e.message)
    if issued is None:
        flash(str(_l("Key %(id)s revoked.", id=key_id)), "info")
        return redirect(url_for("accounts_admin.api_keys"))
    return _keys_page(200, issued=issued)


# --- template helpers ------------------------------------------------------------------


def _role_label(role: str) -> str:
    try:
        return str(ROLE_LABELS[Role(role)])
    except ValueError:
        return role


def _event_label(kind: str) -> str:
    label = EVENT_LABELS.get(kind)
    return str(label) if label is not None else kind


def init_views(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_blueprint(admin_bp)
    app.jinja_env.globals.update(
        signed_in=current_session,
        role_label=_role_label,
        event_label=_event_label,
        current_language=current_language,
        error_message=error_message,
    )
